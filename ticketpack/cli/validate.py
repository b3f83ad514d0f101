"""`ticketpack validate`: ticketpack.runtime.validate.validate_model → a short table; exit 1 when a check fails."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import JsonOpt, out, print_json
from ticketpack.cli.flags import ConfigFlags, Flag

if TYPE_CHECKING:
    from ticketpack.runtime.config import ValidateConfig

FLAGS = ConfigFlags("ticketpack.runtime.config:ValidateConfig", Flag("--strict", "strict", bool),
                    Flag("--verify", "verify", Path, metavar="PUBLIC_KEY.pem"))


@FLAGS.command
def validate_cmd(
    cfg: ValidateConfig,
    model: Annotated[Path, typer.Argument(help="Exported ticketpack ONNX model.")],
    json_out: JsonOpt = False,
) -> None:
    """Check an exported model: ONNX checker, card, graph signature, weight digest, sparsity recomputed, ORT load, smoke
    inference; with --verify, its key signature."""
    from ticketpack.runtime.validate import validate_model

    report = validate_model(model, cfg)
    if json_out:
        print_json(report)
    else:
        table = Table(title=f"validate {escape(str(model))}" + (" (strict)" if cfg.strict else ""))
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for c in report.checks:
            table.add_row(c.name, "[green]ok[/]" if c.passed else "[bold red]FAIL[/]", escape(c.detail))
        out.print(table)
    report.raise_if_failed()
