"""Summaries of a transfer run: ``report.json``, ``results.csv`` and ``accuracy_vs_sparsity.png``.

Everything here reads the run directory only (``plan.json`` and each ``jobs/*/result.json``), not the ticket, so
``ticketpack report RUN`` re-renders a finished, partial or copied run.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path

from ticketpack.core.errors import TicketpackError
from ticketpack.core.fileio import (
    atomic_path,
    atomic_write_text,
    read_model,
    read_versioned,
    write_model,
)
from ticketpack.core.stats import binomial_se, excludes_zero, t_interval
from ticketpack.transfer import layout
from ticketpack.transfer.pooling import SeedAccuracies
from ticketpack.transfer.records import (
    PLAN_SCHEMA_VERSION,
    Cell,
    JobResult,
    PairedDifference,
    StrategyCost,
    TransferPlan,
    TransferReport,
)
from ticketpack.transfer.strategies import ordered
from ticketpack.transfer.tables import (  # noqa: F401 (fmt_interval, cost_note: read from here by the examples)
    accuracy_table,
    cost_note,
    cost_table_of,
    fmt_interval,
    fmt_pct,
    paired_table_of,
    pct,
    to_markdown,
)
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


def paired_difference(level: int, weights_remaining: float, reference: str, other: str,
                      pairs: list[tuple[float, float]]) -> PairedDifference:
    """``reference − other`` over ``pairs`` of (reference accuracy, other accuracy) with the same seed: the t-interval
    of the per-seed differences, resolved when it excludes 0 (a paired test: both models of a pair share the data
    order, the test split and, for most strategies, the starting weights)."""
    mean, low, high = t_interval([a - b for a, b in pairs])
    return PairedDifference(level=level, weights_remaining=weights_remaining, reference=reference, other=other,
                            n=len(pairs), mean=mean, low=low, high=high, resolved=excludes_zero(low, high))


def _cell(level: int, init: str, rs: list[JobResult]) -> Cell:
    mean = statistics.fmean(r.target_test_accuracy for r in rs)
    return Cell(
        level=level,
        init=init,
        weights_remaining=statistics.fmean(r.weights_remaining for r in rs),
        n=len(rs),
        target_test_mean=mean,
        target_test_std=_std([r.target_test_accuracy for r in rs]),
        target_test_se=binomial_se(mean, rs[0].target_test_n),
        target_val_mean=statistics.fmean(r.target_val_accuracy for r in rs),
        source_test_mean=statistics.fmean(r.source_test_accuracy for r in rs),
        source_test_std=_std([r.source_test_accuracy for r in rs]),
        iterations_mean=statistics.fmean(r.iterations for r in rs),
        seconds_mean=statistics.fmean(r.seconds for r in rs),
    )


def _search_cost(ticket_dir: Path, init: str, jobs: int = 0) -> StrategyCost | None:
    """Steps, wall and CPU time of the IMP search in ``ticket_dir``: its setup and every round (None if it cannot be
    read; training time only for a ticket written before ticketpack recorded the rest)."""
    from ticketpack.search import load_manifest

    try:
        manifest = load_manifest(ticket_dir)
    except (TicketpackError, OSError):
        return None
    rounds = manifest.rounds
    wall = (manifest.setup_seconds or 0.0) + sum(r.wall_seconds if r.wall_seconds is not None else r.seconds
                                                 for r in rounds)
    cpu_parts = [manifest.setup_cpu_seconds, *(r.cpu_seconds for r in rounds)]
    threads = manifest.config.threads
    return StrategyCost(init=init, jobs=jobs, iterations_mean=0.0, seconds_mean=0.0,
                        threads=threads if isinstance(threads, int) else None,
                        search_iterations=sum(r.iterations for r in rounds), search_seconds=round(wall, 3),
                        search_cpu_seconds=round(sum(cpu_parts), 3) if None not in cpu_parts else None)


def _startup(results: list[JobResult]) -> float | None:
    """How much longer a worker's first job took than the other jobs of its strategy and level, on average."""
    warm: dict[tuple[int, str], list[float]] = {}
    for r in results:
        if not r.first_in_worker:
            warm.setdefault((r.level, r.init), []).append(r.seconds)
    extra = [r.seconds - statistics.fmean(warm[r.level, r.init]) for r in results
             if r.first_in_worker and len(warm.get((r.level, r.init), [])) >= 2]
    return round(statistics.fmean(extra), 3) if extra else None


def _costs(target_ticket: Path, results: list[JobResult]) -> list[StrategyCost]:
    """Per strategy: steps, wall and CPU seconds per trained model (a worker's first job, which also pays the
    worker's start-up, left out where others exist), and the search a strategy needs first."""
    by_init: dict[str, list[JobResult]] = {}
    for r in results:
        by_init.setdefault(r.init, []).append(r)
    startup = _startup(results)
    costs = []
    for init in ordered(by_init):
        rs = by_init[init]
        warm = [r for r in rs if not r.first_in_worker] or rs
        cpu = [r.cpu_seconds for r in warm if r.cpu_seconds is not None]
        threads = {r.threads for r in warm} - {None}
        searched = any(r.target_round is not None for r in rs)  # started from a ticket found on the target
        search = _search_cost(target_ticket, init) if searched else None
        costs.append(StrategyCost(
            init=init, jobs=len(rs), iterations_mean=statistics.fmean(r.iterations for r in rs),
            seconds_mean=round(statistics.fmean(r.seconds for r in warm), 3),
            cpu_seconds_mean=round(statistics.fmean(cpu), 3) if cpu else None,
            threads=threads.pop() if len(threads) == 1 else None,
            startup_seconds=startup,
            search_iterations=search.search_iterations if search else 0,
            search_seconds=search.search_seconds if search else 0.0,
            search_cpu_seconds=search.search_cpu_seconds if search else None,
        ))
    return costs


def _machine(results: list[JobResult]) -> dict[str, float | int | None]:
    """The machine's cores and its load while the jobs ran, as the jobs recorded them (not the machine that renders
    the report)."""
    loads = [r.load_1min for r in results if r.load_1min is not None]
    cores = [r.cores for r in results if r.cores is not None]
    return {"cores": max(cores) if cores else None, "load_mean": round(statistics.fmean(loads), 2) if loads else None,
            "load_max": max(loads) if loads else None}


def last_evaluation_best(results: list[JobResult]) -> float | None:
    """Share of models whose best validation step was their last one (still improving when training stopped)."""
    trained = [r for r in results if r.iterations]
    return sum(r.best_iteration >= r.iterations for r in trained) / len(trained) if trained else None


def _paired(cells: list[Cell], results: list[JobResult], reference: str = "ticket") -> list[PairedDifference]:
    """``reference − other`` per level and seed, for every other strategy run (dense: its one level-0 model)."""
    accuracy = SeedAccuracies(results)
    seeds = sorted({r.seed for r in results})
    out = []
    for cell in cells:
        if cell.init != reference:
            continue
        for other in ordered({r.init for r in results} - {reference}):
            pairs = [(a, b) for seed in seeds
                     if (a := accuracy(cell.level, reference, seed)) is not None
                     and (b := accuracy(cell.level, other, seed)) is not None]
            if pairs:
                out.append(paired_difference(cell.level, cell.weights_remaining, reference, other, pairs))
    return out


def _warnings(report_n: int | None, resolvable: float | None, paired: list[PairedDifference],
              last_best: float | None) -> list[str]:
    notes = []
    if resolvable is not None and paired:
        below = [p for p in paired if abs(p.mean) < resolvable]
        if below:
            notes.append(
                f"the target test split has {report_n} examples: on another split of that size, two models' "
                f"accuracies can differ by up to {100 * resolvable:.1f} points by chance alone (95%), and {len(below)} "
                f"of the {len(paired)} paired differences are smaller than that; even where resolved over seeds on "
                "this split, they may not carry over to new data of this domain (pool runs over several split "
                "seeds, as examples/desai2019 does, or use a larger test split)"
            )
    if last_best is not None and last_best > 0.2:
        notes.append(f"{100 * last_best:.0f}% of the models were best at their last evaluation, still improving when "
                     "training stopped: lengthen the recipe (epochs, with patience to stop the ones that are done)")
    if any(p.n < 2 for p in paired):
        notes.append("one seed per strategy: no interval over seeds; run 3 seeds or more")
    return notes


def summarize(root: Path, plan: TransferPlan, results: list[JobResult]) -> TransferReport:
    groups: dict[tuple[int, str], list[JobResult]] = {}
    for r in results:
        groups.setdefault((r.level, r.init), []).append(r)
    cells = [_cell(level, init, rs) for (level, init), rs in groups.items()]
    order = {name: i for i, name in enumerate(ordered(plan.inits))}
    cells.sort(key=lambda c: (c.level, order.get(c.init, len(order))))
    unmasked = {r.init for r in results if r.mask_sha256 is None}  # the dense reference: trained without a mask
    dense = next((c for c in cells if c.init in unmasked), None)
    test_n = next((r.target_test_n for r in results if r.target_test_n), None)
    base = dense.target_test_mean if dense else statistics.fmean(r.target_test_accuracy for r in results)
    se = binomial_se(base, test_n)
    resolvable = 1.96 * math.sqrt(2) * se if se is not None else None
    pruned = [c for c in cells if c.init not in unmasked]
    paired = _paired(pruned, results)
    last_best = last_evaluation_best(results)
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
        cells=pruned,
        paired=paired,
        costs=_costs(layout.target_ticket(root, plan.target_ticket), results),
        source_search=_search_cost(Path(plan.ticket), "source search"),
        target_test_n=test_n,
        resolvable_difference=resolvable,
        last_evaluation_best=last_best,
        machine=_machine(results),
        warnings=_warnings(test_n, resolvable, paired, last_best),
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


def _cost_label(report: TransferReport, init: str) -> str:
    """``ticket (2.1 s/model)``, ``target-ticket (2.0 s/model + 41 s search)``: the legend shows the cost."""
    cost = next((c for c in report.costs if c.init == init), None)
    if cost is None:
        return init
    search = f" + {cost.search_seconds:.0f} s search" if cost.search_iterations else ""
    return f"{init} ({cost.seconds_mean:.1f} s/model{search})"


def plot(report: TransferReport, path: Path) -> None:
    """Target test accuracy against % weights remaining (log x, sparser to the right), one line per strategy with
    ±1 std error bars over seeds, the dense reference as a horizontal band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=120)
    inits = [i for i in ordered(report.inits) if any(c.init == i for c in report.cells)]
    xs_all: set[float] = set()
    for k, init in enumerate(inits):
        cells = sorted((c for c in report.cells if c.init == init), key=lambda c: -c.weights_remaining)
        dodge = 1.025 ** (k - (len(inits) - 1) / 2)  # side by side, so error bars at one level do not overlap
        xs = [100 * c.weights_remaining * dodge for c in cells]
        xs_all.update(100 * c.weights_remaining for c in cells)
        color, marker = STYLE.get(init, (None, "o"))
        ax.errorbar(xs, [100 * c.target_test_mean for c in cells], yerr=[100 * c.target_test_std for c in cells],
                    label=_cost_label(report, init), color=color, marker=marker, capsize=3, linewidth=1.6,
                    markersize=5)
    if report.dense is not None:
        d = report.dense
        ax.axhspan(100 * (d.target_test_mean - d.target_test_std), 100 * (d.target_test_mean + d.target_test_std),
                   color="0.5", alpha=0.18, linewidth=0)
        ax.axhline(100 * d.target_test_mean, color="0.35", linestyle="--", linewidth=1.2,
                   label=f"{_cost_label(report, 'dense')}: {fmt_pct(d.target_test_mean, d.target_test_std)}")
    ax.set_xscale("log")
    if xs_all:
        lo, hi = min(xs_all), max(xs_all)
        ax.set_xlim(hi * 1.25, lo / 1.25)  # reversed: 100% on the left, sparser to the right
        ax.xaxis.set_major_locator(FixedLocator(sorted(xs_all)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([pct(x / 100) for x in sorted(xs_all)])
    ax.set_xlabel("% of weights remaining (log scale)")
    ax.set_ylabel(f"test accuracy on {report.target} (%)")
    n = max((c.n for c in [*report.cells, *([report.dense] if report.dense else [])]), default=0)
    ax.set_title(
        f"{report.model.name} ticket from {report.source} → {report.target}\n"
        f"mean ± 1 std over {n} seed{'s' if n != 1 else ''}; dense: mean ± std band"
        + (f"; test split {report.target_test_n} examples (SE {100 * se:.1f} pts)"
           if (se := binomial_se(report.dense.target_test_mean if report.dense else 0.5, report.target_test_n))
           else ""),
        fontsize=10,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def markdown_table(report: TransferReport) -> str:
    """The report in markdown: the accuracy table (target test accuracy (%), mean ± std over seeds, one row per
    level, one column per strategy, the dense reference in its caption); what the split can resolve; the paired
    differences, the training cost per strategy and the warnings. The tables are :mod:`ticketpack.transfer.tables`'."""
    lines = [to_markdown(accuracy_table(report))] if report.cells else []
    if report.target_test_n:
        se = binomial_se(report.dense.target_test_mean if report.dense else 0.5, report.target_test_n)
        lines += ["", (f"Test split: {report.target_test_n} examples, so one accuracy has a standard error of "
                       f"{100 * se:.1f} points from the split alone; on another split of that size two models could "
                       f"differ by up to {100 * (report.resolvable_difference or 0):.1f} points by chance (95%).")]
    if report.last_evaluation_best is not None:
        lines += ["", (f"{100 * report.last_evaluation_best:.0f}% of the {len(report.results)} models were best at "
                       "their last evaluation (still improving when training stopped).")]
    if report.paired:
        lines += ["", paired_table(report.paired)]
    if report.costs:
        lines += ["", cost_table(report)]
    lines += [f"\n**warning:** {w}" for w in report.warnings]
    return "\n".join(lines).lstrip("\n") + "\n"


def paired_table(paired: list[PairedDifference]) -> str:
    """``reference − other`` (points), mean and 95% interval over the pairs, one row per level, in markdown."""
    return to_markdown(paired_table_of(paired))


def cost_table(report: TransferReport) -> str:
    """Training cost per strategy in markdown: steps, wall and CPU seconds per model, any search it needs first."""
    return to_markdown(cost_table_of(report))


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
