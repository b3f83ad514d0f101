"""Huge pages for torch's large CPU tensors (ticketpack/core/hugepages.py): asked for unless the user said otherwise, and
they take effect when asked before the first large tensor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ticketpack.core.hugepages import ENV, prefer_huge_pages

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def test_asked_for_when_unset_and_a_users_choice_is_kept(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert prefer_huge_pages() is True
    monkeypatch.setenv(ENV, "0")
    assert prefer_huge_pages() is False
    assert os.environ[ENV] == "0"


@pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(), reason="the kernel offers no transparent huge pages")
def test_a_large_tensor_lands_on_huge_pages_only_when_asked_before_torch_allocates():
    pytest.importorskip("torch")
    script = (
        "import re, sys\n"
        "from ticketpack.core.hugepages import prefer_huge_pages\n"
        "def huge(): return sum(map(int, re.findall(r'AnonHugePages:\\s+(\\d+)', open('/proc/self/smaps').read())))\n"
        "if sys.argv[1] == 'ask': prefer_huge_pages()\n"
        "import torch\n"
        "before = huge(); t = torch.ones(2**20, 64)\n"  # 256 MB
        "print(huge() - before)\n"
    )
    env_without = {k: v for k, v in os.environ.items() if k != ENV}

    def added_kb(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, env=env_without,
                             check=True).stdout
        return int(re.findall(r"-?\d+", out)[-1])

    assert added_kb("ask") >= 32 * 1024  # most of the 256 MB; the kernel may fall back to small pages for some
    if "[madvise]" in THP.read_text():  # ("always" gives them to every process, asked or not)
        assert added_kb("no") < 32 * 1024
