"""Pieces every command shares: the consoles, the --json printer and shared option types."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import BaseModel
from rich.console import Console

err = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", help="TOML or YAML file with the same keys as the flags; flags win.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout and nothing else.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", min=0, help="Random seed: same seed, same result.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch/ONNX Runtime.")]


def print_json(model: BaseModel) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


AllowChangedModelOpt = Annotated[bool, typer.Option(
    "--allow-changed-model",
    help="Build the model even if its factory's source file changed since the ticket search (it is your own code).",
)]


def json_options(text: str | None, flag: str) -> dict | None:
    """Parse a ``--model-options``-style JSON object (None when not given)."""
    import json

    from ticketpack.errors import TicketpackError

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TicketpackError(f"{flag}: not valid JSON ({exc.msg} at column {exc.colno}): {text}") from None
    if not isinstance(value, dict):
        raise TicketpackError(f"{flag}: expected a JSON object such as '{{\"width\": 16}}', got {text}")
    return value



def check_domain(dataset: str, domain: str) -> None:
    """Refuse an unknown dataset or domain before anything is loaded, deleted or written (cheap: no rows are read)."""
    from ticketpack.data import get

    ds = get(dataset)
    if ds.name == "digits":
        import numpy as np

        from ticketpack.data.digits import apply_shift

        apply_shift(np.zeros((1, 8, 8), dtype=np.float32), domain)  # knows rot<deg> as well as the listed ones
    elif hasattr(ds, "file"):
        ds.file(domain)
