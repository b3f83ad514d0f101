"""`ticketpack transfer --jobs 2` vs `--jobs 1` on the same grid, measured side by side in one run.

    python bench/transfer_jobs_bench.py [--epochs 20] [--rounds 4] [--seeds 3] [--repeats 3] [--threads2]

Finds one small ticket (lenet-300-100 on digits/clean, prune rate 0.5), then runs the full strategy grid
(ticket, random-reinit, finetune, random-mask, dense, target-ticket; every pruned round; --seeds seeds) to rot45
as 1 process × 1 torch thread and as 2 processes × 1 thread each (with --threads2 also as 1 process × 2 threads:
is it the processes, or just the second core?). The setups alternate, --repeats times, so machine noise spreads
evenly over them; each setup's median wall time is compared. Checks that jobs=1 and jobs=2 give identical
results, prints the ratios, and writes bench/results/transfer_jobs.json (or --out). Wall times include starting
the worker processes (each imports torch and loads the data once); the summed per-job training seconds show how
much each job itself slowed down when two shared the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ticketpack.search import SearchConfig, search
from ticketpack.transfer import TransferConfig, run_transfer

ALL = ["ticket", "random-reinit", "finetune", "random-mask", "dense", "target-ticket"]
SETUPS = {"jobs1_threads1": (1, 1), "jobs2_threads1": (2, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20, help="Training epochs per job and per search round (20: the default recipe).")
    ap.add_argument("--rounds", type=int, default=4, help="Pruning rounds of the ticket (levels transferred).")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads2", action="store_true", help="Also run 1 process with 2 torch threads.")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "transfer_jobs.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="transfer-bench-"))
    try:
        ticket = work / "ticket"
        search(SearchConfig.model_validate({"train": {"epochs": args.epochs}, "threads": 1,
                                            "prune": {"rounds": args.rounds, "rate": 0.5}}), ticket)
        setups = {**SETUPS, **({"jobs1_threads2": (1, 2)} if args.threads2 else {})}
        times: dict[str, list[float]] = {name: [] for name in setups}
        job_seconds: dict[str, list[float]] = {name: [] for name in setups}
        reports = {}
        load_before = os.getloadavg()
        for rep in range(args.repeats):
            for name, (jobs, threads) in setups.items():
                cfg = TransferConfig(ticket=str(ticket), target="rot45", inits=ALL, seeds=args.seeds,
                                     threads=threads)
                start = time.perf_counter()
                report = run_transfer(cfg, work / f"{name}-{rep}", jobs=jobs)
                times[name].append(time.perf_counter() - start)
                job_seconds[name].append(sum(r.seconds for r in report.results))
                reports[name] = {r.job_id: r.target_test_accuracy for r in report.results}
                shutil.rmtree(work / f"{name}-{rep}")
                print(f"repeat {rep}: {name:15s} wall {times[name][-1]:7.1f} s, summed job training "
                      f"{job_seconds[name][-1]:7.1f} s ({report.jobs_total} train jobs), "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        same = reports["jobs1_threads1"] == reports["jobs2_threads1"]
        result = {
            "grid": {"model": "lenet-300-100", "dataset": "digits", "source": "clean", "target": "rot45",
                     "inits": ALL, "levels": list(range(1, args.rounds + 1)), "seeds": args.seeds,
                     "epochs": args.epochs, "train_jobs": report.jobs_total, "target_search_rounds": args.rounds + 1},
            "threads_per_job": {k: v[1] for k, v in setups.items()},
            "wall_seconds_median": {k: round(v, 2) for k, v in med.items()},
            "wall_seconds_all": {k: [round(t, 2) for t in v] for k, v in times.items()},
            "summed_job_training_seconds_all": {k: [round(t, 2) for t in v] for k, v in job_seconds.items()},
            "ratio_jobs2_over_jobs1": round(med["jobs2_threads1"] / med["jobs1_threads1"], 3),
            "ratio_jobs1_threads2_over_jobs1_threads1": (
                round(med["jobs1_threads2"] / med["jobs1_threads1"], 3) if args.threads2 else None),
            "jobs1_and_jobs2_results_identical": same,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                        "loadavg_1min_before": round(load_before[0], 2), "loadavg_1min_after": round(os.getloadavg()[0], 2)},
            "command": "python bench/transfer_jobs_bench.py " + " ".join(
                f"--{k} {getattr(args, k)}" for k in ("epochs", "rounds", "seeds", "repeats"))
                + (" --threads2" if args.threads2 else ""),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"jobs=2 / jobs=1 wall time (1 torch thread per job): {result['ratio_jobs2_over_jobs1']:.2f}")
        if args.threads2:
            print(f"jobs=1 with 2 threads / with 1 thread:              {result['ratio_jobs1_threads2_over_jobs1_threads1']:.2f}")
        print(f"jobs=1 and jobs=2 results identical: {same}; wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
