"""The lottery-ticket effect on digits: ticket vs a random mask of the same per-layer sparsity, same init.

    python examples/lth_curve/run.py [--seeds 0 1 2] [--rounds 14] [--threads 2]

For each seed: `ticketpack search` (lenet-300-100 on digits/clean, global magnitude, 20% per round, rewind to
θ0), then for every round a random mask with the same number of weights in every layer (random_like of that
round's ticket mask), trained from the same θ0 with the same recipe. Writes results.json, results.md and
lth_curve.png beside this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from ticketpack.pruning.mask import random_like
from ticketpack.search import SearchConfig, Ticket, search
from ticketpack.search.imp import derive_seed
from ticketpack.training import train

HERE = Path(__file__).parent


def run(seeds: list[int], rounds: int, threads: int, work: Path) -> list[dict]:
    rows = []
    for seed in seeds:
        cfg = SearchConfig(seed=seed, threads=threads, prune={"rounds": rounds, "rate": 0.2})
        out = work / f"seed{seed}"
        search(cfg, out, resume=True)
        ticket = Ticket.load(out)
        data = ticket.load_data(cfg.source)
        model = ticket.build_model()
        for rec in ticket.manifest.rounds:
            rnd_mask = random_like(ticket.mask(rec.round), torch.Generator().manual_seed(derive_seed(seed, "random", rec.round)))
            model.load_state_dict(ticket.rewind_state())
            rnd = train(model, data, cfg.train, derive_seed(seed, "train", rec.round), rnd_mask)
            rows.append({"seed": seed, "round": rec.round, "weights_remaining": rec.weights_remaining,
                         "ticket_test_accuracy": rec.test_accuracy, "random_test_accuracy": rnd.test_accuracy})
            print(f"seed {seed} round {rec.round:2d} {100 * rec.weights_remaining:5.1f}%  "
                  f"ticket {rec.test_accuracy:.3f}  random {rnd.test_accuracy:.3f}", flush=True)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for r in sorted({row["round"] for row in rows}):
        sel = [row for row in rows if row["round"] == r]
        t = [row["ticket_test_accuracy"] for row in sel]
        rn = [row["random_test_accuracy"] for row in sel]
        out.append({"round": r, "weights_remaining": statistics.mean(row["weights_remaining"] for row in sel),
                    "ticket_mean": statistics.mean(t), "ticket_std": statistics.stdev(t) if len(t) > 1 else 0.0,
                    "random_mean": statistics.mean(rn), "random_std": statistics.stdev(rn) if len(rn) > 1 else 0.0})
    return out


def plot(summary: list[dict], path: Path, n_seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [100 * s["weights_remaining"] for s in summary]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(x, [100 * s["ticket_mean"] for s in summary], yerr=[100 * s["ticket_std"] for s in summary],
                marker="o", capsize=3, label="ticket (IMP mask, rewound to θ0)")
    ax.errorbar(x, [100 * s["random_mean"] for s in summary], yerr=[100 * s["random_std"] for s in summary],
                marker="s", capsize=3, label="random mask, same per-layer sparsity, same θ0")
    dense = summary[0]
    ax.axhspan(100 * (dense["ticket_mean"] - dense["ticket_std"]), 100 * (dense["ticket_mean"] + dense["ticket_std"]),
               color="grey", alpha=0.2, label="dense (mean ± std)")
    ax.set_xscale("log")
    ticks = [100, 50, 20, 10, 5]
    ax.set_xticks(ticks, [f"{t}%" for t in ticks])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("% of weights remaining (log scale)")
    ax.set_ylabel("test accuracy, digits/clean (%)")
    ax.set_title(f"lenet-300-100 on digits: ticket vs random mask ({n_seeds} seeds, mean ± std)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("tickets/lth_curve"))
    args = ap.parse_args()
    rows = run(args.seeds, args.rounds, args.threads, args.work)
    summary = summarize(rows)
    (HERE / "results.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    lines = ["| round | % weights remaining | ticket test acc | random-mask test acc |", "|---:|---:|---:|---:|"]
    for s in summary:
        lines.append(f"| {s['round']} | {100 * s['weights_remaining']:.1f} | {100 * s['ticket_mean']:.1f} ± {100 * s['ticket_std']:.1f}"
                     f" | {100 * s['random_mean']:.1f} ± {100 * s['random_std']:.1f} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    plot(summary, HERE / "lth_curve.png", len(args.seeds))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
