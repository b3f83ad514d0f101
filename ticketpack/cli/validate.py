"""`ticketpack validate`: ticketpack.runtime.validate.validate_model → a short table; exit 1 when a check fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import JsonOpt, out, print_json


def validate_cmd(
    model: Annotated[Path, typer.Argument(help="Exported ticketpack ONNX model.")],
    strict: Annotated[bool, typer.Option("--strict", help="Also require a PyTorch parity check recorded within its tolerance.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check an exported model: ONNX checker, card, signature, weight digest, sparsity, ORT load, smoke inference."""
    from ticketpack.runtime.validate import validate_model

    report = validate_model(model, strict=strict)
    if json_out:
        print_json(report)
    else:
        table = Table(title=f"validate {escape(str(model))}" + (" (strict)" if strict else ""))
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for c in report.checks:
            table.add_row(c.name, "[green]ok[/]" if c.passed else "[bold red]FAIL[/]", escape(c.detail))
        out.print(table)
    report.raise_if_failed()
