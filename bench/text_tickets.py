"""Where tickets pay on text: the default text model's tickets at <= 10% of the weights, against their own dense
model, and their compact export against the dense file.

    python bench/text_tickets.py [--jobs 2] [--work DIR] [--max-weights 0.10] [--threads 1]
    python bench/text_tickets.py --tickets runs/desai2019      # the tickets examples/desai2019/run.py found instead

Searches a ticket on each of books, dvd and electronics with search seeds 0, 1, 2 (each seed also draws its own
70/15/15 split), with what a user gets without flags: ticketpack's default text model, featurization and training
recipe (20 epochs, patience 10), and the pruning schedule of examples/desai2019 (layer-wise, 40% per round, 6
rounds: 60% ... 4.7% of the weights). Finished searches in ``--work`` are reused. For every ticket, the densest
round keeping at most ``--max-weights`` of the prunable weights is compared with the ticket's own round 0 (the dense
model trained on the same split and recipe), and exported as ``compact`` (dead embedding rows dropped, ids
remapped) and ``compact`` + static int8; each file is compared with the dense export of the same architecture
(``ExportResult.dense_bytes``). Writes bench/results/text_tickets.{md,json}.
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

from ticketpack.core.stats import binomial_se, t_interval  # noqa: E402
from ticketpack.export.exporter import export_model  # noqa: E402
from ticketpack.search import Ticket  # noqa: E402

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
        # the int8 gates open: a quantized file that loses accuracy is measured and shown (its accuracy is in the
        # row), not refused
        result = export_model(ticket_dir, tmp / f"{ticket_dir.name}-{name}.onnx", level=rec.round, format="compact",
                              quantize=quantize, threads=threads, min_int8_agreement=0.0, max_static_int8_drop=100.0)
        row[name] = {"file_bytes": result.file_bytes, "dense_bytes": result.dense_bytes, "size_ratio": result.size_ratio,
                     "test_accuracy": result.card.metrics.test_accuracy, "export_seconds": round(time.perf_counter() - t0, 1),
                     "compacted": {layer.name: layer.shape for layer in result.card.sparsity.layers}}
    return row


DOMAINS, SEEDS = ("books", "dvd", "electronics"), (0, 1, 2)
PRUNE = {"strategy": "layerwise", "rate": 0.4, "rounds": 6}  # examples/desai2019's schedule


def _search(data: str, domain: str, seed: int, out: str) -> str:
    from ticketpack.search import SearchConfig, search

    cfg = SearchConfig.model_validate({"dataset": data, "source": domain, "seed": seed, "threads": 1, "prune": PRUNE})
    search(cfg, Path(out), resume=True)
    return out


def find_tickets(data: Path, work: Path, jobs: int) -> list[Path]:
    """The 9 tickets (3 domains x 3 seeds) with the default model and recipe, ``jobs`` searches at a time."""
    from concurrent.futures import ProcessPoolExecutor

    todo = [(str(data.resolve()), d, k, str(work / f"ticket-{d}-seed{k}")) for d in DOMAINS for k in SEEDS]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        outs = list(pool.map(_search, *zip(*todo)))
    print(f"searches: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return [Path(o) for o in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mdsd")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ticketpack-text-tickets",
                    help="Where the searches go (finished ones are reused).")
    ap.add_argument("--tickets", type=Path, help="Measure the ticket-*-seed* directories here instead of searching.")
    ap.add_argument("--jobs", type=int, default=2, help="Searches at a time.")
    ap.add_argument("--max-weights", type=float, default=0.10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.tickets:
        tickets = sorted(args.tickets.glob("ticket-*-seed*"))
        if not tickets:
            raise SystemExit(f"no ticket-*-seed* directories in {args.tickets}")
        source = f"the tickets in `{args.tickets}`"
    else:
        if not (args.data / "books.jsonl").exists():
            raise SystemExit(f"{args.data}/books.jsonl not found: the review data is needed (--data)")
        tickets = find_tickets(args.data, args.work, args.jobs)
        source = ("ticketpack's default text model, featurization and recipe (20 epochs, patience 10), layer-wise "
                  "pruning of 40% per round, 6 rounds")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(t, args.max_weights, args.threads, Path(tmp)) for t in tickets]

    lines = [
        "# Where tickets pay: the default text model at <= 10% of the weights\n",
        f"{len(rows)} tickets (books, dvd, electronics x search seeds 0-2): {source}. Per ticket "
        f"the densest IMP round keeping <= {args.max_weights:.0%} of the weights, against the same ticket's round 0 "
        "(dense, same split and recipe), test accuracy in %; files against the dense export of the same model. "
        f"Written by `python bench/text_tickets.py{' --tickets ' + str(args.tickets) if args.tickets else ''} "
        f"--threads {args.threads}`.\n",
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
                                                           "tickets": source, "rows": rows, "summary": summary},
                                                          indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
