"""Image folders streamed from disk: peak memory of a one-round search on 100,000 PNGs, and loading vs training rate.

    python bench/image_streaming.py [--work /tmp/ticketpack-stream] [--images 100000] [--size 64] [--classes 10]
                                    [--workers 2] [--threads 1] [--iterations 300] [--batch-size 128]

1. Generates (once; reused while WORK/data.stamp.json matches the options) WORK/data/src/<class>/<i>.png, RGB
   images of --size × --size from a seeded numpy generator (image i from seed (0, i), so the folder does not
   depend on how the work was cut between processes), written by a process pool. Each class is an oriented
   colour grating with its own angle (18° apart for 10 classes, ±5° jitter), random frequency, phase and contrast;
   two classes share each tint, so colour alone does not tell them apart; a random blob distracts and Gaussian
   noise (σ = 40 of 255) covers everything: learnable, not trivial.
2. Runs `ticketpack search --dataset WORK/data --source src --model convnet --rounds 1 ...` as a subprocess and,
   every --interval s (less often when sampling would take over --sampler-duty of a core) until it exits, sums
   PSS (and RSS) from /proc/<pid>/smaps_rollup over the process and all its descendants (the DataLoader's workers
   included); reports the peaks against the issue's 2 GB and the wall time.
3. In this process, side by side: (a) the images per second that ticketpack's DataLoader delivers alone over the
   train split (--workers processes, nothing else done with the batches); (b) the training step's own rate on
   pre-loaded tensors (convnet forward + backward + optimizer step at --batch-size and --threads, no loading);
   (c) the two together, steps fed by the loader, as training runs. loader / step ≥ 1 means the loader keeps the
   step busy. The three are alternated --repeats times and the medians reported.

Writes image_streaming.{md,json} to --out. Needs Pillow, and the console script `ticketpack` next to this Python.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 2_000_000_000  # the "2 GB"
GENERATOR_VERSION = 1  # bump when the images change, so that an old folder is not reused


# ---------------------------------------------------------------------------------------------------------------
# 1. the image folder

@functools.lru_cache(maxsize=4)
def _grid(size: int) -> np.ndarray:
    return np.mgrid[0:size, 0:size].astype(np.float32) / size


def _image(i: int, size: int, classes: int, seed: int) -> tuple[int, np.ndarray]:
    """Image ``i``: its class and (size, size, 3) uint8 pixels, from the generator seeded with (seed, i)."""
    rng = np.random.default_rng((seed, i))
    c = i % classes
    yy, xx = _grid(size)
    angle = math.pi * c / classes + rng.uniform(-1, 1) * math.radians(5)
    freq = rng.uniform(3.0, 6.0)
    phase = rng.uniform(0, 2 * math.pi)
    grating = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
    tints = np.array([[1.0, 0.3, 0.3], [0.3, 1.0, 0.3], [0.3, 0.3, 1.0], [1.0, 1.0, 0.3], [0.3, 1.0, 1.0],
                      [1.0, 0.3, 1.0], [0.8, 0.8, 0.8], [1.0, 0.6, 0.2], [0.5, 0.3, 0.9], [0.2, 0.7, 0.5]])
    tint = tints[(c // 2) % len(tints)] * rng.uniform(0.7, 1.0, 3)
    contrast = rng.uniform(40, 90)
    img = 128 + contrast * grating[..., None] * tint[None, None, :]
    cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
    blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
    img[blob] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 40, img.shape)
    return c, np.clip(img, 0, 255).astype(np.uint8)


def _class_name(c: int, classes: int) -> str:
    return f"c{c:0{len(str(classes - 1))}d}"  # zero-padded: sorted names are class order


def _write_chunk(job: tuple[Path, int, int, int, int, int]) -> int:
    from PIL import Image

    root, start, stop, size, classes, seed = job
    for i in range(start, stop):
        c, pixels = _image(i, size, classes, seed)
        Image.fromarray(pixels, "RGB").save(root / _class_name(c, classes) / f"{i}.png")
    return stop - start


def disk_usage(root: Path) -> tuple[int, int, int]:
    """(files, bytes allocated on disk, apparent bytes) under ``root``."""
    files = allocated = apparent = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                else:
                    st = e.stat(follow_symlinks=False)
                    files += 1
                    allocated += st.st_blocks * 512
                    apparent += st.st_size
    return files, allocated, apparent


def generate(work: Path, images: int, size: int, classes: int, procs: int, seed: int = 0) -> dict:
    """The image folder WORK/data/src, generated unless WORK/data.stamp.json says it is already there as asked.

    The stamp lives outside WORK/data, whose every entry ticketpack reads as a domain."""
    want = {"version": GENERATOR_VERSION, "images": images, "size": size, "classes": classes, "seed": seed}
    stamp = work / "data.stamp.json"
    final = work / "data" / "src"
    if stamp.exists() and final.is_dir():
        done = json.loads(stamp.read_text())
        if {k: done.get(k) for k in want} == want:
            print(f"reusing {final} ({images:,} images, generated in {done['seconds']:.1f} s)", flush=True)
            return {**done, "reused": True}
    stamp.unlink(missing_ok=True)
    partial = work / "data.partial"
    for stale in (final, partial):
        if stale.exists():
            shutil.rmtree(stale)
    for c in range(classes):
        (partial / _class_name(c, classes)).mkdir(parents=True)
    chunk = 500
    jobs = [(partial, s, min(s + chunk, images), size, classes, seed) for s in range(0, images, chunk)]
    print(f"generating {images:,} PNGs of {size}x{size}x3 in {procs} processes into {final} ...", flush=True)
    start = time.perf_counter()
    written = 0
    with ProcessPoolExecutor(max_workers=procs) as pool:
        for n in pool.map(_write_chunk, jobs):
            written += n
            if written % 20_000 < chunk:
                print(f"  {written:,} / {images:,} ({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    final.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(final)
    files, allocated, apparent = disk_usage(final)
    done = {**want, "seconds": round(seconds, 2), "processes": procs, "files": files,
            "disk_bytes": allocated, "apparent_bytes": apparent}
    stamp.write_text(json.dumps(done, indent=2) + "\n")
    print(f"generated {files:,} files in {seconds:.1f} s: {allocated / 2**20:,.0f} MiB on disk "
          f"({apparent / 2**20:,.0f} MiB of file contents)", flush=True)
    return {**done, "reused": False}


# ---------------------------------------------------------------------------------------------------------------
# 2. memory of a process tree

def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:  # the task ended, or a kernel without CONFIG_PROC_CHILDREN
            pass
    return kids


def _children_by_stat() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


HAVE_CHILDREN_FILE = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    by_stat = None if HAVE_CHILDREN_FILE else _children_by_stat()
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack += _children(pid) if by_stat is None else by_stat.get(pid, [])
    return out


def _rollup(pid: int) -> tuple[int, int] | None:
    """(PSS, RSS) of one process in kB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    pss = rss = 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
        elif line.startswith("Rss:"):
            rss = int(line.split()[1])
    return pss, rss


def sample(root: int) -> tuple[int, int, int]:
    """(PSS kB, RSS kB, processes) summed over ``root``'s tree now."""
    pss = rss = procs = 0
    for pid in tree(root):
        got = _rollup(pid)
        if got is not None:
            pss, rss, procs = pss + got[0], rss + got[1], procs + 1
    return pss, rss, procs


def _sample_until_exit(proc: subprocess.Popen, start: float, interval: float, duty: float, timeline: list,
                       peak: dict) -> None:
    while proc.poll() is None:
        cpu = time.process_time()
        t0 = time.perf_counter()
        pss, rss, procs = sample(proc.pid)
        t = time.perf_counter() - start
        timeline.append((round(t, 2), pss, rss, procs))
        if pss > peak["pss_kb"]:
            peak["pss_kb"], peak["pss_at_s"] = pss, round(t, 2)
        peak["rss_kb"] = max(peak["rss_kb"], rss)
        peak["processes"] = max(peak["processes"], procs)
        cost_cpu, cost_wall = time.process_time() - cpu, time.perf_counter() - t0
        time.sleep(max(interval - cost_wall, (1 / duty - 1) * cost_cpu))


def watch(cmd: list[str], log: Path, interval: float, duty: float) -> dict:
    """Run ``cmd`` (stdout and stderr to ``log``), sampling its tree's memory every ``interval`` s until it exits.

    Reading smaps_rollup walks a process's page tables (tens of ms of CPU for a 1 GB process), so the sampler waits
    at least (1 / duty - 1) × its own last CPU cost between samples: it takes at most ``duty`` of one core from the
    run it measures, and the achieved intervals are reported."""
    timeline = []
    peak = {"pss_kb": 0, "rss_kb": 0, "processes": 0, "pss_at_s": 0.0}
    cpu_before = time.process_time()
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            _sample_until_exit(proc, start, interval, duty, timeline, peak)
        finally:
            if proc.poll() is None:  # the bench was interrupted: do not leave the search running
                proc.terminate()
                proc.wait()
        wall = time.perf_counter() - start
    gaps = np.diff([s[0] for s in timeline]) if len(timeline) > 1 else np.zeros(1)
    return {"returncode": proc.returncode, "wall_s": round(wall, 2), "samples": len(timeline),
            "interval_median_s": round(float(np.median(gaps)), 3), "interval_max_s": round(float(gaps.max()), 3),
            "sampler_cpu_s": round(time.process_time() - cpu_before, 2), **peak, "timeline": timeline}


# ---------------------------------------------------------------------------------------------------------------
# 3. loading vs the training step

def _loader(split, batch_size: int, workers: int, seed: int):
    """ticketpack's batches of ``split`` as training draws them (shuffled, endless; a DataLoader with ``workers``
    processes when the split is streamed), and the name of the function that made them."""
    import torch

    from ticketpack.training.batches import batches, shuffled

    order = shuffled(len(split), batch_size, torch.Generator().manual_seed(seed))
    return batches(split, order, workers), "ticketpack.training.batches.batches"


def _time_loader(loader, batches: int) -> dict:
    """Iterate ``loader`` for ``batches`` batches, doing nothing with them."""
    start = time.perf_counter()
    first = None
    images = 0
    for b in range(batches):
        x, _ = next(loader)
        if b == 0:
            first = time.perf_counter()
        else:
            images += len(x)
    end = time.perf_counter()
    loader.close()  # stops the workers
    return {"first_batch_s": round(first - start, 3), "images_per_s": images / (end - first)}


def _time_steps(model, opt, batches, steps: int) -> float:
    """Images per second of ``steps`` training steps over the (x, y) ``batches`` (an iterator or a list cycled)."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    images = 0
    start = None
    source = batches if not isinstance(batches, list) else None
    for s in range(steps + 1):
        x, y = next(source) if source is not None else batches[s % len(batches)]
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if s == 0:
            start = time.perf_counter()  # the first step (allocations, worker start-up) is not timed
        else:
            images += len(y)
    seconds = time.perf_counter() - start
    if source is not None:
        source.close()
    return images / seconds


def rates(args: argparse.Namespace) -> dict:
    import torch

    from ticketpack.models import build, example_input
    from ticketpack.search import SearchConfig
    from ticketpack.search.imp import load_source
    from ticketpack.training.train import make_optimizer

    torch.set_num_threads(args.threads)
    cfg = SearchConfig(dataset=str(args.work / "data"), source="src", model={"name": "convnet"}, seed=0,
                       train={"batch_size": args.batch_size, "iterations": args.iterations,
                              "loader_workers": args.workers})  # the search's recipe: convnet's, these keys over it
    start = time.perf_counter()
    data = load_source(cfg)
    index_s = time.perf_counter() - start
    streamed = bool(data.train.streamed)
    print(f"indexed the folder in {index_s:.1f} s: {len(data.train):,} train images, {data.num_classes} classes, "
          f"{'streamed from the files' if streamed else 'HELD IN MEMORY'}", flush=True)
    recipe = cfg.train
    batch_idx = [np.arange(i * args.batch_size, (i + 1) * args.batch_size) for i in range(8)]
    preloaded = [(torch.from_numpy(np.ascontiguousarray(data.train.batch(idx))), torch.from_numpy(data.train.y[idx]))
                 for idx in batch_idx]
    print(f"batch: x {tuple(preloaded[0][0].shape)} {preloaded[0][0].dtype}, y {tuple(preloaded[0][1].shape)}",
          flush=True)

    def fresh_model():
        torch.manual_seed(0)
        model = build(cfg.model, data.preprocessing, data.num_classes, example_input(data.preprocessing))
        return model, make_optimizer(model, recipe)

    out: dict[str, list] = {"loader": [], "step": [], "fed": [], "first_batch_s": []}
    loader_name = None
    for r in range(args.repeats):
        loader, loader_name = _loader(data.train, args.batch_size, args.workers, seed=r)
        got = _time_loader(loader, args.loader_batches)
        out["loader"].append(got["images_per_s"])
        out["first_batch_s"].append(got["first_batch_s"])
        del loader
        model, opt = fresh_model()
        out["step"].append(_time_steps(model, opt, preloaded, args.step_batches))
        model, opt = fresh_model()
        loader, _ = _loader(data.train, args.batch_size, args.workers, seed=r)
        out["fed"].append(_time_steps(model, opt, loader, args.step_batches))
        del loader
        print(f"repeat {r + 1}/{args.repeats}: loader alone {out['loader'][-1]:,.0f} images/s "
              f"(first batch after {got['first_batch_s']:.2f} s), step alone {out['step'][-1]:,.0f} images/s, "
              f"step fed by the loader {out['fed'][-1]:,.0f} images/s", flush=True)
    med = {k: statistics.median(v) for k, v in out.items()}
    return {"loader_function": loader_name, "streamed": streamed, "recipe": recipe.model_dump(),
            "index_s": round(index_s, 2), "train_images": len(data.train),
            "loader_images_per_s": med["loader"], "step_images_per_s": med["step"],
            "fed_images_per_s": med["fed"], "loader_over_step": med["loader"] / med["step"],
            "fed_over_step": med["fed"] / med["step"], "first_batch_s": med["first_batch_s"], "runs": out}


# ---------------------------------------------------------------------------------------------------------------

def phases(timeline: list) -> list[dict]:
    """Stretches of the run with the same number of processes (main alone, + training loader workers, + evaluation
    loader workers, ...), each with its PSS range: where the peak comes from."""
    out: list[dict] = []
    for t, pss, rss, procs in timeline:
        if not out or out[-1]["processes"] != procs:
            out.append({"from_s": t, "to_s": t, "processes": procs, "pss_min_kb": pss, "pss_max_kb": pss,
                        "rss_max_kb": rss})
        seg = out[-1]
        seg["to_s"] = t
        seg["pss_min_kb"], seg["pss_max_kb"] = min(seg["pss_min_kb"], pss), max(seg["pss_max_kb"], pss)
        seg["rss_max_kb"] = max(seg["rss_max_kb"], rss)
    return [seg for seg in out if seg["to_s"] - seg["from_s"] >= 2.0 and seg["processes"]]


def _rounds(ticket: Path) -> list[dict]:
    """Each round's accuracies and training time from the ticket's manifest (round 0 is the dense network)."""
    try:
        manifest = json.loads((ticket / "manifest.json").read_text())
        return [{"round": r["round"], "weights_remaining": r["weights_remaining"], "val_accuracy": r["val_accuracy"],
                 "test_accuracy": r["test_accuracy"], "iterations": r["iterations"], "seconds": r["seconds"]}
                for r in manifest["rounds"]]
    except (OSError, KeyError, ValueError):
        return []


def _loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: the bench's numbers are only clean when nothing else runs."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ticketpack-stream"))
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (--loader-workers)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    ap.add_argument("--iterations", type=int, default=300, help="training steps of the one search round")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--gen-procs", type=int, default=os.cpu_count() or 1, help="processes writing the images")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples (at least)")
    ap.add_argument("--sampler-duty", type=float, default=0.2,
                    help="most of one core the memory sampler may take (it samples less often when it costs more)")
    ap.add_argument("--loader-batches", type=int, default=300, help="batches timed for the loader alone")
    ap.add_argument("--step-batches", type=int, default=30, help="steps timed for the step alone and fed")
    ap.add_argument("--repeats", type=int, default=2, help="alternations of loader / step / fed")
    ap.add_argument("--skip", choices=["search", "rates"], action="append", default=[],
                    help="leave a part out (repeatable)")
    ap.add_argument("--generate-only", action="store_true", help="make the image folder and stop")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--rewrite", action="store_true",
                    help="measure nothing: rebuild image_streaming.{md,json} in --out from the last run's json and "
                    "WORK/search_memory.json (after a change to the report)")
    args = ap.parse_args()
    if args.rewrite:
        _rewrite(args)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench stops its search too (finally)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    nproc = os.cpu_count()
    print(f"{platform.machine()}, {nproc} CPUs; {args.workers} loader workers, {args.threads} torch thread(s)",
          flush=True)

    gen = generate(args.work, args.images, args.size, args.classes, args.gen_procs)
    if args.generate_only:
        return

    result: dict = {"bench": "image_streaming", "argv": sys.argv[1:], "nproc": nproc, "machine": platform.machine(),
                    "workers": args.workers, "threads": args.threads, "images": args.images, "size": args.size,
                    "classes": args.classes, "iterations": args.iterations, "batch_size": args.batch_size,
                    "generation": gen, "limit_bytes": LIMIT_BYTES}
    search_cmd = None
    if "search" not in args.skip:
        exe = Path(sys.executable).with_name("ticketpack")
        helptext = subprocess.run([str(exe), "search", "--help"], capture_output=True, text=True,
                                  env={**os.environ, "COLUMNS": "200"}).stdout
        if "--loader-workers" in helptext:
            workers_opt = ["--loader-workers", str(args.workers)]
        else:  # the flag is not there (yet): its config key instead
            config = args.work / "search-config.toml"
            config.write_text(f"[train]\nloader_workers = {args.workers}\n")
            workers_opt = ["--config", str(config)]
            print(f"`ticketpack search` has no --loader-workers flag: passing train.loader_workers in {config}",
                  flush=True)
        result["workers_flag"] = workers_opt[0]
        search_cmd = [str(exe), "search", "--dataset", str(args.work / "data"), "--source", "src",
                      "--model", "convnet", "--rounds", "1", "--iterations", str(args.iterations),
                      "--batch-size", str(args.batch_size), *workers_opt,
                      "--threads", str(args.threads), "--seed", "0", "--out", str(args.work / "ticket"), "--force"]
        print("$ " + " ".join(search_cmd[1:]).replace(str(exe.parent) + "/", ""), flush=True)
        log = args.work / "search.log"
        load_before = _loadavg()
        run = watch(search_cmd, log, args.interval, args.sampler_duty)
        run["loadavg_before"], run["loadavg_after"] = load_before, _loadavg()
        (args.work / "search_memory.json").write_text(json.dumps(run["timeline"]) + "\n")
        timeline = run.pop("timeline")
        tail = log.read_text().splitlines()[-15:]
        print("\n".join("  | " + line for line in tail), flush=True)
        if run["returncode"]:
            raise SystemExit(f"ticketpack search failed (exit {run['returncode']}); its output: {log}")
        run["peak_pss_bytes"] = run["pss_kb"] * 1024
        run["peak_rss_bytes"] = run["rss_kb"] * 1024
        run["under_limit"] = run["peak_pss_bytes"] < LIMIT_BYTES
        run["rounds"] = _rounds(args.work / "ticket")
        run["phases"] = phases(timeline)
        # a coarse timeline for the json: one sample per second
        run["timeline_1s"], last = [], -1.0  # a coarse timeline for the json: about one sample per second
        for point in timeline:
            if point[0] - last >= 1.0:
                run["timeline_1s"].append(point)
                last = point[0]
        result["search"] = {"command": ["ticketpack", *search_cmd[1:]], **run}
        print(f"search: wall {run['wall_s']:.1f} s, peak PSS {run['pss_kb'] / 2**10:,.0f} MiB over up to "
              f"{run['processes']} processes (RSS sum {run['rss_kb'] / 2**10:,.0f} MiB); "
              f"{'under' if run['under_limit'] else 'OVER'} 2 GB", flush=True)
    if "rates" not in args.skip:
        load_before = _loadavg()
        result["rates"] = rates(args)
        result["rates"]["loadavg_before"], result["rates"]["loadavg_after"] = load_before, _loadavg()
        r = result["rates"]
        print(f"loader {r['loader_images_per_s']:,.0f} images/s, step {r['step_images_per_s']:,.0f} images/s: "
              f"loader / step {r['loader_over_step']:.2f}; fed by the loader the step ran at "
              f"{r['fed_over_step']:.2f}× its own rate", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "image_streaming.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "image_streaming.md").write_text(_markdown(result, args))
    print(_markdown(result, args), flush=True)


def _rewrite(args: argparse.Namespace) -> None:
    result = json.loads((args.out / "image_streaming.json").read_text())
    saved = argparse.Namespace(**vars(args))
    ap_defaults = {"interval": 0.2, "sampler_duty": 0.2, "repeats": 2}
    for key, default in ap_defaults.items():  # the run's own options, from its command line
        flag = "--" + key.replace("_", "-")
        argv = result["argv"]
        setattr(saved, key, type(default)(argv[argv.index(flag) + 1]) if flag in argv else default)
    if "search" in result:
        timeline = json.loads((args.work / "search_memory.json").read_text())
        result["search"]["phases"] = phases(timeline)
    (args.out / "image_streaming.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "image_streaming.md").write_text(_markdown(result, saved))
    print(_markdown(result, saved), flush=True)


def _markdown(result: dict, args: argparse.Namespace) -> str:
    g = result["generation"]
    argv = " ".join(result["argv"])
    lines = ["# Image folders streamed through the DataLoader", "",
             f"`python bench/image_streaming.py {argv}`".replace("`python bench/image_streaming.py `",
                                                                  "`python bench/image_streaming.py`")
             + f" on {result['machine']}, `nproc` {result['nproc']}: {result['images']:,} PNGs of "
             f"{result['size']}×{result['size']}×3 in {result['classes']} classes, {result['workers']} loader "
             f"workers, {result['threads']} torch thread(s), batch {result['batch_size']}.", "",
             "| measure | value |", "|---|---:|",
             f"| image folder generated ({g['processes']} processes{', reused' if g.get('reused') else ''}) | "
             f"{g['seconds']:.1f} s |",
             f"| folder on disk ({g['files']:,} files) | {g['disk_bytes'] / 2**20:,.0f} MiB "
             f"({g['apparent_bytes'] / 2**20:,.0f} MiB of contents) |"]
    s = result.get("search")
    if s:
        lines += [f"| search `--rounds 1` (dense round 0, then pruned round 1; {result['iterations']} steps each): "
                  f"wall time | {s['wall_s']:.1f} s |",
                  f"| peak PSS, summed over up to {s['processes']} processes (limit 2 GB) | "
                  f"{s['pss_kb'] / 2**10:,.0f} MiB ({s['peak_pss_bytes'] / 1e9:.2f} GB, "
                  f"{'under' if s['under_limit'] else 'OVER'}) |",
                  f"| peak RSS, summed (counts shared pages once per process) | {s['rss_kb'] / 2**10:,.0f} MiB |"]
        lines.append(f"| memory samples, interval median / max; CPU the sampler took | {s['samples']:,}, "
                     f"{s['interval_median_s']:.2f} s / {s['interval_max_s']:.2f} s; {s['sampler_cpu_s']:.0f} s |")
        for rd in s.get("rounds", []):
            lines.append(f"| round {rd['round']} ({100 * rd['weights_remaining']:.0f}% of the weights): val / test "
                         f"accuracy, training time | {100 * rd['val_accuracy']:.1f}% / "
                         f"{100 * rd['test_accuracy']:.1f}%, {rd['seconds']:.0f} s |")
    r = result.get("rates")
    if r:
        lines += [f"| (a) loader alone, median of {args.repeats} | {r['loader_images_per_s']:,.0f} images/s |",
                  f"| (b) training step alone (pre-loaded tensors), median of {args.repeats} | "
                  f"{r['step_images_per_s']:,.0f} images/s |",
                  f"| **loader / step** (≥ 1: the loader keeps the step busy) | **{r['loader_over_step']:.2f}** |",
                  f"| (c) step fed by the loader | {r['fed_images_per_s']:,.0f} images/s "
                  f"({r['fed_over_step']:.2f}× the step alone) |",
                  f"| loader's first batch (worker start-up) | {r['first_batch_s']:.2f} s |"]
    if s and s.get("phases"):
        lines += ["", "Memory of the search by phase (stretches of 2 s or more with the same number of processes: "
                  "1 = the command alone, +2 = the training loader's workers, +2 more = the evaluation loader's while "
                  "the training loader's are still alive):", "",
                  "| from (s) | to (s) | processes | PSS sum, MiB (min–max) | RSS sum max, MiB |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {p['from_s']:.0f} | {p['to_s']:.0f} | {p['processes']} | {p['pss_min_kb'] / 2**10:,.0f}–"
                  f"{p['pss_max_kb'] / 2**10:,.0f} | {p['rss_max_kb'] / 2**10:,.0f} |" for p in s["phases"]]
    loads = [f"{name} {part['loadavg_before'][0]:.2f} → {part['loadavg_after'][0]:.2f}"
             for name, part in (("search", s), ("rates", r)) if part]
    if loads:
        lines += ["", "1-minute load average before → after (other work on the machine skews the rates): "
                  + "; ".join(loads) + "."]
    if s:
        lines += ["", "Command timed and sampled (PSS from `/proc/<pid>/smaps_rollup`, summed over the process and "
                  f"all its descendants, every {args.interval} s or less often when a sample costs more than "
                  f"{100 * args.sampler_duty:.0f}% of a core):", "", "```",
                  " ".join(s["command"]), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
