"""Desai, Zhan & Aly (2019) on real reviews, at full strength: tickets found in each category, transferred to each
other category under every initialization strategy, with paired differences and cluster bootstrap intervals.

    python examples/desai2019/run.py [--config examples/desai2019/config.toml] [--work runs/desai2019] [--jobs 2]
                                     [--executor local|ray]

1. `ticketpack search` on every source category, once per search seed (config [search], `sources`,
   `search_seeds`), `--jobs` searches at a time (processes, or Ray tasks with `--executor ray`).
2. `ticketpack transfer` of every ticket to every other category (config [transfer]), `--jobs` jobs at a time on
   the same executor, whose workers serve every run (they start, import torch and featurize each category
   once). `target-ticket` reuses the target category's own ticket of the same seed (step 1 found it
   with the very search that strategy would run: `target_ticket`), so no category is searched twice. Jobs keep no
   weights (`keep_weights = false`: ~80 MB per model with the default 2^20-bucket text model); a run keeps its
   report.json, results.csv and plot (export a model from a run of your own).
3. Writes results/<source>-<target>/seed<k>/ (each run's report, table and plot) and results/summary.md: every
   strategy's accuracy per pair and level; the paired differences ticket − each other strategy per pair, and over
   all pairs, with 95% two-stage cluster bootstrap intervals (clusters: ticket seeds, which hold everything runs
   share); the share of models still improving at their last evaluation; the wall and CPU cost of each strategy
   (target-ticket including its own search), with the machine's load.

Killed? Run it again: finished searches and transfer jobs are reused.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ticketpack.core.config_files import read_mapping
from ticketpack.core.hugepages import prefer_huge_pages
from ticketpack.core.stats import binomial_se
from ticketpack.data.domain import FeatureCache
from ticketpack.search import SearchConfig, search
from ticketpack.transfer import (
    TransferConfig,
    layout,
    markdown_table,
    open_executor,
    run_transfer,
)
from ticketpack.transfer.pooling import pool_level, pooled_cell
from ticketpack.transfer.records import TransferReport
from ticketpack.transfer.report import last_evaluation_best
from ticketpack.transfer.strategies import ordered

HERE = Path(__file__).resolve().parent
FEATURES = FeatureCache()  # this script's: each search process keeps the domains it featurized
ROOT = HERE.parents[1]


def _search(cfg: dict, out: str) -> float:
    """One search (in a worker process or Ray task); its wall time in seconds."""
    t0 = time.perf_counter()
    with FEATURES.using():  # a process's searches featurize each domain once
        search(SearchConfig.model_validate(cfg), Path(out), resume=True)
    return time.perf_counter() - t0


def run_searches(todo: list[tuple[dict, Path]], jobs: int, executor: str) -> list[float]:
    if executor == "ray":
        import ray

        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=1)(_search)
        return ray.get([task.remote(cfg, str(out)) for cfg, out in todo])
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_search, [c for c, _ in todo], [str(o) for _, o in todo]))


def accuracy_rows(reports: dict[tuple[str, str], list[TransferReport]], INITS: list[str]) -> list[str]:
    """Per pair and level: each strategy's mean target test accuracy (%) over every (ticket seed, retrain seed), the
    best in bold."""
    lines = ["| source → target | weights | " + " | ".join(INITS) + " |",
             "| --- | ---: |" + " ---: |" * len(INITS)]
    for (source, target), runs in reports.items():
        for position in range(len(runs[0].levels)):
            pool = pool_level(runs, position, INITS)
            if not pool.weights:
                continue
            best = max(INITS, key=lambda i: statistics.fmean(pool.accuracies[i]) if pool.accuracies[i] else 0.0)
            cells = [(f"**{100 * statistics.fmean(a):.1f}**" if i == best else f"{100 * statistics.fmean(a):.1f}")
                     if a else "" for i, a in pool.accuracies.items()]
            lines.append(f"| {source} → {target} | {100 * statistics.fmean(pool.weights):.1f}% | "
                         + " | ".join(cells) + " |")
    return lines


def pooled_rows(reports: dict[tuple[str, str], list[TransferReport]], INITS: list[str]) -> list[str]:
    """Per pair and level: ``ticket − other`` per retrain seed, clustered by ticket seed (one run each), with a
    two-stage cluster bootstrap interval."""
    COMPARED = INITS[1:]
    lines = ["| source → target | weights | " + " | ".join(f"ticket − {o}" for o in COMPARED) + " |",
             "| --- | ---: |" + " ---: |" * len(COMPARED)]
    for (source, target), runs in reports.items():
        for position in range(len(runs[0].levels)):
            pool = pool_level(runs, position, INITS)
            if pool.weights:
                lines.append(f"| {source} → {target} | {100 * statistics.fmean(pool.weights):.1f}% | "
                             + " | ".join(pooled_cell(pool.differences[o]) for o in COMPARED) + " |")
    return lines


def overall_rows(reports: dict[tuple[str, str], list[TransferReport]], INITS: list[str], seeds: list[int]) -> list[str]:
    """Per level, over every pair: ``ticket − other``, one cluster per ticket seed (everything the runs of a seed
    share: its splits, its tickets, the baselines trained on each target)."""
    COMPARED = INITS[1:]
    lines = ["| weights | " + " | ".join(f"ticket − {o}" for o in COMPARED) + " |",
             "| ---: |" + " ---: |" * len(COMPARED)]
    levels = len(next(iter(reports.values()))[0].levels)
    for position in range(levels):
        clusters: dict[str, list[list[float]]] = {o: [[] for _ in seeds] for o in COMPARED}
        weights: list[float] = []
        for runs in reports.values():
            pool = pool_level(runs, position, INITS)
            weights += pool.weights
            for o in COMPARED:
                for k, diffs in enumerate(pool.differences[o]):
                    clusters[o][k] += diffs
        lines.append(f"| {100 * statistics.fmean(weights):.1f}% | "
                     + " | ".join(pooled_cell(clusters[o]) for o in COMPARED) + " |")
    return lines


def cost_rows(reports: dict[tuple[str, str], list[TransferReport]]) -> tuple[list[str], str]:
    """Training cost per strategy over every run (per trained model, a worker's first job left out), the search a
    strategy needs first (setup and every round), and a note on threads, load and the workers' start-up."""
    per: dict[str, dict[str, list[float]]] = {}
    startups, loads = [], []
    for runs in reports.values():
        for r in runs:
            startups += [c.startup_seconds for c in r.costs[:1] if c.startup_seconds is not None]
            loads += [x.load_1min for x in r.results if x.load_1min is not None]
            for c in r.costs:
                d = per.setdefault(c.init, {k: [] for k in ("steps", "s", "cpu", "search_s", "search_cpu", "models")})
                d["models"].append(c.jobs)
                d["steps"].append(c.iterations_mean)
                d["s"].append(c.seconds_mean)
                d["cpu"] += [c.cpu_seconds_mean] if c.cpu_seconds_mean is not None else []
                if c.search_iterations:
                    d["search_s"].append(c.search_seconds)
                    d["search_cpu"] += [c.search_cpu_seconds] if c.search_cpu_seconds is not None else []
    lines = ["| strategy | models | steps per model | s per model | CPU-s per model | search first, per target "
             "(s, CPU-s) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for init in ordered(per):
        d = per[init]
        mean = lambda xs: statistics.fmean(xs) if xs else float("nan")  # noqa: E731
        search = f"{mean(d['search_s']):.1f}, {mean(d['search_cpu']):.1f}" if d["search_s"] else "none"
        lines.append(f"| {init} | {sum(d['models']):,.0f} | {mean(d['steps']):.0f} | {mean(d['s']):.2f} | "
                     f"{mean(d['cpu']):.2f} | {search} |")
    cores = max((r.machine["cores"] for runs in reports.values() for r in runs if r.machine.get("cores")), default=None)
    note = (f"One torch thread per job, {cores} cores; the machine's 1-minute load averaged "
            f"{statistics.fmean(loads):.1f} (at most {max(loads):.1f}) while the jobs ran, so wall seconds run above "
            "CPU-seconds where other work shared the cores. " if loads else "")
    if startups:
        note += (f"A worker's first job took {statistics.fmean(startups):+.1f} s longer than the others on average "
                 "(the worker's start-up: torch's first calls and allocations), charged to no strategy. ")
    return lines, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=HERE / "config.toml")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "desai2019", help="Tickets and runs (large).")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args()
    prefer_huge_pages()  # what the ticketpack command does: before any tensor (the search processes inherit it)

    started = time.perf_counter()
    raw = read_mapping(args.config)
    base = dict(raw["search"])
    if not Path(base["dataset"]).is_absolute():
        base["dataset"] = str((ROOT / base["dataset"]).resolve())
    sources, seeds = raw["sources"], raw["search_seeds"]
    tickets = {(s, k): args.work / f"ticket-{s}-seed{k}" for s in sources for k in seeds}
    todo = [({**base, "source": s, "seed": k}, out) for (s, k), out in tickets.items()]
    print(f"search: {len(todo)} tickets ({', '.join(sources)} × seeds {seeds}), {args.jobs} at a time", flush=True)
    t0 = time.perf_counter()
    run_searches(todo, args.jobs, args.executor)
    timings = {"searches": round(time.perf_counter() - t0, 1)}

    reports: dict[tuple[str, str], list[TransferReport]] = {
        pair: [] for pair in itertools.permutations(sources, 2)}
    t0 = time.perf_counter()
    threads = raw["transfer"].get("threads", 1)
    # one set of workers for every run; seed by seed, so that a worker's featurized categories serve six runs
    with open_executor(args.executor, args.jobs, threads) as workers:
        for k in seeds:
            for source, target in reports:
                run_dir = args.work / f"{source}-{target}-seed{k}"
                given = {"target_ticket": str(tickets[target, k])} if (target, k) in tickets else {}
                tcfg = TransferConfig.model_validate({**raw["transfer"], **given, "ticket": str(tickets[source, k]),
                                                      "target": target})
                print(f"transfer: {source} → {target}, ticket seed {k}", flush=True)
                report = run_transfer(tcfg, run_dir, resume=True, executor=workers)
                reports[source, target].append(report)
                dest = args.results / f"{source}-{target}" / f"seed{k}"
                dest.mkdir(parents=True, exist_ok=True)
                for src in (layout.report(run_dir), layout.results_csv(run_dir), layout.plot(run_dir)):
                    shutil.copy2(src, dest / src.name)
                (dest / "table.md").write_text(markdown_table(report))
    timings["transfers"] = round(time.perf_counter() - t0, 1)
    timings["total"] = round(time.perf_counter() - started, 1)
    spent = record_timings(args.work / "timings.json", timings)  # a killed and resumed study adds up its parts

    inits = ordered(raw["transfer"]["inits"])
    any_report = next(iter(reports.values()))[0]
    n_test = any_report.target_test_n or 0
    se = binomial_se(0.8, n_test) or 0.0
    every = [x for runs in reports.values() for r in runs for x in r.results]
    last = last_evaluation_best(every) or 0.0
    costs, cost_note = cost_rows(reports)
    summary = [
        "# Results: every ordered pair of books, dvd and electronics\n",
        f"{len(seeds)} tickets per source (search seeds {seeds}) × {len(any_report.seeds)} retrain seeds; "
        f"model `{any_report.model.name}`; {len(every):,} models trained on the targets; written by "
        f"`python examples/desai2019/run.py --jobs {args.jobs}` in {spent['total'] / 60:.1f} min of wall time over "
        f"{spent['invocations']} invocation(s) (searches {spent['searches']:.0f} s, transfers "
        f"{spent['transfers']:.0f} s).\n",
        f"Target test splits have {n_test} reviews (one binomial standard error at 80%: {100 * se:.1f} points). "
        "Each ticket seed draws its own 70/15/15 split of every domain.\n",
        f"**{100 * last:.0f}% of the {len(every):,} models were best at their last evaluation** (still improving when "
        "training stopped; the recipe: up to 20 epochs, stopped 2 evaluations after the best).\n",
        "## Mean test accuracy on the target (%), every strategy\n",
        "Over the 3 ticket seeds × 3 retrain seeds; the best of each row in bold.\n",
        *accuracy_rows(reports, inits),
        "\n## Paired differences per pair (points)\n",
        "`ticket − other` per retrain seed (same data order, same split), clustered by ticket seed: mean [95% "
        "interval of a two-stage cluster bootstrap: ticket seeds, then retrain seeds within each]. ` *`: resolved, "
        "the interval excludes 0. With 3 ticket seeds the interval cannot reach beyond their spread: read a resolved "
        "difference as large and consistent, an unresolved one as not shown either way.\n",
        *pooled_rows(reports, inits),
        "\n## Over every pair, per level (points)\n",
        "The same differences over all six pairs, one cluster per ticket seed: the runs of a seed share its data "
        "splits, each source's ticket (transferred to both other domains), and the baselines of each target "
        "(`dense` and `target-ticket` are the same models, by seed, whichever source the ticket came from).\n",
        *overall_rows(reports, inits, seeds),
        "\n## Cost of each strategy (mean over every run)\n",
        *costs,
        "",
        cost_note,
        "\nA source ticket's search is paid once and reused in every target; `target-ticket` pays a search in every "
        "target domain (here the target's own ticket from step 1, found by that same search, so the study ran it "
        "once); its figure is that search's whole wall and CPU time: data, model, every round's pruning, training, "
        "evaluation and files.\n",
        "Per run: `<source>-<target>/seed<k>/table.md` (accuracies, paired differences over the 3 retrain seeds, "
        "costs), `report.json`, `results.csv`, `accuracy_vs_sparsity.png`.\n",
    ]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "summary.md").write_text("\n".join(summary) + "\n")
    (args.results / "timings.json").write_text(
        json.dumps({"jobs": args.jobs, "executor": args.executor, "seconds": spent}, indent=2) + "\n")
    print("\n".join(summary))
    print(f"wrote {args.results}; this invocation {timings['total']} s")


def record_timings(path: Path, timings: dict[str, float]) -> dict[str, float]:
    """Add this invocation's stage times to those of earlier invocations on the same work directory."""
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(timings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=2) + "\n")
    spent = {k: round(sum(r.get(k, 0.0) for r in runs), 1) for k in ("searches", "transfers", "total")}
    return {**spent, "invocations": len(runs)}


if __name__ == "__main__":
    main()
