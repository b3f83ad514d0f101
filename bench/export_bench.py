"""Export benchmark (issue 7): are exported tickets really smaller and faster than the dense model?

    python bench/export_bench.py    # lenet-300-100 and convnet on digits; bow and textcnn on ../shared/data/mdsd (if present)

For each model it finds two tickets with the same training (unstructured: `--granularity weight`; structured:
`--granularity neuron`), takes the rounds at 100%, ~20%, ~10% and ~5% weights remaining (the densest round at or
below each), and exports each round

- the naive way: torch.nn.utils.prune (custom_from_mask + remove) on the same weights, then torch.onnx.export;
- with ticketpack: dense, compact and sparse, each with and without int8.

Then, in one process, it measures every file with ONNX Runtime on the CPU, interleaved (each timing round visits
the variants in a fresh random order), at batch 1 and 256, with 1 thread and with all threads: latency p50,
throughput, file size and ONNX test accuracy, each against the unpruned `dense` export. The fraction of
multiply-accumulates left (nonzero weights) is printed beside each speed-up as the physical reference.

Writes bench/results/export_bench.json (everything), bench/results/summary.json (one object per row) and
bench/results/export_bench.md (the table, naive route first). Tickets are cached in --work between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"weights_remaining": 0.10, "accuracy_drop_pts": 1.0, "size_ratio": 0.15, "latency_ratio_b256": 0.33,
           "latency_ratio_b1": 0.5}
NOMINAL = [1.0, 0.20, 0.10, 0.05]
# the featurization of the committed runs (unigrams, 16,384 buckets, 256 ids), pinned so that reruns compare
OLD_TEXT = {"ngrams": 1, "num_buckets": 16384, "max_tokens": 256}
VARIANTS = ["naive", "dense", "dense+int8", "compact", "compact+int8", "sparse", "sparse+int8"]


def model_setups(data_dir: Path, quick: bool) -> list[dict]:
    """The four built-in models, each with the search configuration shared by its two tickets."""
    rounds = 4 if quick else 13
    lenet = {
        "name": "lenet-300-100", "label": "lenet-300-100 / digits",
        "config": {"dataset": "digits", "source": "clean", "model": {"name": "lenet-300-100"},
                   "train": {"epochs": 6 if quick else 60}, "seed": 0},
        # global magnitude for weights (the LTH setting); units pruned layer by layer
        "tickets": {"weight": {"strategy": "global", "rounds": rounds}, "neuron": {"strategy": "layerwise", "rounds": rounds - 1}},
    }
    convnet = {
        "name": "convnet", "label": "convnet / digits",
        "config": {"dataset": "digits", "source": "clean", "model": {"name": "convnet"},
                   "train": {"epochs": 4 if quick else 20}, "seed": 0},
        "tickets": {"weight": {"strategy": "global", "rounds": rounds}, "neuron": {"strategy": "layerwise", "rounds": rounds - 1}},
    }
    setups = [lenet, convnet]
    if (data_dir / "books.jsonl").exists():
        setups.append({
            "name": "bow", "label": "bow / mdsd books",
            "config": {"dataset": str(data_dir), "source": "books", "model": {"name": "bow"}, "text": OLD_TEXT,
                       "train": {"epochs": 3 if quick else 20, "lr": 0.01}, "seed": 0},
            # global magnitude empties bow's fc layer in round 1 (its N(0,1) embedding outweighs it): layerwise here
            "tickets": {"weight": {"strategy": "layerwise", "rounds": rounds}, "neuron": {"strategy": "layerwise", "rounds": rounds}},
        })
        setups.append({
            "name": "textcnn", "label": "textcnn / mdsd books",
            "config": {"dataset": str(data_dir), "source": "books", "model": {"name": "textcnn"}, "text": OLD_TEXT,
                       "train": {"epochs": 3 if quick else 10, "lr": 0.01}, "seed": 0},
            "tickets": {"weight": {"strategy": "layerwise", "rounds": rounds}, "neuron": {"strategy": "layerwise", "rounds": rounds}},
        })
    return setups


def find_ticket(setup: dict, granularity: str, work: Path, threads: int, log) -> Path:
    from ticketpack.search import SearchConfig, search
    from ticketpack.search.artifact import load_manifest

    t = setup["tickets"][granularity]
    cfg = SearchConfig.model_validate({
        **setup["config"], "threads": threads,
        "prune": {"rate": 0.2, "strategy": t["strategy"], "rounds": t["rounds"], "granularity": granularity},
    })
    out = work / f"{setup['name']}-{granularity}"
    same = out.exists() and (out / "manifest.json").exists() and load_manifest(out).config == cfg
    start = time.perf_counter()
    search(cfg, out, resume=same, force=not same and out.exists())
    log(f"  ticket {out.name}: {'reused' if same else 'searched'} ({time.perf_counter() - start:.0f}s)")
    return out


def pick_rounds(ticket: Path) -> dict[float, int]:
    from ticketpack.search import Ticket

    rounds = Ticket.load(ticket).manifest.rounds
    picked = {}
    for nominal in NOMINAL:
        below = [r for r in rounds if r.weights_remaining <= nominal + 1e-9]
        rec = max(below, key=lambda r: r.weights_remaining) if below else min(rounds, key=lambda r: r.weights_remaining)
        picked[nominal] = rec.round
    return picked


def naive_export(prepared, path: Path) -> None:
    """torch.nn.utils.prune with the ticket's mask (made permanent), then torch.onnx.export (torch's default exporter)."""
    import copy
    import logging

    import torch
    import torch.nn.utils.prune as tprune

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notices
    model = copy.deepcopy(prepared.model).eval()
    mask = prepared.selection.mask
    modules = dict(model.named_modules())
    for name in prepared.selection.ticket.manifest.prunable:
        module = modules[name.rsplit(".", 1)[0]]
        tprune.custom_from_mask(module, "weight", mask[name] if mask is not None else torch.ones_like(module.weight))
        tprune.remove(module, "weight")
    x = torch.from_numpy(np.ascontiguousarray(prepared.x_test[:2]))
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), external_data=False, verbose=False)


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    s = session(path, 1)
    name = s.get_inputs()[0].name
    logits = np.concatenate([s.run(None, {name: x[i : i + 512]})[0] for i in range(0, len(x), 512)])
    return float((logits.argmax(1) == y).mean())


def identity_model(dtype, width: int) -> bytes:
    """The cheapest possible graph with the same input: ONNX Runtime's per-call floor from Python."""
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.INT64
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "floor",
                              [helper.make_tensor_value_info("input", elem, None)],
                              [helper.make_tensor_value_info("logits", elem, None)])
    opsets = [helper.make_opsetid("", 17)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)).SerializeToString()


def _runner(s, xb: np.ndarray, iobinding: bool):
    """A no-argument callable that runs ``s`` once: ``session.run`` (numpy in and out), or through an IOBinding
    whose input OrtValue and output buffer are bound once (what a server that reuses buffers pays)."""
    import onnxruntime as ort

    if not iobinding:
        feed = {"input": xb}
        return lambda: s.run(None, feed)
    binding = s.io_binding()
    binding.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(xb))
    binding.bind_output(s.get_outputs()[0].name)
    return lambda: s.run_with_iobinding(binding)


def measure(files: dict[str, Path], x: np.ndarray, batch: int, threads: int, rounds: int, budget_s: float,
            seed: int, iobinding: bool = False) -> dict[str, dict]:
    """Interleaved timing: every round visits every variant once (random order) for about budget_s/rounds/n seconds."""
    xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])).astype(x.dtype))
    sessions = {k: session(p, threads) for k, p in files.items()}
    floor_path = Path(tempfile.mkdtemp()) / "floor.onnx"
    floor_path.write_bytes(identity_model(x.dtype, 0))
    sessions["__floor__"] = session(floor_path, threads)
    assert all(s.get_inputs()[0].name == "input" for s in sessions.values())
    runs = {k: _runner(s, xb, iobinding) for k, s in sessions.items()}
    # calls per visit: aim at budget_s / rounds / variants seconds, from warm calls of the dense reference
    ref = runs["dense@1.0"]
    for _ in range(3):
        ref()
    t0 = time.perf_counter()
    for _ in range(5):
        ref()
    per_call = max((time.perf_counter() - t0) / 5, 1e-6)
    calls = int(min(200, max(3, budget_s / rounds / len(sessions) / per_call)))
    times: dict[str, list[float]] = {k: [] for k in sessions}
    rng = random.Random(seed)
    order = list(sessions)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            run = runs[k]
            run()  # warm-up after the other variants ran
            for _ in range(calls):
                t = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - t)
    return {k: {"p50_ms": 1e3 * float(np.median(v)), "calls": len(v)} for k, v in times.items()}


def sparse_kernel_probe() -> str:
    """Can ONNX Runtime run its sparse contrib kernel (SparseToDenseMatMul) on a sparse initializer?"""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((4, 3), np.float32)
    w[0, 1], w[2, 2] = 1.0, 2.0
    idx = np.flatnonzero(w).astype(np.int64)
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(w.ravel()[idx], "W"), numpy_helper.from_array(idx, "W_idx"), w.shape)
    graph = helper.make_graph([helper.make_node("SparseToDenseMatMul", ["W", "input"], ["logits"], domain="com.microsoft")],
                              "probe", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [3, 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4, 2])], sparse_initializer=[sparse])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    try:
        s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        out = s.run(None, {"input": np.ones((3, 2), np.float32)})[0]
        return "loads and runs" if np.allclose(out, w @ np.ones((3, 2))) else "runs but gives wrong results"
    except Exception as exc:
        return f"does not load: {str(exc).strip().splitlines()[0][:200]}"


def bench_model(setup: dict, args, work: Path, out_dir: Path, log) -> tuple[list[dict], dict]:
    from ticketpack.export.exporter import ExportConfig, export_prepared, prepare
    from ticketpack.search import Ticket

    log(f"{setup['label']}")
    tickets = {g: find_ticket(setup, g, work, args.train_threads, log) for g in ("weight", "neuron")}
    files_dir = work / "files" / setup["name"]
    files_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    files: dict[str, Path] = {}
    x_test = y_test = None
    done_dense = False
    for gran, ticket in tickets.items():
        manifest = Ticket.load(ticket).manifest
        for nominal, rnd in pick_rounds(ticket).items():
            if nominal == 1.0 and done_dense:
                continue  # round 0 is the same dense network in both tickets (same seed, same training)
            prepared = prepare(ticket, level=rnd, threads=1)
            x_test, y_test = prepared.x_test, prepared.y_test
            tag = "dense" if nominal == 1.0 else gran
            for variant in VARIANTS:
                key = f"{variant}@{nominal}" if nominal == 1.0 else f"{variant}@{gran}@{nominal}"
                path = files_dir / f"{key.replace('@', '_').replace('+', '-')}.onnx"
                start = time.perf_counter()
                row = {"model": setup["name"], "ticket": tag, "nominal": nominal, "level": rnd, "variant": variant,
                       "weights_remaining": manifest.rounds[rnd].weights_remaining}
                if variant == "naive":
                    naive_export(prepared, path)
                    row.update(file_bytes=path.stat().st_size, test_accuracy=ort_accuracy(path, x_test, y_test))
                else:
                    fmt, _, q = variant.partition("+")
                    res = export_prepared(prepared, path, ExportConfig(format=fmt, quantize=q or "none", threads=1))
                    card = res.card
                    row.update(file_bytes=res.file_bytes, test_accuracy=card.metrics.test_accuracy,
                               mac_fraction=res.mac_fraction, parity_max_abs_diff=card.parity.max_abs_diff,
                               argmax_agreement=card.parity.argmax_agreement, compacted=card.export.compacted)
                row["export_seconds"] = round(time.perf_counter() - start, 2)
                rows.append(row)
                files[key] = path
            mac = next(r["mac_fraction"] for r in rows if r["level"] == rnd and r["ticket"] == tag and "mac_fraction" in r)
            for r in rows:
                if r["level"] == rnd and r["ticket"] == tag:
                    r.setdefault("mac_fraction", mac)
            if nominal == 1.0:
                done_dense = True
            log(f"  exported {tag} round {rnd} ({100 * manifest.rounds[rnd].weights_remaining:.1f}% weights)")

    cpus = os.cpu_count() or 1
    timing = {}
    for threads in sorted({1, cpus}):
        for batch in (1, 256):
            log(f"  timing batch {batch}, {threads} thread(s), {len(files)} files interleaved")
            timing[(batch, threads)] = measure(files, x_test, batch, threads, args.rounds, args.budget, args.seed)
    log(f"  timing batch 1, 1 thread, IOBinding, {len(files)} files interleaved")
    iob = measure(files, x_test, 1, 1, args.rounds, args.budget, args.seed, iobinding=True)

    dense_key = "dense@1.0"
    base = next(r for r in rows if r["ticket"] == "dense" and r["variant"] == "dense")
    for r, key in zip(rows, files):
        r["size_ratio"] = r["file_bytes"] / base["file_bytes"]
        r["accuracy_drop_pts"] = 100 * (base["test_accuracy"] - r["test_accuracy"])
        for (batch, threads), t in timing.items():
            suffix = f"b{batch}" + ("" if threads == 1 else "_all")
            r[f"p50_ms_{suffix}"] = t[key]["p50_ms"]
            r[f"latency_ratio_{suffix}"] = t[key]["p50_ms"] / t[dense_key]["p50_ms"]
        r["p50_ms_b1_iobinding"] = iob[key]["p50_ms"]
        r["latency_ratio_b1_iobinding"] = iob[key]["p50_ms"] / iob[dense_key]["p50_ms"]
        r["throughput_b256"] = 256 / (r["p50_ms_b256"] / 1e3)
        if cpus > 1:
            r["throughput_b256_all"] = 256 / (r["p50_ms_b256_all"] / 1e3)
        r["meets_targets"] = meets(r)
    floors = {f"b{b}" + ("" if th == 1 else "_all"): t["__floor__"]["p50_ms"] for (b, th), t in timing.items()}
    floors["b1_iobinding"] = iob["__floor__"]["p50_ms"]
    return rows, {"floor_p50_ms": floors, "x_shape": list(x_test.shape), "threads_all": cpus}


def meets(r: dict) -> bool:
    return (r["variant"] != "naive" and r["weights_remaining"] <= TARGETS["weights_remaining"] + 1e-9
            and r["accuracy_drop_pts"] <= TARGETS["accuracy_drop_pts"] + 1e-9 and r["size_ratio"] <= TARGETS["size_ratio"]
            and r["latency_ratio_b256"] <= TARGETS["latency_ratio_b256"] and r["latency_ratio_b1"] <= TARGETS["latency_ratio_b1"])


def verdict(rows: list[dict]) -> dict:
    """Per model: the rows that meet every target, else the closest row and its gap to each target."""
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        ok = [f"{r['ticket']} {r['variant']} ({100 * r['weights_remaining']:.1f}%)" for r in mine if r["meets_targets"]]
        cands = [r for r in mine if r["variant"] != "naive" and r["weights_remaining"] <= TARGETS["weights_remaining"] + 1e-9]

        def excess(r):
            return max(max(r["accuracy_drop_pts"], 0) / TARGETS["accuracy_drop_pts"], r["size_ratio"] / TARGETS["size_ratio"],
                       r["latency_ratio_b256"] / TARGETS["latency_ratio_b256"], r["latency_ratio_b1"] / TARGETS["latency_ratio_b1"])

        best = min(cands, key=excess) if cands else None
        out[model] = {
            "meets": ok,
            "closest": None if best is None else {
                "row": f"{best['ticket']} {best['variant']} ({100 * best['weights_remaining']:.1f}%)",
                **{k: round(best[k], 4) for k in ("accuracy_drop_pts", "size_ratio", "latency_ratio_b1", "latency_ratio_b256")},
            },
        }
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    all_t = meta["threads_all"]
    lines = [
        "# Export benchmark",
        "",
        f"`python bench/export_bench.py` on {meta['machine']}; ONNX Runtime {meta['onnxruntime']} (CPU), torch {meta['torch']}.",
        f"Latency: p50 of `InferenceSession.run` from Python, 1 thread and all {all_t} threads, interleaved in one process "
        f"({meta['rounds']} rounds); ratios are against the unpruned `dense` export of the same model at the same batch and "
        "threads. Size: the whole .onnx file (model card included). Accuracy: the ONNX file on the test split; "
        "drop = unpruned dense − this, in points. MACs: multiply-accumulates of nonzero weights / dense (the physical "
        "reference for a speed-up).",
        "",
        "| model | ticket | weights | variant | acc | drop (pts) | size | size ratio | MACs | b1 p50 µs | b1 ratio | "
        f"b256 p50 ms | b256 ratio | b1 ratio ({all_t}t) | b256 ratio ({all_t}t) | b1 ratio (IOBinding) | ex/s b256 | targets |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        sfx = "_all" if all_t > 1 else ""
        lines.append(
            f"| {r['model']} | {r['ticket']} | {100 * r['weights_remaining']:.1f}% | {r['variant']} | {r['test_accuracy']:.3f} | "
            f"{r['accuracy_drop_pts']:+.1f} | {r['file_bytes'] / 1e3:.0f} kB | {r['size_ratio']:.3f} | {r['mac_fraction']:.3f} | "
            f"{1e3 * r['p50_ms_b1']:.1f} | {r['latency_ratio_b1']:.2f} | {r['p50_ms_b256']:.2f} | {r['latency_ratio_b256']:.2f} | "
            f"{r[f'latency_ratio_b1{sfx}']:.2f} | {r[f'latency_ratio_b256{sfx}']:.2f} | {r['latency_ratio_b1_iobinding']:.2f} | "
            f"{r['throughput_b256']:,.0f} | "
            f"{'✓' if r['meets_targets'] else ''} |"
        )
    lines += ["", "## Targets (≤ 10% weights, ≤ 1 point below dense, size ≤ 0.15, latency ≤ 0.33 at b256 and ≤ 0.5 at b1, 1 thread)", ""]
    for model, v in meta["verdict"].items():
        if v["meets"]:
            lines.append(f"- **{model}**: met by {', '.join(v['meets'])}.")
        elif v["closest"]:
            c = v["closest"]
            lines.append(f"- **{model}**: not met. Closest: {c['row']}: drop {c['accuracy_drop_pts']:+.2f} pts, size "
                         f"{c['size_ratio']:.3f}, latency b1 {c['latency_ratio_b1']:.2f}, b256 {c['latency_ratio_b256']:.2f}.")
    lines += ["", "## Notes", "",
              "- Rows of the `dense` variant at pruned levels run exactly the dense model's computation (zeros included): "
              "their spread around 1.00 is the noise of this machine.",
              "- `b1 ratio (IOBinding)`: batch 1, 1 thread, input and output bound once (`run_with_iobinding`), which removes "
              "most of the Python-side per-call cost; reported beside, not used for the targets."]
    for model, m in meta["models"].items():
        floor = m["floor_p50_ms"]
        lines.append(f"- {model}: an Identity graph with the same input takes {1e3 * floor['b1']:.1f} µs per call at batch 1 "
                     f"(1 thread) through `session.run`, {1e3 * floor['b1_iobinding']:.1f} µs through an IOBinding: the "
                     "per-call floor that no graph change removes.")
    lines.append(f"- ONNX Runtime's sparse kernel (com.microsoft SparseToDenseMatMul) on a sparse initializer: {meta['sparse_kernel_probe']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mdsd", help="Review data directory (text model).")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where the results go.")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ticketpack-export-bench",
                   help="Tickets and exported files (reused when the configuration is unchanged).")
    p.add_argument("--rounds", type=int, default=20, help="Interleaved timing rounds.")
    p.add_argument("--budget", type=float, default=40.0, help="Seconds of timing per (batch, threads) setting.")
    p.add_argument("--train-threads", type=int, default=1, help="Torch threads for the ticket searches.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the timing order.")
    p.add_argument("--quick", action="store_true", help="Short searches and timings: a smoke run, not results.")
    p.add_argument("--models", nargs="*", help="Only these models (lenet-300-100, convnet, bow, textcnn).")
    args = p.parse_args(argv)
    import importlib.util

    if importlib.util.find_spec("onnxscript") is None:
        print("the naive route needs torch.onnx.export's onnxscript: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if args.quick:
        args.rounds, args.budget = 3, 2.0
    import onnxruntime
    import torch

    from ticketpack.fileio import atomic_write_text

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    work = args.work / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    setups = [s for s in model_setups(args.data, args.quick) if not args.models or s["name"] in args.models]
    if not (args.data / "books.jsonl").exists():
        log(f"text models skipped: {args.data}/books.jsonl not found")
    rows, models = [], {}
    for setup in setups:
        r, m = bench_model(setup, args, work, args.out, log)
        rows += r
        models[setup["name"]] = m
    meta = {
        "command": "python bench/export_bench.py" + (" --quick" if args.quick else ""),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} CPUs)".replace("  ", " "),
        "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
        "threads_all": os.cpu_count() or 1, "rounds": args.rounds, "budget_s": args.budget,
        "targets": TARGETS, "models": models, "sparse_kernel_probe": sparse_kernel_probe(),
        "searches": {s["name"]: {"config": s["config"], "tickets": s["tickets"], "rate": 0.2} for s in setups},
    }
    meta["verdict"] = verdict(rows)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    keys = ["model", "variant", "ticket", "level", "weights_remaining", "accuracy_drop_pts", "size_ratio",
            "latency_ratio_b1", "latency_ratio_b256", "latency_ratio_b1_all", "latency_ratio_b256_all",
            "latency_ratio_b1_iobinding", "mac_fraction",
            "test_accuracy", "file_bytes", "p50_ms_b1", "p50_ms_b256", "throughput_b256", "meets_targets"]
    summary = [{k: (round(r[k], 6) if isinstance(r.get(k), float) else r.get(k)) for k in keys if k in r} for r in rows]
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "export_bench.json", json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n")
    atomic_write_text(out / "export_bench.md", markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
