"""Latency of a self-contained file (``export --self-contained``) against the Python featurizer + the model-input
graph, per request, at one thread.

    python bench/self_contained.py [--image-ticket DIR] [--text-ticket DIR] [--work DIR] [--out bench/results]
                                   [--budget 4]

Each ticket (a digits ticket is searched into ``--work`` when none is given; text only when ``--text-ticket`` is given
and its preprocessing has an ONNX form) is exported twice with the same weights (compact): the ordinary file and the
self-contained one. Per request, on the same raw inputs (rows of its test split, repeated to the batch size):

- ``self-contained``: ``kind.raw_array(raw)`` then one ``session.run`` of the whole graph for probabilities and labels
  (what ``ticketpack.load(...).predict_proba`` / ``predict`` and ``serve`` do with such a file);
- ``python + graph``: ``kind.transform(raw)`` (the Python featurizer), one ``session.run`` for the logits, softmax
  and the label lookup in numpy (what they do with an ordinary file).

Both at batch 1 and 256, ONNX Runtime at one intra-op thread, timed interleaved (A, B, A, B, ...:
``ticketpack.evaluate.latency.measure_interleaved``) so that they share the machine's noise. Prints the p50 of each
and the ratio self-contained / python + graph (below 1: the self-contained file is faster), and writes
``<out>/self_contained.md`` and ``<out>/self_contained.json``. ``OPENBLAS_CORETYPE`` is reported as found (numpy's
part of the featurizer is elementwise work that does not go through BLAS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ticketpack.core.errors import TicketpackError
from ticketpack.evaluate.latency import LatencyBudget, measure_interleaved
from ticketpack.runtime.predictor import Predictor, softmax

BATCHES = (1, 256)


def _export(ticket: Path, work: Path, name: str) -> tuple[Path, Path, object]:
    from ticketpack.export.exporter import ExportConfig, export_prepared, prepare

    prepared = prepare(ticket, threads=1)
    plain, sc = work / f"{name}.onnx", work / f"{name}-self-contained.onnx"
    export_prepared(prepared, plain, ExportConfig(format="compact", threads=1))
    export_prepared(prepared, sc, ExportConfig(format="compact", threads=1, self_contained=True))
    return plain, sc, prepared.selection.data.test.raw


def _rows(raw, n: int):
    idx = np.arange(n) % len(raw)
    return [raw[i] for i in idx] if isinstance(raw, list) else np.asarray(raw)[idx]


def _runners(plain: Path, sc: Path, batch):
    a, b = Predictor(sc, "cpu", 1), Predictor(plain, "cpu", 1)
    prep, labels = b.card.preprocessing, b.labels

    def self_contained():
        return a.graph_session.run(["probabilities", "label"], {"raw": prep.raw_array(batch)})

    def python_and_graph():
        logits = b.session.run(["logits"], {"input": prep.transform(batch)})[0]
        probs = softmax(logits.astype(np.float64))
        return probs, [labels[i] for i in probs.argmax(axis=1)]

    same = self_contained()[1].tolist() == python_and_graph()[1]
    return [self_contained, python_and_graph], same


def measure(name: str, plain: Path, sc: Path, raw, budget_s: float) -> list[dict]:
    card = Predictor(plain, "cpu", 1).card
    what = f"{card.model.name}, {card.preprocessing.describe()}, {card.sparsity.weights_remaining:.1%} weights remaining"
    rows = []
    for bs in BATCHES:
        runners, same = _runners(plain, sc, _rows(raw, bs))
        budget = LatencyBudget(max_seconds=budget_s, min_seconds=min(1.0, budget_s / 2), min_runs=30)
        a, b = measure_interleaved(runners, bs, budget)
        rows.append({"model": name, "batch": bs, "self_contained_p50_ms": a.p50_ms, "python_graph_p50_ms": b.p50_ms,
                     "ratio": a.p50_ms / b.p50_ms, "ci_pct": [a.median_ci_pct, b.median_ci_pct],
                     "stable": a.stable and b.stable, "runs": a.runs, "same_labels": same,
                     "file_bytes": [sc.stat().st_size, plain.stat().st_size], "what": what})
        r = rows[-1]
        print(f"{name:6s} batch {bs:4d}: self-contained {r['self_contained_p50_ms']:.4f} ms, python + graph "
              f"{r['python_graph_p50_ms']:.4f} ms, ratio {r['ratio']:.3f} (CI ±{max(r['ci_pct']):.1f}%, "
              f"{r['runs']} runs, same labels: {same})", flush=True)
    return rows


def _markdown(rows: list[dict], env: dict) -> str:
    lines = ["# Self-contained graph vs Python featurizer + model graph (per request, 1 thread)", "",
             "`python bench/self_contained.py` (see its docstring): p50 latency per request, the two interleaved in "
             "one run. ratio = self-contained / python + graph (below 1: the self-contained file is faster).", "",
             f"Machine: {env['cpus']} CPUs, {env['machine']}; onnxruntime {env['onnxruntime']}, numpy {env['numpy']}; "
             f"OPENBLAS_CORETYPE={env['openblas_coretype']}; load average at start {env['loadavg']}.", "",
             "| model | batch | self-contained p50 (ms) | python + graph p50 (ms) | ratio | CI (±%) | stable | same labels |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    models = {r["model"]: (r["what"], r["file_bytes"]) for r in rows}
    lines[4:4] = [f"- {m}: {w} (files: {b[0]:,} bytes self-contained, {b[1]:,} ordinary)" for m, (w, b) in models.items()]
    lines.insert(4 + len(models), "")
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['self_contained_p50_ms']:.4f} | {r['python_graph_p50_ms']:.4f} "
                     f"| {r['ratio']:.3f} | {max(r['ci_pct']):.1f} | {r['stable']} | {r['same_labels']} |")
    verdicts = {f"{r['model']} at batch {r['batch']}": _verdict(r) for r in rows}
    lines += ["", "Verdict (a ratio counts only beyond the larger of the two medians' ~95% intervals): "
              + "; ".join(f"{k}: {v}" for k, v in verdicts.items()) + ".", ""]
    slower = [k for k, v in verdicts.items() if v.startswith("slower")]
    lines.append("`export --self-contained` stays off by default: the self-contained file is slower for "
                 + ", ".join(slower) + "." if slower else
                 "The self-contained file is nowhere slower here: `--self-contained` could be the default.")
    return "\n".join(lines) + "\n"


def _verdict(row: dict) -> str:
    noise = max(row["ci_pct"]) / 100
    if row["ratio"] < 1 - noise:
        return f"self-contained faster ({1 / row['ratio']:.2f}x)"
    if row["ratio"] > 1 + noise:
        return f"slower ({row['ratio']:.2f}x the time)"
    return "the same within noise"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-ticket", type=Path)
    ap.add_argument("--text-ticket", type=Path, help="e.g. a ticket searched on shared/data/mdsd books with the default "
                    "text preprocessing (the run in bench/results/self_contained.md: 2 epochs, 1 round at 50%%)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ticketpack-bench-self-contained"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--budget", type=float, default=4.0, help="Seconds of timing per model and batch size, at most.")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    image_ticket = args.image_ticket
    if image_ticket is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import tiny_config

        from ticketpack.search import search

        image_ticket = args.work / "digits-ticket"
        search(tiny_config(prune={"rounds": 2, "rate": 0.5}), image_ticket, force=True)
    env = {"cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "onnxruntime": ort.__version__, "numpy": np.__version__,
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
           "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"}
    rows = measure("image", *_export(image_ticket, args.work, "image"), args.budget)
    if args.text_ticket is not None:
        try:
            rows += measure("text", *_export(args.text_ticket, args.work, "text"), args.budget)
        except TicketpackError as exc:
            print(f"text: skipped ({exc})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "self_contained.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    (args.out / "self_contained.md").write_text(_markdown(rows, env))
    print(f"wrote {args.out / 'self_contained.md'}")


if __name__ == "__main__":
    main()
