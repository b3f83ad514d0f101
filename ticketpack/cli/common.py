"""Pieces every command shares: the consoles, the --json flag and printer, and parsers of flag values."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console

err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout and nothing else.")]
VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Print status lines (opening…, validating…) on stderr even when it is not a terminal "
    "(by default a log or CI run shows only results, warnings and errors).")]


def print_json(model: BaseModel) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def json_object(text: str) -> dict:
    """A ``--model-options``-style JSON object; ValueError says what is wrong with it."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno}): {text}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object such as '{{\"width\": 16}}', got {text}")
    return value


def comma_list(text: str) -> list[str]:
    """``"ticket, dense"`` → ``["ticket", "dense"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def check_domain(dataset: str, domain: str) -> None:
    """Refuse an unknown dataset or domain before anything is loaded, deleted or written (cheap: no rows are read)."""
    from ticketpack.data import get

    get(dataset).check_domain(domain)
