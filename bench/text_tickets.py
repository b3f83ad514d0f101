"""Where tickets pay on text: the default text model's tickets at <= 10% of the weights, against their own dense
model, and their compact export against the dense file.

    python bench/text_tickets.py [--work runs/desai2019] [--max-weights 0.10] [--threads 1]

Reads the tickets `examples/desai2019/run.py` writes (``<work>/ticket-<domain>-seed<k>``: ticketpack's default
text model and featurization, IMP with rewinding on each review category, 3 search seeds), so run that first.
For every ticket, the densest round keeping at most ``--max-weights`` of the prunable weights is compared with the
ticket's own round 0 (the dense model trained on the same split and recipe), and exported as ``compact`` (dead
embedding rows dropped, ids remapped) and ``compact`` + static int8; each file is compared with the dense export
of the same architecture (``ExportResult.dense_bytes``). Writes bench/results/text_tickets.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ticketpack.export.exporter import export_model  # noqa: E402
from ticketpack.search import Ticket  # noqa: E402
from ticketpack.stats import binomial_se, t_interval  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def measure(ticket_dir: Path, max_weights: float, threads: int, tmp: Path) -> dict:
    ticket = Ticket.load(ticket_dir)
    rounds = ticket.manifest.rounds
    dense = next(r for r in rounds if r.round == 0)
    fits = [r for r in rounds if r.weights_remaining <= max_weights]
    if not fits:
        raise SystemExit(f"{ticket_dir}: no round keeps <= {max_weights:.0%} of the weights; search more rounds")
    rec = max(fits, key=lambda r: r.weights_remaining)
    row = {"ticket": ticket_dir.name, "domain": ticket.manifest.dataset.source_domain, "seed": ticket.manifest.config.seed,
           "round": rec.round, "weights_remaining": rec.weights_remaining, "test_n": ticket.manifest.dataset.split_sizes["test"],
           "ticket_test_accuracy": rec.test_accuracy, "dense_test_accuracy": dense.test_accuracy}
    for name, quantize in (("compact", "none"), ("compact_int8_static", "int8-static")):
        t0 = time.perf_counter()
        result = export_model(ticket_dir, tmp / f"{ticket_dir.name}-{name}.onnx", level=rec.round, format="compact",
                              quantize=quantize, threads=threads)
        row[name] = {"file_bytes": result.file_bytes, "dense_bytes": result.dense_bytes, "size_ratio": result.size_ratio,
                     "test_accuracy": result.card.metrics.test_accuracy, "export_seconds": round(time.perf_counter() - t0, 1),
                     "compacted": {layer.name: layer.shape for layer in result.card.sparsity.layers}}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "desai2019")
    ap.add_argument("--max-weights", type=float, default=0.10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    tickets = sorted(args.work.glob("ticket-*-seed*"))
    if not tickets:
        raise SystemExit(f"no tickets in {args.work}: run `python examples/desai2019/run.py --work {args.work}` first")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(t, args.max_weights, args.threads, Path(tmp)) for t in tickets]

    lines = [
        "# Where tickets pay: the default text model at <= 10% of the weights\n",
        f"Tickets of `examples/desai2019/run.py` (default text model and featurization; {len(rows)} tickets). Per ticket "
        f"the densest IMP round keeping <= {args.max_weights:.0%} of the weights, against the same ticket's round 0 "
        "(dense, same split and recipe), test accuracy in %; files against the dense export of the same model. "
        f"Written by `python bench/text_tickets.py --threads {args.threads}`.\n",
        "| ticket | weights | dense | ticket | diff | compact file | compact + int8-static file | int8-static acc |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        c, q = r["compact"], r["compact_int8_static"]
        lines.append(
            f"| {r['ticket']} | {100 * r['weights_remaining']:.1f}% | {100 * r['dense_test_accuracy']:.1f} | "
            f"{100 * r['ticket_test_accuracy']:.1f} | {100 * (r['ticket_test_accuracy'] - r['dense_test_accuracy']):+.1f} | "
            f"{c['file_bytes'] / 1e6:.2f} MB ({c['size_ratio']:.3f}x) | {q['file_bytes'] / 1e6:.2f} MB ({q['size_ratio']:.3f}x) | "
            f"{100 * q['test_accuracy']:.1f} |")
    summary = {}
    lines += ["", "| domain | ticket − dense, mean [95% interval] over seeds | within 1 point | compact file (mean) | <= 0.1x |",
              "| --- | ---: | :-: | ---: | :-: |"]
    for domain in sorted({r["domain"] for r in rows}):
        rs = [r for r in rows if r["domain"] == domain]
        mean, low, high = t_interval([r["ticket_test_accuracy"] - r["dense_test_accuracy"] for r in rs])
        ratio = statistics.fmean(r["compact"]["size_ratio"] for r in rs)
        interval = f" [{100 * low:+.1f}, {100 * high:+.1f}]" if low is not None else ""
        summary[domain] = {"diff_mean": mean, "diff_low": low, "diff_high": high, "compact_size_ratio": ratio,
                           "within_1_point": mean >= -0.01, "size_ok": ratio <= 0.1}
        lines.append(f"| {domain} | {100 * mean:+.1f}{interval} | {'yes' if mean >= -0.01 else 'no'} | {ratio:.3f}x | "
                     f"{'yes' if ratio <= 0.1 else 'no'} |")
    se = binomial_se(0.8, rows[0]["test_n"])
    lines.append(f"\nTest splits of {rows[0]['test_n']} reviews: one accuracy's standard error is about {100 * se:.1f} "
                 "points, so a 1-point difference is not resolved by one split; the interval is over the search seeds "
                 "(each with its own split).")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text_tickets.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "text_tickets.json").write_text(json.dumps({"threads": args.threads, "max_weights": args.max_weights,
                                                           "rows": rows, "summary": summary}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
