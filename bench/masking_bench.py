"""Masked vs unmasked training throughput, measured side by side in one process.

    python bench/masking_bench.py [--model lenet-300-100] [--threads 1] [--repeats 5] [--iterations 300]

Trains the same model from the same weights for the same steps, once with a 20%-density mask (gradients
masked before each step, weights re-masked after) and once without, alternating runs to spread machine
noise evenly; reports median steps/s and the ratio. Writes bench/results/masking.json.
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
from ticketpack.training import TrainConfig, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mdsd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet-300-100")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
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
    mask = prune("global", dict(model.prunable_parameters()), masks.ones_like(model), 0.8, [], 0.0,
                 torch.Generator().manual_seed(0))
    cfg = TrainConfig(iterations=args.iterations)

    rates: dict[str, list[float]] = {"unmasked": [], "masked": []}
    for rep in range(args.repeats + 1):  # the first pair warms up and is dropped
        for name, m in (("unmasked", None), ("masked", mask)) if rep % 2 == 0 else (("masked", mask), ("unmasked", None)):
            model.load_state_dict(init)
            t0 = time.perf_counter()
            train(model, data, cfg, seed=0, mask=m)
            if rep:
                rates[name].append(args.iterations / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["masked"] / med["unmasked"]
    result = {
        "model": args.model, "threads": args.threads, "iterations": args.iterations, "repeats": args.repeats,
        "mask_density": masks.density(mask), "steps_per_s": med, "masked_over_unmasked_throughput": ratio,
        "overhead_pct": 100 * (1 - ratio), "torch": torch.__version__, "machine": platform.machine(),
        "note": "steps/s include the per-epoch validation pass, identical in both arms",
    }
    print(f"{args.model}, {args.threads} thread(s), {args.iterations} steps x {args.repeats} repeats, interleaved")
    print(f"  unmasked {med['unmasked']:.1f} steps/s   masked {med['masked']:.1f} steps/s")
    print(f"  masked/unmasked throughput ratio {ratio:.3f}  (overhead {100 * (1 - ratio):.1f}%; target <= 10%)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
