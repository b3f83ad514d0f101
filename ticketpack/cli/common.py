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
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed: same seed, same result.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch/ONNX Runtime.")]


def print_json(model: BaseModel) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"
