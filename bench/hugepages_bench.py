"""Huge pages on and off (THP_MEM_ALLOC_ENABLE), side by side: the default text model's masked training on books.

    python bench/hugepages_bench.py [--pairs 4] [--epochs 6] [--threads 1] [--out bench/results]

torch reads THP_MEM_ALLOC_ENABLE once per process, so each arm is a fresh process: the same training (fasttext
with ticketpack's defaults, the study's 6-epoch recipe without early stopping, batch 32, a 10% random mask drawn
with seed 0, 1 torch thread) is run with huge pages off and on, in alternating order, `--pairs` times; then the same
again with two processes at once (pinned one to a core each), as the study's two transfer workers run. Each
process trains once to warm up and reports the best of 3 timed runs in ms per step, with a digest of the final
weights: the two arms must give the same digest. Prints each pair and the ratio of the medians (on / off), and
writes hugepages.{json,md} to --out. Needs ../shared/data/mdsd.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mdsd"
ENV = "THP_MEM_ALLOC_ENABLE"

WORKER = r"""
import hashlib, json, sys, time, warnings
import torch
warnings.simplefilter("ignore")
threads, epochs, data_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
from ticketpack.models import build, example_input
from ticketpack.search import SearchConfig
from ticketpack.search.imp import load_source
from ticketpack.training import TrainConfig, train
cfg = SearchConfig(dataset=data_dir, source="books", seed=0)
data = load_source(cfg)
recipe = TrainConfig(optimizer="adamw", lr=0.01, weight_decay=0.0, batch_size=32, epochs=epochs, patience=None)
def run():
    torch.manual_seed(1)
    model = build(cfg.model, data.preprocessing, data.num_classes, example_input(data.preprocessing))
    gen = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=gen) < 0.1 for n, p in model.named_parameters() if p.dim() > 1}
    start = time.perf_counter()
    result = train(model, data, recipe, seed=0, mask=mask)
    return time.perf_counter() - start, result
run()
times = []
for _ in range(3):
    seconds, result = run()
    times.append(seconds)
digest = hashlib.sha256(b"".join(result.state[k].numpy().tobytes() for k in sorted(result.state))).hexdigest()
print(json.dumps({"ms_per_step": 1000 * min(times) / result.iterations, "steps": result.iterations,
                  "test_accuracy": result.test_accuracy, "weights_sha256": digest}))
"""


def _arm(on: bool, args: argparse.Namespace, cpu: int | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != ENV} | {ENV: "1" if on else "0"}
    cmd = [sys.executable, "-c", WORKER, str(args.threads), str(args.epochs), str(DATA)]
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a worker failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if not (DATA / "books.jsonl").exists():
        raise SystemExit(f"needs the review data at {DATA}")
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    mode = thp.read_text().strip() if thp.exists() else "absent"
    print(f"kernel transparent_hugepage: {mode}; {args.threads} torch thread(s) per process", flush=True)

    rows: dict[str, dict[str, list[float]]] = {}
    digests: set[str] = set()
    for setting in ("alone", "two at once"):
        arms: dict[str, list[float]] = {"off": [], "on": []}
        for pair in range(args.pairs):
            order = [False, True] if pair % 2 == 0 else [True, False]
            for on in order:
                if setting == "alone":
                    results = [_result(_arm(on, args))]
                else:
                    procs = [_arm(on, args, cpu) for cpu in (0, 1)]
                    results = [_result(p) for p in procs]
                for r in results:
                    arms["on" if on else "off"].append(r["ms_per_step"])
                    digests.add(r["weights_sha256"])
            print(f"{setting}, pair {pair + 1}: off {arms['off'][-len(results):]} ms/step, "
                  f"on {arms['on'][-len(results):]} ms/step", flush=True)
        rows[setting] = arms
    if len(digests) != 1:
        raise SystemExit(f"huge pages changed the trained weights: {len(digests)} digests")

    lines = ["# Huge pages for torch's CPU tensors, on and off",
             "",
             f"`python bench/hugepages_bench.py --pairs {args.pairs}` on {platform.machine()} ({os.cpu_count()} CPUs), "
             f"kernel transparent_hugepage `{mode}`, {args.threads} torch thread per process. The default text model "
             f"(fasttext, 2^20 × 16 embedding) trained {args.epochs} epochs on books under a 10% random mask; each "
             "process reports its best of 3 runs. Every process gave the same weights (one sha256).",
             "",
             "| setting | runs per arm | off: median ms/step | on: median ms/step | on / off |",
             "|---|---:|---:|---:|---:|"]
    summary = {}
    for setting, arms in rows.items():
        off, on = statistics.median(arms["off"]), statistics.median(arms["on"])
        summary[setting] = {"off_ms_per_step": arms["off"], "on_ms_per_step": arms["on"], "ratio": on / off}
        lines.append(f"| {setting} | {len(arms['off'])} | {off:.2f} | {on:.2f} | {on / off:.2f}× |")
        print(f"{setting}: off {off:.2f} ms/step, on {on:.2f} ms/step, on/off {on / off:.2f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hugepages.md").write_text("\n".join(lines) + "\n")
    (args.out / "hugepages.json").write_text(json.dumps(
        {"bench": "hugepages", "kernel_thp": mode, "threads": args.threads, "epochs": args.epochs,
         "weights_sha256": digests.pop(), "settings": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
