"""`ticketpack evaluate`: flags and --config → EvaluateConfig → ticketpack.evaluate.evaluate_model → tables (exit 1 on a failed gate)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import (
    JsonOpt,
    VerboseOpt,
    comma_list,
    err,
    out,
    pct,
    print_json,
)
from ticketpack.cli.flags import ConfigFlags, Flag

if TYPE_CHECKING:
    from ticketpack.evaluate.config import EvaluateConfig


def _batch_limits(items: list[str]) -> dict[int, float]:
    from ticketpack.evaluate.gates import parse_batch_limits

    return parse_batch_limits(items)


FLAGS = ConfigFlags(
    "ticketpack.evaluate.config:EvaluateConfig",
    Flag("--dataset", "dataset"),
    Flag("--domain", "domain"),
    Flag("--data-file", "data_file", Path),
    Flag("--split-seed", "split_seed", int),
    Flag("--baseline", "baseline", Path),
    Flag("--provider", "provider"),
    Flag("--threads", "threads", int),
    Flag("--batch-sizes", "batch_sizes", parse=comma_list, metavar="1,32,.."),
    Flag("--latency-budget", "latency_budget_s", float),
    Flag("--min-accuracy", "gates.min_accuracy", float),
    Flag("--max-accuracy-drop", "gates.max_accuracy_drop", float),
    Flag("--max-p50-ms", "gates.max_p50_ms", list[str], parse=_batch_limits, metavar="BATCH=MS"),
    Flag("--min-speedup", "gates.min_speedup", float),
    Flag("--max-size-mb", "gates.max_size_mb", float),
)


def _delta_se(c) -> str:
    """`` ± 0.41 (SE, paired over the same examples)`` when known."""
    return f" ± {100 * c.accuracy_delta_se:.2f} (SE, paired)" if c.accuracy_delta_se is not None else ""


def _ms(x: float) -> str:
    """Milliseconds with three decimals, or three significant digits below 0.1 ms (a 4 µs call: 0.00412)."""
    return f"{x:.3f}" if x >= 0.1 else f"{x:.3g}"


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


@FLAGS.command
def evaluate_cmd(
    cfg: EvaluateConfig,
    model: Annotated[Path, typer.Argument(help="Exported ticketpack ONNX model.")],
    report_path: Annotated[Optional[Path], typer.Option("--report", help="Also write the report as JSON to this file.")] = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Accuracy, latency, size and memory of an exported model on ONNX Runtime, optionally against a baseline."""
    from ticketpack.cli.progress import status_printer
    from ticketpack.evaluate import evaluate_model

    if report_path is not None:
        from ticketpack.core.fileio import check_writable_file

        check_writable_file(report_path, "report")  # before the evaluation runs, not after
    report = evaluate_model(model, cfg, on_event=status_printer(err, verbose))
    if report_path is not None:
        from ticketpack.core.fileio import write_model

        write_model(report_path, report)
        err.print(f"report written to {report_path}")
    if json_out:
        print_json(report)
    else:
        _render(report, cfg.provider)
    report.raise_for_gates()


def _render(report, provider: str) -> None:
    models = [("model", report.model)] + ([("baseline", report.baseline)] if report.baseline else [])
    where = report.data_file or f"{report.dataset}/{report.domain}/{report.split} (seed {report.seed})"
    how = f"{report.provider}" + (" (chosen by auto)" if provider == "auto" else "")
    threads = report.threads if report.threads is not None else "ORT default"
    out.print(f"[bold]{report.examples}[/] examples from {where}; ONNX Runtime {report.onnxruntime_version} on {how}, "
              f"{threads} threads", highlight=False)

    for name, m in models:
        out.print(f"{name}: {escape(m.path)}", highlight=False)
    t = Table(title="models")
    for col in ("", "format", "weights left", "accuracy ± SE", "size MB", "zlib MB", "peak mem MB"):
        t.add_column(col, justify="left" if col in ("", "format") else "right", no_wrap=col == "format")
    for name, m in models:
        fmt = (m.format or "-") + (f"+{m.quantize}" if m.quantize and m.quantize != "none" else "")
        t.add_row(name, fmt, pct(m.weights_remaining) if m.weights_remaining is not None else "-",
                  f"{m.accuracy:.4f}" + (f" ± {m.accuracy_se:.4f}" if m.accuracy_se is not None else ""),
                  _mb(m.file_bytes / 1e6), _mb(m.compressed_bytes / 1e6), _mb(m.peak_memory_mb))
    out.print(t)

    t = Table(title="latency per batch (ms, session.run on prepared tensors)")
    for col in ("batch", "", "p50", "p90", "p99", "runs × calls", "items/s") + (("speed-up",) if report.comparison else ()):
        t.add_column(col, justify="left" if col == "" else "right")
    for i, bs in enumerate(s.batch_size for s in report.model.latency):
        for j, (name, m) in enumerate(models):
            s = m.latency[i]
            row = [str(bs) if j == 0 else "", name, _ms(s.p50_ms), _ms(s.p90_ms), _ms(s.p99_ms),
                   f"{s.runs} × {s.calls_per_run}" + ("" if s.stable else "*"), f"{s.throughput_per_s:,.0f}"]
            if report.comparison:
                row.append(f"{report.comparison.speedup[i].speedup:.2f}x" if j == 0 else "")
            t.add_row(*row, end_section=j == len(models) - 1)
    out.print(t)
    from ticketpack.evaluate.latency import LatencyBudget

    grouped = sorted({s.calls_per_run for _, m in models for s in m.latency if s.calls_per_run > 1})
    out.print("[dim]runs × calls: the figures are per call, over timed runs of that many session.run calls"
              + (f"; calls under {LatencyBudget.min_timing_s * 1e3:g} ms are timed in groups "
                 f"({', '.join(map(str, grouped))} calls), so their p90/p99 are of group means" if grouped else "")
              + "[/]", highlight=False)
    if not all(s.stable for _, m in models for s in m.latency):
        out.print("[dim]* the median's 95% interval did not reach ±1% within the time budget "
                  "(raise --latency-budget or pin --threads)[/]")

    t = Table(title="per-class accuracy")
    t.add_column("label")
    t.add_column("support", justify="right")
    for name, _ in models:
        t.add_column(name, justify="right")
    for i, c in enumerate(report.model.per_class):
        accs = [m.per_class[i].accuracy for _, m in models]
        t.add_row(c.label, str(c.support), *("-" if a is None else f"{a:.3f}" for a in accs))
    out.print(t)

    if report.comparison:
        c = report.comparison
        speed = ", ".join(f"{s.speedup:.2f}x @{s.batch_size}" for s in c.speedup)
        mem = f"; peak memory {c.memory_ratio:.2f}x the baseline's" if c.memory_ratio else ""
        out.print(f"[bold]this model vs baseline:[/] speed-up {speed}; file size {c.size_ratio:.2f}x the baseline's "
                  f"(zlib {c.compressed_size_ratio:.2f}x); accuracy {100 * c.accuracy_delta:+.2f} points{_delta_se(c)}{mem}",
                  highlight=False)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if report.gates:
        t = Table(title="gates")
        for col in ("gate", "value", "limit", "result"):
            t.add_column(col, justify="left" if col == "gate" else "right")
        for g in report.gates:
            t.add_row(g.name, "-" if g.value is None else f"{g.value:.4g}", f"{g.limit:.4g}",
                      "[green]pass[/]" if g.passed else "[bold red]FAIL[/]")
        out.print(t)
