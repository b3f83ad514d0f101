"""`ticketpack report RUN_DIR`: re-render a transfer run's table, report.json, results.csv and plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict
from rich import box
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import JsonOpt, err, out, print_json
from ticketpack.cli.flags import ConfigFlags


class ReportConfig(BaseModel):
    """`ticketpack report` has no options: its --config, like every command's, refuses any key."""

    model_config = ConfigDict(extra="forbid", frozen=True)


FLAGS = ConfigFlags("ticketpack.cli.report:ReportConfig")


def rich_table(model) -> Table:
    """A report table (:class:`ticketpack.transfer.tables.Table`) as a rich table: the narrow headers (a hyphenated
    one on two lines; a column whose narrow header is "" left out), bold cells in bold, each cell's plain-text mark
    after it, an empty cell as "-"."""
    table = Table(title=escape(model.title), caption=escape(model.caption) or None, box=box.SIMPLE_HEAD, min_width=60)
    shown = [i for i, col in enumerate(model.columns) if col.narrow != ""]
    for i in shown:
        col = model.columns[i]
        header = col.narrow or col.header.replace("-", "-\n", 1)
        table.add_column(escape(header), justify=col.align, no_wrap=not col.wrap)
    for row in model.rows:
        table.add_row(*[_rich_cell(row[i]) for i in shown])
    return table


def _rich_cell(cell) -> str:
    text = escape(cell.text) or "-"
    return (f"[bold]{text}[/]" if cell.bold else text) + escape(cell.mark)


def transfer_table(report) -> Table:
    """Target test accuracy (%), mean ± std over seeds, per level (rows) and strategy (columns); the dense
    reference in the caption; the best strategy of each level in bold."""
    from ticketpack.transfer.tables import accuracy_table

    return rich_table(accuracy_table(report))


def paired_table(report) -> Table:
    """``ticket − other`` in points per level: mean [95% interval] over the seeds; marked (and bold) where resolved."""
    from ticketpack.transfer.tables import paired_table_of

    return rich_table(paired_table_of(report.paired))


def cost_table(report) -> Table:
    """Training cost per strategy: steps and seconds per model, and the search a strategy needs first."""
    from ticketpack.transfer.tables import cost_table_of

    return rich_table(cost_table_of(report))


def print_report(report) -> None:
    """The accuracy table, the paired differences, the costs and what the numbers cannot say."""
    out.print(transfer_table(report))
    if report.paired:
        out.print(paired_table(report))
    if report.costs:
        out.print(cost_table(report))
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def print_outputs(run_dir: Path) -> None:
    from ticketpack.transfer import layout

    err.print(f"wrote {layout.report(run_dir)}, {layout.results_csv(run_dir)}, {layout.plot(run_dir)}")


@FLAGS.command
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Transfer run directory (written by `ticketpack transfer`).")],
    json_out: JsonOpt = False,
) -> None:
    """Re-render a transfer run's table, report.json, results.csv and accuracy_vs_sparsity.png from its jobs."""
    from ticketpack.transfer import render

    report = render(run_dir)
    if json_out:
        print_json(report)
        return
    print_report(report)
    print_outputs(run_dir)
