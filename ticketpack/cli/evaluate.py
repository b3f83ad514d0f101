"""`ticketpack evaluate`: parse flags → Gates → ticketpack.evaluate.evaluate_model → tables (exit 1 on a failed gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import ThreadsOpt, err, out, pct

ProviderOpt = Annotated[str, typer.Option("--provider", help="auto (CUDA if ONNX Runtime offers it, else CPU), cpu or cuda.")]


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="Exported ticketpack ONNX model.")],
    dataset: Annotated[Optional[str], typer.Option(help="Dataset (digits or a directory); default: the card's.")] = None,
    domain: Annotated[Optional[str], typer.Option(help="Domain whose test split is used; default: the card's target (or source).")] = None,
    data_file: Annotated[Optional[Path], typer.Option("--data-file", help="Labelled JSONL/CSV file to evaluate on instead of a test split.")] = None,
    baseline: Annotated[Optional[Path], typer.Option(help="Another ONNX model (e.g. the dense export) measured side by side.")] = None,
    provider: ProviderOpt = "auto",
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="Comma-separated batch sizes to time.")] = "1,32,256",
    threads: ThreadsOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Seed of the train/val/test split (default: the card's).")] = None,
    latency_budget: Annotated[float, typer.Option("--latency-budget", help="Most seconds of timed runs per batch size.")] = 2.0,
    min_accuracy: Annotated[Optional[float], typer.Option("--min-accuracy", help="Gate: lowest test accuracy (0-1).")] = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option("--max-accuracy-drop", help="Gate: largest drop (0-1) below the baseline, or the card's dense reference.")] = None,
    max_p50_ms: Annotated[Optional[list[str]], typer.Option("--max-p50-ms", help="Gate: BATCH=MS, median latency limit (repeatable).")] = None,
    min_speedup: Annotated[Optional[float], typer.Option("--min-speedup", help="Gate: baseline p50 / model p50 at the largest batch size.")] = None,
    max_size_mb: Annotated[Optional[float], typer.Option("--max-size-mb", help="Gate: largest file size in MB.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON to this file ('-': stdout only).")] = None,
) -> None:
    """Accuracy, latency, size and memory of an exported model on ONNX Runtime, optionally against a baseline."""
    from pydantic import ValidationError

    from ticketpack.errors import TicketpackError
    from ticketpack.evaluate import Gates, evaluate_model
    from ticketpack.evaluate.gates import parse_batch_limits

    try:
        gates = Gates(min_accuracy=min_accuracy, max_accuracy_drop=max_accuracy_drop,
                      max_p50_ms=parse_batch_limits(max_p50_ms or []), min_speedup=min_speedup, max_size_mb=max_size_mb)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TicketpackError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    quiet = json_path is not None and str(json_path) == "-"
    if json_path is not None and not quiet:
        from ticketpack.fileio import check_writable_file

        check_writable_file(json_path, "--json")  # before the evaluation runs, not after
    report = evaluate_model(
        model, dataset=dataset, domain=domain, data_file=data_file, baseline=baseline, provider=provider,
        batch_sizes=batch_sizes, threads=threads, seed=seed, gates=gates, latency_budget_s=latency_budget,
        on_progress=lambda msg: err.print(f"[dim]{msg}[/]", highlight=False),
    )
    if quiet:
        from ticketpack.cli.common import print_json

        print_json(report)
        report.raise_for_gates()
        return
    if json_path is not None:
        from ticketpack.fileio import write_model

        write_model(json_path, report)
        err.print(f"report written to {json_path}")
    _render(report, provider)
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
    for col in ("", "format", "weights left", "accuracy", "size MB", "zlib MB", "peak mem MB"):
        t.add_column(col, justify="left" if col in ("", "format") else "right", no_wrap=col == "format")
    for name, m in models:
        fmt = (m.format or "-") + (f"+{m.quantize}" if m.quantize and m.quantize != "none" else "")
        t.add_row(name, fmt, pct(m.weights_remaining) if m.weights_remaining is not None else "-",
                  f"{m.accuracy:.4f}", _mb(m.file_bytes / 1e6), _mb(m.compressed_bytes / 1e6), _mb(m.peak_memory_mb))
    out.print(t)

    t = Table(title="latency per batch (ms, session.run on prepared tensors)")
    for col in ("batch", "", "p50", "p90", "p99", "runs", "items/s") + (("speed-up",) if report.comparison else ()):
        t.add_column(col, justify="left" if col == "" else "right")
    for i, bs in enumerate(s.batch_size for s in report.model.latency):
        for j, (name, m) in enumerate(models):
            s = m.latency[i]
            row = [str(bs) if j == 0 else "", name, f"{s.p50_ms:.3f}", f"{s.p90_ms:.3f}", f"{s.p99_ms:.3f}",
                   f"{s.runs}" + ("" if s.stable else "*"), f"{s.throughput_per_s:,.0f}"]
            if report.comparison:
                row.append(f"{report.comparison.speedup[i].speedup:.2f}x" if j == 0 else "")
            t.add_row(*row, end_section=j == len(models) - 1)
    out.print(t)
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
                  f"(zlib {c.compressed_size_ratio:.2f}x); accuracy {100 * c.accuracy_delta:+.2f} points{mem}",
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
