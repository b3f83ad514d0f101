"""`ticketpack report RUN_DIR`: re-render a transfer run's table, report.json, results.csv and plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from ticketpack.cli.common import JsonOpt, err, out, print_json


def transfer_table(report) -> Table:
    """Target test accuracy (%), mean ± std over seeds, per level (rows) and strategy (columns); the dense
    reference in the caption; the best strategy of each level in bold. Fits an 80-column terminal."""
    from ticketpack.transfer.report import fmt_pct

    n = max((c.n for c in report.cells), default=report.dense.n if report.dense else 0)
    dense = f"dense (100%): {fmt_pct(report.dense.target_test_mean, report.dense.target_test_std)} · " if report.dense else ""
    table = Table(
        title=f"{report.model.name} ticket {report.source} → {report.target}: test accuracy on {report.target} (%)",
        caption=f"{dense}mean ± std over {n} seed{'s' if n != 1 else ''} · "
                f"{report.jobs_finished}/{report.jobs_total} jobs",
        box=box.SIMPLE_HEAD,
        min_width=60,
    )
    inits = [i for i in report.inits if i != "dense"]
    table.add_column("level", justify="right", no_wrap=True)
    table.add_column("weights", justify="right", no_wrap=True)
    for init in inits:
        table.add_column(init.replace("-", "-\n", 1), justify="right", no_wrap=True)
    for level in sorted({c.level for c in report.cells}):
        row = {c.init: c for c in report.cells if c.level == level}
        wr = (row.get("ticket") or next(iter(row.values()))).weights_remaining
        best = max(row.values(), key=lambda c: c.target_test_mean).init
        cells = []
        for init in inits:
            c = row.get(init)
            text = fmt_pct(c.target_test_mean, c.target_test_std, sep="±") if c else "-"
            cells.append(f"[bold]{text}[/]" if init == best and len(row) > 1 else text)
        table.add_row(str(level), f"{100 * wr:.1f}%", *cells)
    return table


def print_outputs(run_dir: Path) -> None:
    from ticketpack.transfer import layout

    err.print(f"wrote {layout.report(run_dir)}, {layout.results_csv(run_dir)}, {layout.plot(run_dir)}")


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
    out.print(transfer_table(report))
    print_outputs(run_dir)
