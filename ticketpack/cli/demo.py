"""`ticketpack demo`: the whole pipeline on digits, stage by stage, ending with a summary table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import JsonOpt, err, out, pct, print_json
from ticketpack.cli.flags import ConfigFlags, Flag

if TYPE_CHECKING:
    from ticketpack.core.events import Event
    from ticketpack.demo import DemoConfig

FLAGS = ConfigFlags(
    "ticketpack.demo:DemoConfig",
    Flag("--target", "target"),
    Flag("--granularity", "granularity"),
    Flag("--jobs", "jobs", int),
    Flag("--threads", "threads", int),
    Flag("--seed", "seed", int),
)


@FLAGS.command
def demo_cmd(
    cfg: DemoConfig,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for everything the demo writes.")] = Path("ticketpack-demo"),
    json_out: JsonOpt = False,
) -> None:
    """Run search → transfer → export → evaluate on the embedded digits dataset (a few minutes on 2 cores)."""
    from ticketpack.core.fileio import check_creatable_dir
    from ticketpack.demo import run_demo

    check_creatable_dir(out_dir)
    start = time.perf_counter()

    def stage(event: Event) -> None:
        err.print(f"[bold cyan]{event.message}[/]  [dim]({time.perf_counter() - start:.0f}s)[/]")

    summary = run_demo(cfg, out_dir, on_event=stage)
    if json_out:
        print_json(summary)
        return
    reason = summary.level_reason.replace("`level`", "`ticketpack export --level`")  # the demo has no --level
    err.print(f"[dim]level {summary.level}: {escape(reason)}[/]")
    table = Table(title=f"digits clean → {cfg.target}: exports vs the dense export, ONNX Runtime CPU, "
                        f"{summary.threads} thread(s); × columns: ratio to dense, lower is better")
    for col in ("export", "weights", "accuracy", "Δ pts", "size", "size×", "p50 b1×", "p50 b256×"):
        table.add_column(col, justify="left" if col == "export" else "right", no_wrap=True)
    for row in summary.rows:
        table.add_row(
            row.variant.removeprefix("ticket "), pct(row.weights_remaining), pct(row.accuracy),
            f"{row.accuracy_delta_pts:+.1f}", f"{row.file_bytes / 1024:.0f} KiB", f"{row.size_ratio:.2f}",
            f"{row.latency_ratio.get(1, float('nan')):.2f}", f"{row.latency_ratio.get(256, float('nan')):.2f}",
        )
    out.print(table)
    out.print(f"everything is in {out_dir}/ (ticket/, transfer/ with accuracy_vs_sparsity.png, *.onnx, summary.json); "
              f"{time.perf_counter() - start:.0f}s in all")
