"""Masked vs unmasked training throughput, measured side by side in one process.

    python bench/masking_bench.py [--model lenet-300-100] [--threads 1] [--repeats 5] [--iterations 300]

Trains the same model from the same weights for the same steps three ways: unmasked, with an all-ones mask
(the masking machinery alone: weights re-masked after every step) and with a 20%-density mask (the machinery
plus whatever a sparse ticket changes, e.g. how often the best-validation weights are copied), rotating the
order each repeat to spread machine noise evenly; reports median steps/s and the ratios to unmasked.
Writes bench/results/masking.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from ticketpack.data import SplitConfig, TextPreprocessing
from ticketpack.data import get as get_dataset
from ticketpack.models import ModelSpec, build
from ticketpack.pruning import mask as masks
from ticketpack.pruning.strategies import prune
from ticketpack.pruning.targets import parameters, prunable_names
from ticketpack.training import TrainConfig, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mdsd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-300-100")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "masking.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.model in ("bow", "textcnn"):
        data = get_dataset(SHARED).load("books", 0, SplitConfig(), TextPreprocessing())
    else:
        data = get_dataset("digits").load("clean", 0, SplitConfig())
    torch.manual_seed(0)
    model = build(ModelSpec(name=args.model), data.preprocessing, data.num_classes)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    weights = parameters(model, prunable_names(model))
    mask = prune("global", weights, masks.ones_like(weights), 0.8, [], 0.0,
                 torch.Generator().manual_seed(0))
    cfg = TrainConfig(iterations=args.iterations)

    arms = [("unmasked", None), ("all-ones mask", masks.ones_like(weights)), ("20% mask", mask)]
    rates: dict[str, list[float]] = {name: [] for name, _ in arms}
    for rep in range(args.repeats + 1):  # the first round warms up and is dropped
        for name, m in arms[rep % 3:] + arms[: rep % 3]:
            model.load_state_dict(init)
            t0 = time.perf_counter()
            train(model, data, cfg, seed=0, mask=m)
            if rep:
                rates[name].append(args.iterations / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratios = {k: med[k] / med["unmasked"] for k in med if k != "unmasked"}
    result = {
        "model": args.model, "threads": args.threads, "iterations": args.iterations, "repeats": args.repeats,
        "mask_density": masks.density(mask), "steps_per_s": med, "throughput_ratio_to_unmasked": ratios,
        "overhead_pct": {k: 100 * (1 - r) for k, r in ratios.items()}, "torch": torch.__version__,
        "machine": platform.machine(),
        "note": "steps/s include the per-epoch validation pass and best-validation copies, as in real training",
    }
    print(f"{args.model}, {args.threads} thread(s), {args.iterations} steps x {args.repeats} repeats, rotated order")
    for name in med:
        extra = f"  ratio {ratios[name]:.3f} (overhead {100 * (1 - ratios[name]):.1f}%)" if name in ratios else ""
        print(f"  {name:14s} {med[name]:7.1f} steps/s{extra}")
    print("  target: overhead <= 10%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
