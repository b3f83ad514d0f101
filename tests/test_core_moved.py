"""The shared leaves live in ticketpack.core (issue 26); their old addresses keep working until 0.2, as the very
same modules, with a DeprecationWarning naming the new one."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MOVED = ["errors", "events", "fileio", "registry", "config_files", "paths", "lifeline", "stats", "hugepages",
         "references"]


@pytest.mark.parametrize("name", MOVED)
def test_the_old_address_is_the_new_module_with_a_warning(name):
    code = (
        "import warnings, importlib, sys\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        f"new = importlib.import_module('ticketpack.core.{name}')\n"
        "try:\n"
        f"    importlib.import_module('ticketpack.{name}')\n"
        "except DeprecationWarning as w:\n"
        "    print(w)\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        f"old = importlib.import_module('ticketpack.{name}')\n"
        "print(old is new)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [f"ticketpack.{name} moved to ticketpack.core.{name}; the old name stops working in ticketpack 0.2",
                   "True"]


def test_from_imports_of_the_old_address_give_the_same_objects():
    with pytest.warns(DeprecationWarning, match="ticketpack.core.fileio"):
        sys.modules.pop("ticketpack.fileio", None)
        from ticketpack.fileio import atomic_write_text  # noqa: PLC0415
    assert atomic_write_text is importlib.import_module("ticketpack.core.fileio").atomic_write_text


def test_nothing_in_the_package_uses_an_old_address():
    """Only the shims themselves name the old modules; everything else imports ticketpack.core."""
    from pathlib import Path

    root = Path(importlib.import_module("ticketpack").__file__).parent
    old = tuple(f"ticketpack.{n}" for n in MOVED)
    offenders = [
        f"{p.relative_to(root)}: {line.strip()}"
        for p in root.rglob("*.py") if p.parent != root or p.stem not in MOVED
        for line in p.read_text().splitlines()
        if line.lstrip().startswith(("from ", "import ")) and any(
            line.split()[1] == o or line.split()[1].startswith(o + ".") for o in old)
    ]
    assert offenders == []
