"""Desai, Zhan & Aly (2019) on two digit datasets: a ticket found on MNIST re-trained on scikit-learn's digits, and
one found on digits re-trained on MNIST, with paired 95% intervals over (ticket seed × retrain seed).

    python examples/mnist_digits/run.py [--work runs/mnist_digits] [--jobs 2] [--quick]

The data come from the dataset factory beside this script, ``data.py:mnist_digits`` (two domains, ``mnist`` and
``digits``, both 8×8 in 0..16; see its docstring), given to ticketpack as ``dataset="<abs path>/data.py:mnist_digits"``.

1. Search a lenet-300-100 ticket on each domain, once per search seed 0, 1, 2 (IMP, global magnitude, 20% of the
   remaining weights per round, 10 rounds, rewinding to θ0; the model's default recipe), ``--jobs`` at a time.
2. Transfer each ticket to the other domain: inits ticket, random-reinit, random-mask, dense and target-ticket,
   3 retrain seeds, at rounds 3, 7 and 10 (~51%, ~21% and ~11% of the weights). ``target-ticket`` is found by
   each run's own IMP search on the target. It cannot reuse the target domain's ticket from step 1 (as
   examples/desai2019 does): ticketpack fits an image dataset's mean and std on the source's training split, so
   the target search runs with the source ticket's normalization (what a model trained on the source sees) and
   step 1's target ticket, normalized by its own domain, is a different search (ticketpack refuses it, "differs
   in: preprocessing"). One set of ``--jobs`` worker processes serves every run.
3. Writes results/<source>-<target>/seed<k>/ (each run's report.json, results.csv, plot and table.md) and
   results/summary.md: per direction and level, each strategy's mean accuracy on the target, and the paired
   differences ticket − each other strategy with a 95% cluster bootstrap interval over the 9 (ticket seed × retrain
   seed) pairs, clustered by ticket seed.

``--quick``: a smoke run (search seed 0 only, 2 rounds, 1 retrain seed, every round), writing under
``<work>/quick`` and ``<work>/quick/results`` so that it never touches the full study's tickets or results.

Killed? Run it again: finished searches and transfer jobs are reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ticketpack.core.hugepages import prefer_huge_pages
from ticketpack.core.stats import binomial_se
from ticketpack.data.domain import FeatureCache
from ticketpack.search import SearchConfig, Ticket, search
from ticketpack.transfer import (
    TransferConfig,
    layout,
    markdown_table,
    open_executor,
    run_transfer,
)
from ticketpack.transfer.pooling import pool_level, pooled_cell
from ticketpack.transfer.records import TransferReport

HERE = Path(__file__).resolve().parent
FEATURES = FeatureCache()  # this script's: each search process keeps the domains it featurized
ROOT = HERE.parents[1]
DATASET = f"{HERE / 'data.py'}:mnist_digits"
DOMAINS = ("mnist", "digits")
DIRECTIONS = (("mnist", "digits"), ("digits", "mnist"))
INITS = ["ticket", "random-reinit", "random-mask", "target-ticket", "dense"]  # in the order of every table
COMPARED = INITS[1:]

FULL = {"search_seeds": [0, 1, 2], "rounds": 10, "levels": [3, 7, 10], "retrain_seeds": 3}
QUICK = {"search_seeds": [0], "rounds": 2, "levels": None, "retrain_seeds": 1}


def search_config(source: str, seed: int, rounds: int) -> dict:
    """One ticket search on ``source`` (``SearchConfig`` keys): lenet-300-100 with its default recipe."""
    return {"dataset": DATASET, "source": source, "model": {"name": "lenet-300-100"}, "seed": seed, "threads": 1,
            "prune": {"strategy": "global", "rate": 0.2, "rounds": rounds}}


def _search(cfg: dict, out: str) -> float:
    """One search (in a worker process); its wall time in seconds."""
    t0 = time.perf_counter()
    with FEATURES.using():  # a process's searches featurize each domain once
        search(SearchConfig.model_validate(cfg), Path(out), resume=True)
    return time.perf_counter() - t0


def run_searches(todo: list[tuple[dict, Path]], jobs: int) -> list[float]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_search, [c for c, _ in todo], [str(o) for _, o in todo]))


def accuracy_rows(reports: dict[tuple[str, str], list[TransferReport]]) -> list[str]:
    """Per direction and level: each strategy's mean target test accuracy (%) over every (ticket seed, retrain
    seed), ± the standard deviation over them."""
    lines = ["| source → target | level | weights | " + " | ".join(INITS) + " |",
             "| --- | ---: | ---: |" + " ---: |" * len(INITS)]
    for (source, target), runs in reports.items():
        for position in range(len(runs[0].levels)):
            pool = pool_level(runs, position, INITS)
            if not pool.weights:
                continue
            cells = [f"{100 * statistics.fmean(a):.1f} ± {100 * statistics.stdev(a):.1f}" if len(a) > 1 else
                     (f"{100 * a[0]:.1f}" if a else "") for a in pool.accuracies.values()]
            lines.append(f"| {source} → {target} | {runs[0].levels[position]} | "
                         f"{100 * statistics.fmean(pool.weights):.1f}% | " + " | ".join(cells) + " |")
    return lines


def pooled_rows(reports: dict[tuple[str, str], list[TransferReport]]) -> list[str]:
    """Per direction and level: the ticket's mean accuracy and each paired difference ``ticket − other`` per retrain
    seed, clustered by ticket seed (one run each), with a two-stage cluster bootstrap interval."""
    lines = ["| source → target | level | weights | ticket | " + " | ".join(f"ticket − {o}" for o in COMPARED) + " |",
             "| --- | ---: | ---: | ---: |" + " ---: |" * len(COMPARED)]
    for (source, target), runs in reports.items():
        for position in range(len(runs[0].levels)):
            pool = pool_level(runs, position, INITS)
            if not pool.weights:
                continue
            lines.append(f"| {source} → {target} | {runs[0].levels[position]} | "
                         f"{100 * statistics.fmean(pool.weights):.1f}% | "
                         f"{100 * statistics.fmean(pool.accuracies['ticket']):.1f} | "
                         + " | ".join(pooled_cell(pool.differences[o]) for o in COMPARED) + " |")
    return lines


def search_rows(tickets: dict[tuple[str, int], Path], levels: list[int]) -> list[str]:
    """Each source's tickets on their own domain: test accuracy per transferred round, mean over search seeds."""
    lines = ["| source | round | weights | source test accuracy (mean over tickets) | search time per ticket |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for source in DOMAINS:
        manifests = [Ticket.load(p).manifest for (s, _), p in tickets.items() if s == source]
        seconds = statistics.fmean(sum(r.seconds for r in m.rounds) for m in manifests)
        for rnd in [0, *levels]:
            recs = [m.rounds[rnd] for m in manifests if rnd < len(m.rounds)]
            lines.append(f"| {source} | {rnd} | {100 * statistics.fmean(r.weights_remaining for r in recs):.1f}% | "
                         f"{100 * statistics.fmean(r.test_accuracy for r in recs):.1f} | {seconds:.1f} s |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "mnist_digits", help="Tickets and runs.")
    ap.add_argument("--jobs", type=int, default=2, help="Searches and transfer jobs at a time (processes).")
    ap.add_argument("--quick", action="store_true", help="Smoke run: 1 seed, 2 rounds, under <work>/quick.")
    ap.add_argument("--results", type=Path, default=None,
                    help="Where reports and summary.md go (default: results/ beside this script; <work>/quick/results "
                         "with --quick).")
    args = ap.parse_args()
    prefer_huge_pages()  # what the ticketpack command does: before any tensor (the search processes inherit it)
    study = QUICK if args.quick else FULL
    work = args.work / "quick" if args.quick else args.work
    results = args.results or (work / "results" if args.quick else HERE / "results")

    started = time.perf_counter()
    seeds = study["search_seeds"]
    tickets = {(s, k): work / f"ticket-{s}-seed{k}" for s in DOMAINS for k in seeds}
    todo = [(search_config(s, k, study["rounds"]), out) for (s, k), out in tickets.items()]
    print(f"search: {len(todo)} tickets ({', '.join(DOMAINS)} × seeds {seeds}), {args.jobs} at a time", flush=True)
    t0 = time.perf_counter()
    run_searches(todo, args.jobs)
    timings = {"searches": round(time.perf_counter() - t0, 1)}

    reports: dict[tuple[str, str], list[TransferReport]] = {pair: [] for pair in DIRECTIONS}
    t0 = time.perf_counter()
    with open_executor("local", args.jobs, 1) as workers:  # one set of worker processes for every run
        for k in seeds:
            for source, target in DIRECTIONS:
                run_dir = work / f"{source}-{target}-seed{k}"
                tcfg = TransferConfig(ticket=str(tickets[source, k]), target=target, inits=INITS,
                                      levels=study["levels"], seeds=study["retrain_seeds"], seed=0, threads=1,
                                      keep_weights=False)
                print(f"transfer: {source} → {target}, ticket seed {k}", flush=True)
                report = run_transfer(tcfg, run_dir, resume=True, executor=workers)
                reports[source, target].append(report)
                dest = results / f"{source}-{target}" / f"seed{k}"
                dest.mkdir(parents=True, exist_ok=True)
                for src in (layout.report(run_dir), layout.results_csv(run_dir), layout.plot(run_dir)):
                    if src.exists():
                        shutil.copy2(src, dest / src.name)
                (dest / "table.md").write_text(markdown_table(report))
    timings["transfers"] = round(time.perf_counter() - t0, 1)
    timings["total"] = round(time.perf_counter() - started, 1)

    levels = next(iter(reports.values()))[0].levels
    n_test = {target: runs[0].target_test_n or 0 for (_, target), runs in reports.items()}
    test_note = "; ".join(f"{t}: {n} images (one binomial standard error at 90%: "
                          f"{100 * (binomial_se(0.9, n) or 0):.1f} points)" for t, n in n_test.items())
    any_report = next(iter(reports.values()))[0]
    command = "python examples/mnist_digits/run.py" + (" --quick" if args.quick else "") + f" --jobs {args.jobs}"
    summary = [
        "# Results: mnist → digits and digits → mnist\n",
        f"{len(seeds)} ticket(s) per source (search seeds {seeds}) × {len(any_report.seeds)} retrain seed(s); model "
        f"`{any_report.model.name}`; written by `{command}` in {timings['total'] / 60:.1f} min (searches "
        f"{timings['searches']:.0f} s, transfers {timings['transfers']:.0f} s).\n",
        f"Target test splits: {test_note}. Each ticket seed also draws its own 70/15/15 split, so the intervals "
        "include the split as well.\n",
        "## The tickets on their own (source) domain\n",
        *search_rows(tickets, levels),
        "\n## Target test accuracy (%): mean ± std over (ticket seed × retrain seed)\n",
        "`dense` is the same dense model at every level (no mask).\n",
        *accuracy_rows(reports),
        "\n## Paired differences (points): ticket seeds × retrain seeds, clustered by ticket seed\n",
        "Mean [95% two-stage cluster bootstrap interval: ticket seeds, then retrain seeds within each]; `*`: the "
        "interval excludes 0. `ticket` is the transferred ticket's mean test accuracy on the target (%).\n",
        *pooled_rows(reports),
        "\nPer run: `<source>-<target>/seed<k>/table.md` (accuracies, paired differences over the retrain seeds, "
        "costs, warnings), `report.json`, `results.csv`, `accuracy_vs_sparsity.png`.\n",
    ]
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.md").write_text("\n".join(summary) + "\n")
    (results / "timings.json").write_text(
        json.dumps({"command": command, "jobs": args.jobs, "seconds": timings}, indent=2) + "\n")
    print("\n".join(summary))
    print(f"wrote {results}; total {timings['total']} s")


if __name__ == "__main__":
    main()
