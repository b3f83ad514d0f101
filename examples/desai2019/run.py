"""Desai, Zhan & Aly (2019) on real reviews, at full strength: tickets found in each category, transferred to each
other category, with paired 95% intervals over (ticket seed × retrain seed).

    python examples/desai2019/run.py [--config examples/desai2019/config.toml] [--work runs/desai2019] [--jobs 2]
                                     [--executor local|ray]

1. `ticketpack search` on every source category, once per search seed (config [search], `sources`,
   `search_seeds`), `--jobs` searches at a time (processes, or Ray tasks with `--executor ray`).
2. `ticketpack transfer` of every ticket to every other category (config [transfer]), `--jobs` jobs at a time on
   the same executor, whose workers serve every run (they start, import torch and featurize each category once). `target-ticket` reuses the target category's own ticket of the same seed (step 1 found it
   with the very search that strategy would run: `target_ticket`), so no category is searched twice. Jobs keep no
   weights (`keep_weights = false`: ~80 MB per model with the default 2^20-bucket text model); a run keeps its
   report.json, results.csv and plot (export a model from a run of your own).
3. Writes results/<source>-<target>/seed<k>/ (each run's report, table and plot) and results/summary.md: per pair
   and level, the paired differences ticket − random-mask, ticket − random-reinit, ticket − target-ticket and
   ticket − dense with a 95% t-interval over the 9 (ticket seed × retrain seed) pairs, and the training cost of
   each strategy (target-ticket including its own search).

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

from ticketpack.config_files import read_mapping
from ticketpack.hugepages import prefer_huge_pages
from ticketpack.search import SearchConfig, search
from ticketpack.transfer import TransferConfig, markdown_table, open_executor, run_transfer
from ticketpack.transfer import layout
from ticketpack.transfer.records import TransferReport
from ticketpack.transfer.report import pooled_cell
from ticketpack.stats import binomial_se

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COMPARED = ("random-mask", "random-reinit", "target-ticket", "dense")


def _search(cfg: dict, out: str) -> float:
    """One search (in a worker process or Ray task); its wall time in seconds."""
    t0 = time.perf_counter()
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


def pooled_rows(reports: dict[tuple[str, str], list[TransferReport]]) -> list[str]:
    """Per pair and level: the ticket's mean accuracy and each paired difference ``ticket − other`` over every
    (ticket seed, retrain seed) pair (the i-th level of each run: the same weights remaining for every seed)."""
    lines = ["| source → target | weights | ticket | " + " | ".join(f"ticket − {o}" for o in COMPARED) + " |",
             "| --- | ---: | ---: |" + " ---: |" * len(COMPARED)]
    for (source, target), runs in reports.items():
        for position in range(len(runs[0].levels)):
            acc, weights, pairs = [], [], {o: [] for o in COMPARED}
            for r in runs:
                level = r.levels[position]
                res = {(x.level, x.init, x.seed): x for x in r.results}
                dense = {x.seed: x.target_test_accuracy for x in r.results if x.init == "dense"}
                for seed in r.seeds:
                    ticket = res.get((level, "ticket", seed))
                    if ticket is None:
                        continue
                    acc.append(ticket.target_test_accuracy)
                    weights.append(ticket.weights_remaining)
                    for o in COMPARED:
                        other = dense.get(seed) if o == "dense" else getattr(res.get((level, o, seed)),
                                                                              "target_test_accuracy", None)
                        if other is not None:
                            pairs[o].append((ticket.target_test_accuracy, other))
            if not acc:
                continue
            cells = [pooled_cell(runs[0].levels[position], statistics.fmean(weights), "ticket", o, pairs[o])
                     for o in COMPARED]  # `*`: the interval excludes 0
            lines.append(f"| {source} → {target} | {100 * statistics.fmean(weights):.1f}% | "
                         f"{100 * statistics.fmean(acc):.1f} | " + " | ".join(cells) + " |")
    return lines


def cost_rows(reports: dict[tuple[str, str], list[TransferReport]]) -> list[str]:
    """Training cost per strategy over every run: per trained model, and the search a strategy needs first."""
    per: dict[str, dict[str, list[float]]] = {}
    for runs in reports.values():
        for r in runs:
            for c in r.costs:
                d = per.setdefault(c.init, {"steps": [], "seconds": [], "search_steps": [], "search_seconds": []})
                d["steps"].append(c.iterations_mean)
                d["seconds"].append(c.seconds_mean)
                d["search_steps"].append(c.search_iterations)
                d["search_seconds"].append(c.search_seconds)
    lines = ["| strategy | steps per model | seconds per model | search first per target (steps, s) |",
             "| --- | ---: | ---: | ---: |"]
    for init, d in per.items():
        search_s = statistics.fmean(d["search_seconds"])
        search = f"{statistics.fmean(d['search_steps']):,.0f}, {search_s:.1f}" if search_s else "none"
        lines.append(f"| {init} | {statistics.fmean(d['steps']):.0f} | {statistics.fmean(d['seconds']):.2f} | {search} |")
    return lines


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

    any_report = next(iter(reports.values()))[0]
    n_test = any_report.target_test_n or 0
    se = binomial_se(0.8, n_test) or 0.0
    summary = [
        "# Results: every ordered pair of books, dvd and electronics\n",
        f"{len(seeds)} tickets per source (search seeds {seeds}) × {len(any_report.seeds)} retrain seeds; "
        f"model `{any_report.model.name}`; written by `python examples/desai2019/run.py --jobs {args.jobs}` in "
        f"{timings['total'] / 60:.1f} min (searches {timings['searches']:.0f} s, transfers {timings['transfers']:.0f} s).\n",
        f"Target test splits have {n_test} reviews (one binomial standard error at 80%: {100 * se:.1f} points). "
        "Each ticket seed also draws its own 70/15/15 split, so the intervals include the split as well.\n",
        "## Paired differences (points): mean [95% t-interval] over (ticket seed × retrain seed)\n",
        "`*`: the interval excludes 0. `ticket` is the transferred ticket's mean test accuracy on the target (%).\n",
        *pooled_rows(reports),
        "\n## Cost of each strategy (mean over every run)\n",
        *cost_rows(reports),
        "\nA source ticket's search is paid once and reused in every target; `target-ticket` pays a search in every "
        "target domain (here the target's own ticket from step 1, found by that same search, so the study ran it "
        "once).\n",
        "Per run: `<source>-<target>/seed<k>/table.md` (accuracies, paired differences over the 3 retrain seeds, "
        "costs), `report.json`, `results.csv`, `accuracy_vs_sparsity.png`.\n",
    ]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "summary.md").write_text("\n".join(summary) + "\n")
    (args.results / "timings.json").write_text(
        json.dumps({"jobs": args.jobs, "executor": args.executor, "seconds": timings}, indent=2) + "\n")
    print("\n".join(summary))
    print(f"wrote {args.results}; total {timings['total']} s")


if __name__ == "__main__":
    main()
