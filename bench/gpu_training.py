"""A search round on the GPU against all of the machine's CPU cores, on the same model and data (issue: "on the
residual CNN at 32×32×3 with batch 256, a search round on the GPU at least 5× faster than on all of that machine's
CPU cores, masks and data loading included").

    python bench/gpu_training.py [--work /tmp/ticketpack-gpu] [--images 20000] [--steps 200] [--workers 8]

Generates (once) an image folder of 32×32×3 PNGs (bench/image_streaming.py's generator), then runs the same
`ticketpack search` (examples/custom_models/models.py:resnet, round 0 and one pruned round, masks applied on the
device, images decoded by --workers loader processes) with `--device cuda` and with `--device cpu --threads
nproc`, and prints images per second of each round's training (from the manifest's steps and seconds), the
ratio, and the GPU's utilization sampled with nvidia-smi during the GPU run. Without a CUDA GPU it runs the CPU
side only and says so. Writes bench/results/gpu_training.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from image_streaming import generate  # noqa: E402  (the same generator, one copy)

RESULTS = ROOT / "bench" / "results"
MODEL = str(ROOT / "examples" / "custom_models" / "models.py") + ":resnet"


def _gpu_utilization(stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout.split()
            samples.append(float(out[0]))
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return
        stop.wait(0.5)


def run(device: str, threads: int, args: argparse.Namespace, data: Path) -> dict:
    out = args.work / f"ticket-{device}"
    cmd = [shutil.which("ticketpack") or "ticketpack", "search", "--dataset", str(data), "--source", "src",
           "--model", MODEL, "--rounds", "1", "--iterations", str(args.steps), "--batch-size", "256",
           "--loader-workers", str(args.workers), "--threads", str(threads), "--device", device, "--seed", "0",
           "--out", str(out), "--force", "--json"]
    print("$", " ".join(cmd[1:]), flush=True)
    stop, util = threading.Event(), []
    sampler = threading.Thread(target=_gpu_utilization, args=(stop, util), daemon=True)
    if device != "cpu":
        sampler.start()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    stop.set()
    if proc.returncode != 0:
        raise SystemExit(f"{device}: ticketpack search failed:\n{proc.stderr[-2000:]}")
    manifest = json.loads(proc.stdout)
    rounds = [{"round": r["round"], "seconds": r["seconds"], "steps": r["iterations"],
               "images_per_s": r["iterations"] * 256 / r["seconds"], "test_accuracy": r["test_accuracy"]}
              for r in manifest["rounds"]]
    return {"device": manifest.get("device") or device, "threads": threads, "wall_s": round(wall, 1), "rounds": rounds,
            "gpu_utilization_pct": {"mean": round(sum(util) / len(util), 1), "samples": len(util)} if util else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/ticketpack-gpu"))
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--workers", type=int, default=8)
    args = p.parse_args()
    import torch

    cores = os.cpu_count() or 1
    gen = generate(args.work, args.images, 32, 10, min(cores, 8))
    data = args.work / "data"
    sides = [run("cpu", cores, args, data)]
    gpu = torch.cuda.is_available()
    if gpu:
        sides.insert(0, run("cuda", 1, args, data))
    else:
        print("no CUDA GPU visible: the CPU side only (the ratio needs a GPU)", flush=True)
    lines = ["# A search round on the GPU against all CPU cores", "",
             f"`python bench/gpu_training.py --images {args.images} --steps {args.steps} --workers {args.workers}`: "
             f"{args.images:,} PNGs of 32x32x3 (generated in {gen['seconds']} s), examples/custom_models resnet, "
             f"batch 256, {args.steps} steps per round, {args.workers} loader workers; {cores} CPU cores.", "",
             "| device | threads | round | steps | seconds | images/s | test accuracy | GPU utilization |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in sides:
        util = f"{s['gpu_utilization_pct']['mean']:.0f}%" if s["gpu_utilization_pct"] else ""
        for r in s["rounds"]:
            lines.append(f"| {s['device']} | {s['threads']} | {r['round']} | {r['steps']} | {r['seconds']:.1f} | "
                         f"{r['images_per_s']:,.0f} | {100 * r['test_accuracy']:.1f}% | {util} |")
    if gpu:
        ratio = sides[1]["rounds"][1]["seconds"] / sides[0]["rounds"][1]["seconds"]
        lines += ["", f"Pruned round (masks applied on the device): the GPU is {ratio:.1f}x as fast as {cores} CPU cores "
                  "(target: at least 5x)."]
    else:
        lines += ["", "No GPU was visible, so there is no ratio."]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gpu_training.md").write_text(text)
    (RESULTS / "gpu_training.json").write_text(json.dumps({"sides": sides, "generated": gen}, indent=2) + "\n")


if __name__ == "__main__":
    main()
