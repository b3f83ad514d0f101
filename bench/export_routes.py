"""Export wall time through both torch.onnx routes (issue 26, part 8): TorchScript (``dynamo=False``, which torch
deprecates) against the torch.export route (``dynamo=True``), side by side in one process, 1 thread.

    python bench/export_routes.py             # every built-in model and every model of examples/custom_models
    python bench/export_routes.py --repeats 5

Each model is built at its factory's default options on an MNIST-sized image (1x28x28, 10 classes) or a
128-token text input (vocabulary 20,000, 2 classes), untrained. Each export is ticketpack's own graph step
(:func:`ticketpack.export.exporter._graph`: torch.onnx.export, then the generic clean-ups and the weight naming) at
opset 17 and at opset 18, the routes interleaved, ``--repeats`` times after one untimed warm-up export per route
and model; the first export of the process through each route is reported apart (it imports and compiles what
later exports reuse). Every graph is held to the parity gate export uses
(:func:`ticketpack.export.exporter.float_parity`, atol 1e-4, 256 random inputs) and the failures are recorded.

Writes bench/results/export_routes.json (every timing) and bench/results/export_routes.md (the table).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMAGE = (1, 28, 28)
TOKENS, VOCAB = 128, 20_000


def models() -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """name → (model, example batch of 2): the built-ins, then examples/custom_models."""
    from ticketpack.models.factory import resolve
    from ticketpack.models.registry import MODELS

    image = {"input_shape": IMAGE, "num_classes": 10}
    text = {"input_shape": (TOKENS,), "num_classes": 2, "vocab_size": VOCAB}
    torch.manual_seed(0)
    out = {}
    for name in MODELS.list():
        entry = MODELS.get(name)
        is_text = entry.takes.says.startswith("token")
        out[name] = (entry.factory(**(text if is_text else image)),
                     torch.randint(1, VOCAB, (2, TOKENS)) if is_text else torch.randn(2, *IMAGE))
    custom = ROOT / "examples" / "custom_models" / "models.py"
    for name, kwargs, x in (("resnet", image, torch.randn(2, *IMAGE)), ("branches", image, torch.randn(2, *IMAGE)),
                            ("transformer", text, torch.randint(1, VOCAB, (2, TOKENS)))):
        factory, _ = resolve(f"{custom}:{name}")
        out[f"custom_models:{name}"] = (factory(**kwargs), x)
    return out


def export_once(model, example, opset: int, route: str, x: np.ndarray, reference: np.ndarray) -> dict:
    from ticketpack.core.errors import TicketpackError
    from ticketpack.export.exporter import _graph, float_parity

    prunable = {n: p.detach().numpy() for n, p in model.named_parameters() if p.dim() >= 2}
    start = time.perf_counter()
    try:
        graph = _graph(model, example, opset, prunable, route)
    except TicketpackError as exc:
        return {"seconds": time.perf_counter() - start, "error": str(exc)}
    seconds = time.perf_counter() - start
    try:
        diff = float_parity(graph, x, reference, 1e-4, threads=1)
    except TicketpackError as exc:
        return {"seconds": seconds, "error": str(exc)}
    return {"seconds": seconds, "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--opsets", default="17,18")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "export_routes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # the dynamo route logs its opset conversion and skipped torchvision ops
    warnings.simplefilter("ignore")
    import onnxscript

    opsets = [int(o) for o in args.opsets.split(",")]
    load_before = os.getloadavg()
    rows, first = [], {}
    for name, (model, example) in models().items():
        model.eval()
        x = (torch.randint(1, VOCAB, (256, TOKENS)) if example.dtype == torch.int64 else torch.randn(256, *IMAGE))
        with torch.no_grad():
            reference = model(x).numpy()
        x = x.numpy()
        for opset in opsets:
            runs = {"torchscript": [], "dynamo": []}
            for route in runs:  # warm-up
                r = export_once(model, example, opset, route, x, reference)
                first.setdefault(route, {"model": name, "opset": opset, "seconds": r["seconds"]})
            for _ in range(args.repeats):
                for route, done in runs.items():
                    done.append(export_once(model, example, opset, route, x, reference))
            row = {"model": name, "opset": opset,
                   "parameters": sum(p.numel() for p in model.parameters())}
            for route, rs in runs.items():
                row[route] = {"median_s": statistics.median(r["seconds"] for r in rs),
                              "seconds": [r["seconds"] for r in rs],
                              "error": next((r["error"] for r in rs if "error" in r), None),
                              "max_abs_diff": max(r.get("max_abs_diff", math.nan) for r in rs)}
            row["ratio"] = row["dynamo"]["median_s"] / row["torchscript"]["median_s"]
            row["extra_s"] = row["dynamo"]["median_s"] - row["torchscript"]["median_s"]
            rows.append(row)
            print(f"{name:28s} opset {opset}  torchscript {row['torchscript']['median_s']:7.3f} s  dynamo "
                  f"{row['dynamo']['median_s']:7.3f} s  ×{row['ratio']:6.1f}  "
                  f"{'ok' if not row['dynamo']['error'] else 'dynamo FAILS: ' + row['dynamo']['error'][:90]}",
                  flush=True)
    meta = {"command": " ".join(["python bench/export_routes.py", *(argv if argv is not None else sys.argv[1:])]),
            "threads": torch.get_num_threads(), "repeats": args.repeats, "torch": torch.__version__,
            "onnxscript": onnxscript.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "first_export_in_process": first, "cpus": os.cpu_count(),
            "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, meta))
    print(f"wrote {args.out.with_suffix('.md')} and .json")
    return 0


def markdown(rows: list[dict], meta: dict) -> str:
    ok = [r for r in rows if not r["dynamo"]["error"] and not r["torchscript"]["error"]]
    lines = [
        "# Export time: TorchScript route vs torch.export (dynamo) route",
        "",
        (f"`{meta['command']}` — torch {meta['torch']}, onnxscript {meta['onnxscript']}, {meta['threads']} thread "
         f"(`torch.set_num_threads(1)`), median of {meta['repeats']} exports after one warm-up per route and model "
         "(ticketpack's graph step: torch.onnx.export + clean-ups + weight naming; parity gate atol 1e-4 on 256 "
         "random inputs)."),
        "",
        "| model | params | opset | torchscript s | dynamo s | dynamo / torchscript | dynamo − torchscript s | dynamo route |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        status = "passes" if not r["dynamo"]["error"] else f"fails: {r['dynamo']['error'][:120]}"
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['opset']} | {r['torchscript']['median_s']:.3f} | "
                     f"{r['dynamo']['median_s']:.3f} | {r['ratio']:.1f}× | {r['extra_s']:+.2f} | {status} |")
    if ok:
        ratios = [r["ratio"] for r in ok]
        extra = [r["extra_s"] for r in ok]
        lines += ["", (f"Where both routes pass ({len(ok)} of {len(rows)} rows): dynamo / torchscript "
                       f"{min(ratios):.0f}–{max(ratios):.0f}× (median {statistics.median(ratios):.0f}×); extra time "
                       f"per export {min(extra):.2f}–{max(extra):.2f} s (median {statistics.median(extra):.2f} s).")]
    first = meta["first_export_in_process"]
    load = meta["load_average_1min_before_after"]
    lines += ["", (f"Machine: {meta['cpus']} CPUs, 1-minute load average {load[0]} before and {load[1]} after the "
                   "run (other work shared the cores: the absolute seconds are upper bounds, the ratios compare "
                   "routes timed interleaved under the same load).")]
    lines += ["", "First export of the process (not in the medians): " + ", ".join(
        f"{route} {v['seconds']:.2f} s ({v['model']}, opset {v['opset']})" for route, v in first.items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
