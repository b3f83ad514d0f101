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


def transfer_table(report) -> Table:
    """Target test accuracy (%), mean ± std over seeds, per level (rows) and strategy (columns); the dense
    reference in the caption; the best strategy of each level in bold. Fits an 80-column terminal."""
    from ticketpack.transfer.report import fmt_pct
    from ticketpack.transfer.strategies import ordered

    n = max((c.n for c in report.cells), default=report.dense.n if report.dense else 0)
    dense = f"dense (100%): {fmt_pct(report.dense.target_test_mean, report.dense.target_test_std)} · " if report.dense else ""
    ref = report.dense or (report.cells[0] if report.cells else None)
    split = (f" · test split {report.target_test_n} examples: SE {100 * ref.target_test_se:.1f} pts"
             if ref is not None and ref.target_test_se is not None else "")
    table = Table(
        title=f"{report.model.name} ticket {report.source} → {report.target}: test accuracy on {report.target} (%)",
        caption=f"{dense}mean ± std over {n} seed{'s' if n != 1 else ''} · "
                f"{report.jobs_finished}/{report.jobs_total} jobs{split}",
        box=box.SIMPLE_HEAD,
        min_width=60,
    )
    inits = [i for i in ordered(report.inits) if any(c.init == i for c in report.cells)]
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


def paired_table(report) -> Table:
    """``ticket − other`` in points per level: mean [95% interval] over the seeds; marked (and bold) where resolved."""
    from ticketpack.transfer.pooling import RESOLVED
    from ticketpack.transfer.strategies import ordered

    def cell(p) -> str:
        text = f"{100 * p.mean:+.1f}" + (f"\n[{100 * p.low:+.1f}, {100 * p.high:+.1f}]" if p.low is not None else "")
        return f"[bold]{text}{RESOLVED}[/]" if p.resolved else text

    others = ordered(p.other for p in report.paired)
    table = Table(title=f"paired differences (points), {report.paired[0].reference} − other, over seeds",
                  caption=f"mean [95% t-interval over seed pairs];{RESOLVED}: resolved, the interval excludes 0",
                  box=box.SIMPLE_HEAD, min_width=60)
    table.add_column("level", justify="right", no_wrap=True)
    for other in others:
        table.add_column(other, justify="right", no_wrap=True)
    for level in sorted({p.level for p in report.paired}):
        row = {p.other: p for p in report.paired if p.level == level}
        table.add_row(str(level), *[cell(row[o]) if o in row else "-" for o in others])
    return table


def cost_table(report) -> Table:
    """Training cost per strategy: steps and seconds per model, and the search a strategy needs first."""
    from ticketpack.transfer.report import cost_note

    table = Table(title="training cost per strategy", box=box.SIMPLE_HEAD, min_width=60)
    for col in ("strategy", "models", "steps/model", "s/model", "CPU-s/model", "search first"):
        table.add_column(col, justify="left" if col == "strategy" else "right", no_wrap=True)
    for c in report.costs:
        cpu = "-" if c.search_cpu_seconds is None else f", {c.search_cpu_seconds:.0f} CPU-s"
        search = f"{c.search_iterations:,} steps, {c.search_seconds:.1f} s{cpu}" if c.search_iterations else "-"
        table.add_row(c.init, str(c.jobs), f"{c.iterations_mean:.0f}", f"{c.seconds_mean:.2f}",
                      "-" if c.cpu_seconds_mean is None else f"{c.cpu_seconds_mean:.2f}", search)
    caption = cost_note(report)
    if report.source_search is not None:
        s = report.source_search
        caption += (f" The source ticket's search ({s.search_iterations:,} steps, {s.search_seconds:.1f} s) is paid "
                    "once for every target.")
    table.caption = caption
    return table


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
