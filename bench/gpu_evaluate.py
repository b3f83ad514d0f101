"""The GPU path (issue 15): `ticketpack evaluate --provider cuda` on the compute-bound models' dense and compact exports.

    python bench/export_bench.py --models resnet transformer     # makes the files (CPU, any machine)
    python bench/gpu_evaluate.py --files /tmp/ticketpack-export-bench/full/files --data ../shared/data/mdsd
                                                                  # on a machine with a GPU and onnxruntime-gpu

For the two compute-bound models of bench/export_bench.py (resnet on digits, transformer on mdsd books) it runs the
CLI, `ticketpack evaluate CANDIDATE --baseline DENSE --batch-sizes 1,256 --json`, once with `--provider cuda` per
candidate (the compact export at each structured level, and its int8 forms) and once with `--provider cpu` (1 thread,
the same machine) for the compact target row, and writes bench/results/gpu_evaluate.{json,md}: p50 latency at batch
1 and 256, the candidate/dense ratio, accuracy, the provider each run reported, the GPU (nvidia-smi) and the ONNX
Runtime build. evaluate alternates model and baseline run by run, so each ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (model, candidate file in --files/<model>/, label); the dense baseline is dense_1.0.onnx beside it
CANDIDATES = [
    ("resnet", "compact_neuron_0.05.onnx", "compact"),
    ("resnet", "compact_neuron_0.2.onnx", "compact"),
    ("resnet", "compact-int8-static_neuron_0.05.onnx", "compact+int8-static"),
    ("resnet", "compact-int8_neuron_0.05.onnx", "compact+int8"),
    ("transformer", "compact_neuron_0.2.onnx", "compact"),
    ("transformer", "compact-int8-static_neuron_0.2.onnx", "compact+int8-static"),
]
CPU_REFERENCE = {("resnet", "compact_neuron_0.05.onnx"), ("transformer", "compact_neuron_0.2.onnx")}
TEXT_MODELS = {"transformer"}


def gpu_name() -> str:
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi"
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def evaluate(candidate: Path, dense: Path, provider: str, data: Path | None, budget: float) -> dict:
    cmd = [sys.executable, "-m", "ticketpack", "evaluate", str(candidate), "--baseline", str(dense),
           "--provider", provider, "--threads", "1", "--batch-sizes", "1,256", "--latency-budget", str(budget), "--json"]
    if data is not None:
        cmd += ["--dataset", str(data)]
    print("$ ticketpack " + " ".join(cmd[3:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: a gate failed, still a report
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:400], "returncode": proc.returncode}
    return json.loads(proc.stdout)


def row(model: str, label: str, report: dict) -> dict:
    if "error" in report:
        return {"model": model, "variant": label, **report}
    p50 = {s["batch_size"]: s["p50_ms"] for s in report["model"]["latency"]}
    base = {s["batch_size"]: s["p50_ms"] for s in report["baseline"]["latency"]}
    return {
        "model": model, "variant": label, "provider": report["provider"],
        "onnxruntime": report["onnxruntime_version"],
        "weights_remaining": report["model"]["weights_remaining"],
        "accuracy": report["model"]["accuracy"], "dense_accuracy": report["baseline"]["accuracy"],
        "size_ratio": report["comparison"]["size_ratio"],
        **{f"p50_ms_b{b}": p50[b] for b in (1, 256)},
        **{f"dense_p50_ms_b{b}": base[b] for b in (1, 256)},
        **{f"latency_ratio_b{b}": p50[b] / base[b] for b in (1, 256)},
    }


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# GPU path: `ticketpack evaluate --provider cuda` (issue 15)", "",
        f"Device: **{meta['gpu']}**; ONNX Runtime {meta['onnxruntime']} ({', '.join(meta['providers'])}); "
        f"Python {meta['python']}; {meta['machine']}.", "",
        f"Command: `{meta['command']}`. Each row is one `ticketpack evaluate CANDIDATE --baseline DENSE` run, model and "
        "baseline alternating run by run; latency is ONNX Runtime `session.run` on host (numpy) inputs, so it includes "
        "the copies to and from the GPU. `cpu` rows: the same machine's CPU, 1 thread.", "",
        "| model | variant | provider | weights | accuracy (dense) | size | p50 b1 ms (dense) | ratio b1 | "
        "p50 b256 ms (dense) | ratio b256 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['variant']} | failed: {r['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['provider']} | {100 * r['weights_remaining']:.1f}% | "
            f"{100 * r['accuracy']:.1f} ({100 * r['dense_accuracy']:.1f}) | {r['size_ratio']:.3f}x | "
            f"{r['p50_ms_b1']:.3f} ({r['dense_p50_ms_b1']:.3f}) | {r['latency_ratio_b1']:.2f}x | "
            f"{r['p50_ms_b256']:.3f} ({r['dense_p50_ms_b256']:.3f}) | {r['latency_ratio_b256']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=Path, default=Path("/tmp/ticketpack-export-bench/full/files"),
                   help="bench/export_bench.py's exported files (one folder per model).")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mdsd",
                   help="Review data directory (the transformer's test split).")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where the results go.")
    p.add_argument("--budget", type=float, default=2.0, help="evaluate --latency-budget (seconds per batch size).")
    p.add_argument("--providers", nargs="*", default=["cuda", "cpu"], help="Providers to run (cpu: the reference).")
    args = p.parse_args(argv)

    import onnxruntime

    from ticketpack.core.fileio import atomic_write_text

    rows = []
    for provider in args.providers:
        for model, name, label in CANDIDATES:
            if provider == "cpu" and (model, name) not in CPU_REFERENCE:
                continue
            candidate, dense = args.files / model / name, args.files / model / "dense_1.0.onnx"
            if not candidate.exists() or not dense.exists():
                print(f"skipped {model}/{name}: not in {args.files}", file=sys.stderr)
                continue
            report = evaluate(candidate, dense, provider, args.data if model in TEXT_MODELS else None, args.budget)
            rows.append(row(model, label, report))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    meta = {
        "command": "python bench/gpu_evaluate.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""),
        "gpu": gpu_name(), "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(), "python": platform.python_version(),
        "machine": f"{platform.machine()} ({os.cpu_count()} CPUs)", "budget_s": args.budget,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "gpu_evaluate.json", json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    atomic_write_text(args.out / "gpu_evaluate.md", markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
