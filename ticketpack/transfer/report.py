"""Summaries of a transfer run: ``report.json``, ``results.csv`` and ``accuracy_vs_sparsity.png``.

Everything here reads the run directory only (``plan.json`` and each ``jobs/*/result.json``), not the ticket, so
``ticketpack report RUN`` re-renders a finished, partial or copied run.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from ticketpack.errors import TicketpackError
from ticketpack.fileio import atomic_path, atomic_write_text, read_model, read_versioned, write_model
from ticketpack.transfer import layout
from ticketpack.transfer.records import PLAN_SCHEMA_VERSION, Cell, JobResult, TransferPlan, TransferReport
from ticketpack.version import __version__

CSV_COLUMNS = list(JobResult.model_fields)
# One colour and marker per strategy, the same in every plot.
STYLE = {
    "ticket": ("tab:blue", "o"),
    "finetune": ("tab:green", "s"),
    "random-reinit": ("tab:orange", "^"),
    "random-mask": ("tab:red", "v"),
    "target-ticket": ("tab:purple", "D"),
}


def read_plan(root: Path) -> TransferPlan:
    """``plan.json`` of a run, refused with a one-line error if absent, invalid or from another schema version."""
    return read_versioned(layout.plan(root), TransferPlan, PLAN_SCHEMA_VERSION, "transfer run",
                          "create one with `ticketpack transfer`")


def read_results(root: Path, plan: TransferPlan) -> list[JobResult]:
    """The finished jobs of the plan, in plan order."""
    out = []
    for job in plan.jobs:
        path = layout.job_result(root, job.job_id)
        if job.kind == "train" and path.exists():
            out.append(read_model(path, JobResult, "job result"))
    return out


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(root: Path, plan: TransferPlan, results: list[JobResult]) -> TransferReport:
    groups: dict[tuple[int, str], list[JobResult]] = {}
    for r in results:
        groups.setdefault((r.level, r.init), []).append(r)
    cells = []
    for (level, init), rs in groups.items():
        cells.append(Cell(
            level=level,
            init=init,
            weights_remaining=statistics.fmean(r.weights_remaining for r in rs),
            n=len(rs),
            target_test_mean=statistics.fmean(r.target_test_accuracy for r in rs),
            target_test_std=_std([r.target_test_accuracy for r in rs]),
            target_val_mean=statistics.fmean(r.target_val_accuracy for r in rs),
            source_test_mean=statistics.fmean(r.source_test_accuracy for r in rs),
            source_test_std=_std([r.source_test_accuracy for r in rs]),
        ))
    order = {name: i for i, name in enumerate(plan.inits)}
    cells.sort(key=lambda c: (c.level, order.get(c.init, len(order))))
    dense = next((c for c in cells if c.init == "dense"), None)
    return TransferReport(
        ticketpack_version=__version__,
        run_dir=str(Path(root)),
        ticket=plan.ticket,
        ticket_manifest_sha256=plan.ticket_manifest_sha256,
        model=plan.model,
        source_dataset=plan.source_dataset,
        source=plan.source,
        dataset=plan.dataset,
        target=plan.target,
        inits=plan.inits,
        levels=plan.levels,
        seeds=plan.seeds,
        train=plan.train,
        jobs_total=sum(1 for j in plan.jobs if j.kind == "train"),
        jobs_finished=len(results),
        dense=dense,
        cells=[c for c in cells if c.init != "dense"],
        results=results,
        files={"csv": layout.results_csv(root).name, "plot": layout.plot(root).name},
    )


def csv_text(results: list[JobResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: ("" if v is None else v) for k, v in r.model_dump().items()})
    return buf.getvalue()


def _pct(x: float) -> str:
    p = 100 * x
    return f"{p:.0f}" if p >= 99.5 or p == round(p) else (f"{p:.1f}" if p >= 1 else f"{p:.2f}")


def plot(report: TransferReport, path: Path) -> None:
    """Target test accuracy against % weights remaining (log x, sparser to the right), one line per strategy with
    ±1 std error bars over seeds, the dense reference as a horizontal band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=120)
    inits = [i for i in report.inits if i != "dense" and any(c.init == i for c in report.cells)]
    xs_all: set[float] = set()
    for k, init in enumerate(inits):
        cells = sorted((c for c in report.cells if c.init == init), key=lambda c: -c.weights_remaining)
        dodge = 1.025 ** (k - (len(inits) - 1) / 2)  # side by side, so error bars at one level do not overlap
        xs = [100 * c.weights_remaining * dodge for c in cells]
        xs_all.update(100 * c.weights_remaining for c in cells)
        color, marker = STYLE.get(init, (None, "o"))
        ax.errorbar(xs, [100 * c.target_test_mean for c in cells], yerr=[100 * c.target_test_std for c in cells],
                    label=init, color=color, marker=marker, capsize=3, linewidth=1.6, markersize=5)
    if report.dense is not None:
        d = report.dense
        ax.axhspan(100 * (d.target_test_mean - d.target_test_std), 100 * (d.target_test_mean + d.target_test_std),
                   color="0.5", alpha=0.18, linewidth=0)
        ax.axhline(100 * d.target_test_mean, color="0.35", linestyle="--", linewidth=1.2,
                   label=f"dense (100%): {fmt_pct(d.target_test_mean, d.target_test_std)}")
    ax.set_xscale("log")
    if xs_all:
        lo, hi = min(xs_all), max(xs_all)
        ax.set_xlim(hi * 1.25, lo / 1.25)  # reversed: 100% on the left, sparser to the right
        ax.xaxis.set_major_locator(FixedLocator(sorted(xs_all)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([_pct(x / 100) for x in sorted(xs_all)])
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.set_ylabel(f"test accuracy on {report.target} (%)")
    n = max((c.n for c in [*report.cells, *([report.dense] if report.dense else [])]), default=0)
    ax.set_title(
        f"{report.model.name} ticket from {report.source} → {report.target}\n"
        f"mean ± 1 std over {n} seed{'s' if n != 1 else ''}; dense: mean ± std band",
        fontsize=10,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def markdown_table(report: TransferReport) -> str:
    """Target test accuracy (%), mean ± std over seeds: one row per level, one column per strategy, dense below."""
    inits = [i for i in report.inits if i != "dense"]
    lines = [
        "| level | weights remaining | " + " | ".join(inits) + " |",
        "| ---: | ---: |" + " ---: |" * len(inits),
    ] if inits else []
    for level in sorted({c.level for c in report.cells}):
        row = {c.init: c for c in report.cells if c.level == level}
        wr = (row.get("ticket") or next(iter(row.values()))).weights_remaining
        vals = [fmt_pct(row[i].target_test_mean, row[i].target_test_std) if i in row else "" for i in inits]
        lines.append(f"| {level} | {_pct(wr)}% | " + " | ".join(vals) + " |")
    if report.dense is not None:
        d = report.dense
        lines += [""] if lines else []
        lines.append(f"dense (no mask, 100% weights): {fmt_pct(d.target_test_mean, d.target_test_std)} over {d.n} seeds")
    return "\n".join(lines) + "\n"


def render(root: Path) -> TransferReport:
    """(Re)write report.json, results.csv and the plot of the run in ``root`` from its finished jobs."""
    root = Path(root)
    plan = read_plan(root)
    results = read_results(root, plan)
    if not results:
        raise TicketpackError(f"{root}: no job has finished yet; run or resume it with `ticketpack transfer --resume`")
    report = summarize(root, plan, results)
    atomic_write_text(layout.results_csv(root), csv_text(results))
    plot(report, layout.plot(root))
    write_model(layout.report(root), report)
    return report


def fmt_pct(mean: float, std: float, sep: str = " ± ") -> str:
    """An accuracy and its spread in percent: ``81.2 ± 1.3``."""
    return f"{100 * mean:.1f}{sep}{100 * std:.1f}"
