"""`ticketpack demo`: the whole pipeline on digits, stage by stage, ending with a summary table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ticketpack.cli.common import JsonOpt, SeedOpt, err, out, pct, print_json


def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for everything the demo writes.")] = Path("ticketpack-demo"),
    target: Annotated[str, typer.Option(help="Shifted digits domain to transfer to (rot15 … rot75, invert, blur, noise).")] = "rot30",
    jobs: Annotated[int, typer.Option(min=1, help="Parallel transfer jobs.")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="ONNX Runtime threads for the latency comparison.")] = 1,
    seed: SeedOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run search → transfer → export → evaluate on the embedded digits dataset (a few minutes on 2 cores)."""
    from ticketpack.demo import DemoConfig, run_demo

    cfg = DemoConfig(target=target, jobs=jobs, threads=threads, seed=seed or 0)
    start = time.perf_counter()

    def stage(msg: str) -> None:
        err.print(f"[bold cyan]{msg}[/]  [dim]({time.perf_counter() - start:.0f}s)[/]")

    summary = run_demo(cfg, out_dir, on_stage=stage)
    if json_out:
        print_json(summary)
        return
    err.print(f"[dim]level {summary.level}: {summary.level_reason}[/]")
    table = Table(title=f"ticketpack demo: lenet-300-100, digits clean → {cfg.target}, vs the dense export "
                        f"(ONNX Runtime CPU, {summary.threads} thread(s))")
    for col in ("variant", "weights", "accuracy", "Δ vs dense", "size", "size ratio", "latency b1", "latency b256"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for row in summary.rows:
        table.add_row(
            row.variant, pct(row.weights_remaining), pct(row.accuracy), f"{row.accuracy_delta_pts:+.1f} pts",
            f"{row.file_bytes / 1024:.0f} KiB", f"{row.size_ratio:.2f}×",
            f"{row.latency_ratio.get(1, float('nan')):.2f}×", f"{row.latency_ratio.get(256, float('nan')):.2f}×",
        )
    out.print(table)
    out.print(f"everything is in {out_dir}/ (ticket/, transfer/ with accuracy_vs_sparsity.png, *.onnx, summary.json); "
              f"{time.perf_counter() - start:.0f}s in all")
