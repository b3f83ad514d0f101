"""Weight rewinding, learning-rate rewinding or fine-tuning: which `--retrain` mode to retrain with after each
pruning step, when the search starts from a trained checkpoint (Renda, Frankle & Carbin 2020 report that both
rewinding methods beat fine-tuning at equal sparsity).

    python bench/retrain_modes.py [--jobs 2] [--threads 1] [--epochs 20] [--rewind-frac 0.05] [--work DIR]
    python bench/retrain_modes.py --models resnet          # one model only (resnet, fasttext)

Two models: (a) the residual CNN of examples/custom_models (``resnet``, width 16, 2 blocks) on the real MNIST
images of examples/mnist_digits (domain ``mnist``, 8x8), with ticketpack's default recipe for a user model (Adam
1.2e-3, batch 64); (b) the default text model ``fasttext`` on the Amazon reviews in ``../shared/data/mdsd``
(domain ``books``), with its registered recipe (AdamW 0.01, batch 32). Both with a cosine learning-rate schedule
(so that replaying it means something), ``--epochs`` per training run (default the recipes' own 20: about 22 minutes
for both grids on 2 loaded cores; 10 takes about 15) and no early stopping, so that every run walks its whole
schedule.

For each model and seed 0, 1, 2 (the seed also draws the 70/15/15 split): the checkpoint is a dense training with
that recipe (``search`` with ``prune.rounds=0``; its round 0 weights file). Then, for each of ``weight-rewind``
(survivors back to the checkpoint), ``lr-rewind`` (keep the trained weights, replay the schedule from step k =
``--rewind-frac`` of a run's steps) and ``finetune`` (keep the trained weights, train at train.lr/10, ticketpack's
default ``finetune_lr``), a search from that checkpoint (``init_weights``; round 0 evaluates it as it is) with the
model's default strategy (layer-wise for both), 54% pruned per round, 4 rounds: about 46%, 21%, 9.8% and 4.5% of
the prunable weights. All three modes share the checkpoint, split, masks' schedule and per-round seeds, so the
comparisons are paired by seed. Finished searches in ``--work`` are reused. Writes
bench/results/retrain_modes.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
SEEDS = (0, 1, 2)
MODES = ("weight-rewind", "lr-rewind", "finetune")
PAIRS = (("lr-rewind", "finetune"), ("weight-rewind", "finetune"), ("lr-rewind", "weight-rewind"))
RATE, ROUNDS = 0.54, 4  # (1 - 0.54)^r: 46%, 21%, 9.8%, 4.5%


def model_specs(mdsd: Path) -> dict[str, dict]:
    return {
        "resnet": {
            "title": "resnet (examples/custom_models, width 16, 2 blocks) on mnist_digits/mnist",
            "recipe": "Adam 1.2e-3, batch 64 (ticketpack's default recipe for a user model)",
            "config": {"dataset": f"{ROOT / 'examples' / 'mnist_digits' / 'data.py'}:mnist_digits", "source": "mnist",
                       "model": {"name": f"{ROOT / 'examples' / 'custom_models' / 'models.py'}:resnet",
                                 "options": {"width": 16}}},
        },
        "fasttext": {
            "title": "fasttext (the default text model) on mdsd/books",
            "recipe": "AdamW 0.01, batch 32 (fasttext's registered recipe)",
            "config": {"dataset": str(mdsd.resolve()), "source": "books", "model": {"name": "fasttext"}},
            "needs": mdsd / "books.jsonl",
        },
    }


def _search(config: dict, out: str) -> tuple[str, float]:
    """One search (in a pool worker); finished ones are returned as they are."""
    from ticketpack.search import SearchConfig, search

    t0 = time.perf_counter()
    search(SearchConfig.model_validate(config), Path(out), resume=True)
    return out, time.perf_counter() - t0


def _mode_config(base: dict, checkpoint: Path, mode: str, rewind_iter: int) -> dict:
    return {**base, "init_weights": str(checkpoint),
            "prune": {"rounds": ROUNDS, "rate": RATE, "retrain": mode,
                      "rewind_iter": rewind_iter if mode == "lr-rewind" else 0}}


def run_grid(specs: dict[str, dict], args) -> tuple[dict, list[str], dict]:
    """All searches, ``args.jobs`` at a time: each seed's checkpoint, then the three modes from it as soon as it is
    there. Returns {model: {seed: {"checkpoint": dir, mode: dir}}}, the failures, and each job's wall seconds."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    from ticketpack.search import load_manifest
    from ticketpack.training.train import total_steps

    dirs: dict[str, dict[int, dict[str, str]]] = {m: {s: {} for s in SEEDS} for m in specs}
    failures, walls = [], {}
    train = {"epochs": args.epochs, "schedule": "cosine", "patience": None}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        pending = {}
        for name, spec in specs.items():
            for seed in SEEDS:
                base = {**spec["config"], "seed": seed, "threads": args.threads, "train": train}
                out = args.work / name / f"seed{seed}" / "checkpoint"
                cfg = {**base, "prune": {"rounds": 0}}
                pending[pool.submit(_search, cfg, str(out))] = (name, seed, "checkpoint", base)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                name, seed, kind, base = pending.pop(fut)
                try:
                    out, wall = fut.result()
                except Exception as exc:  # noqa: BLE001 - reported, the rest of the grid goes on
                    tb = "".join(traceback.format_exception(exc))
                    failures.append(f"{name} seed {seed} {kind}:\n{tb}")
                    print(f"FAILED {name} seed {seed} {kind}:\n{tb}", file=sys.stderr)
                    continue
                dirs[name][seed][kind] = out
                walls[f"{name}/seed{seed}/{kind}"] = round(wall, 1)
                print(f"{time.strftime('%H:%M:%S')} done {name} seed {seed} {kind} ({wall:.0f} s)", file=sys.stderr)
                if kind != "checkpoint":
                    continue
                m = load_manifest(Path(out))
                checkpoint = Path(out) / m.rounds[0].weights_file.path
                k = max(1, round(args.rewind_frac * total_steps(m.config.train, m.dataset.split_sizes["train"])))
                for mode in MODES:
                    mode_out = args.work / name / f"seed{seed}" / mode
                    fut2 = pool.submit(_search, _mode_config(base, checkpoint, mode, k), str(mode_out))
                    pending[fut2] = (name, seed, mode, base)
    return dirs, failures, walls


def summarize(name: str, spec: dict, seed_dirs: dict[int, dict[str, str]]) -> dict:
    """Per round and mode: test accuracy over seeds, paired differences, cumulative training cost."""
    from ticketpack.core.stats import binomial_se
    from ticketpack.search import load_manifest
    from ticketpack.transfer.report import paired_difference

    seeds = [s for s in SEEDS if all(k in seed_dirs[s] for k in ("checkpoint", *MODES))]
    if not seeds:
        return {"model": name, "seeds": [], "note": "no seed finished"}
    ckpt = {s: load_manifest(Path(seed_dirs[s]["checkpoint"])) for s in seeds}
    runs = {(s, mode): load_manifest(Path(seed_dirs[s][mode])) for s in seeds for mode in MODES}
    per_seed = []
    for s in seeds:
        c = ckpt[s].rounds[0]
        row = {"seed": s, "test_n": ckpt[s].dataset.split_sizes["test"], "train_n": ckpt[s].dataset.split_sizes["train"],
               "checkpoint": {"test_accuracy": c.test_accuracy, "val_accuracy": c.val_accuracy, "seconds": c.seconds,
                              "iterations": c.iterations}, "modes": {}}
        for mode in MODES:
            m = runs[(s, mode)]
            row["modes"][mode] = {"rewind_iter": m.config.prune.rewind_iter,
                                  "finetune_lr": ((m.config.prune.finetune_lr or m.config.train.lr / 10)
                                                  if mode == "finetune" else None),
                                  "rounds": [{"round": r.round, "weights_remaining": r.weights_remaining,
                                              "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy,
                                              "seconds": r.seconds, "iterations": r.iterations} for r in m.rounds]}
            # round 0 of a search from a checkpoint evaluates it as it is: the checkpoint's own accuracy again
            row["modes"][mode]["round0_matches_checkpoint"] = abs(m.rounds[0].test_accuracy - c.test_accuracy) < 1e-9
        per_seed.append(row)

    def rounds_of(row, mode):
        return {r["round"]: r for r in row["modes"][mode]["rounds"]}

    levels, paired = [], []
    for r in range(1, ROUNDS + 1):
        cells = {}
        for mode in MODES:
            accs = [rounds_of(row, mode)[r]["test_accuracy"] for row in per_seed]
            cum_s = [sum(x["seconds"] for q, x in rounds_of(row, mode).items() if 1 <= q <= r) for row in per_seed]
            cum_it = [sum(x["iterations"] for q, x in rounds_of(row, mode).items() if 1 <= q <= r) for row in per_seed]
            cells[mode] = {"test_mean": statistics.fmean(accs), "test_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                           "test": accs, "cum_seconds_mean": statistics.fmean(cum_s),
                           "cum_iterations_mean": statistics.fmean(cum_it)}
        wr = statistics.fmean(rounds_of(row, "finetune")[r]["weights_remaining"] for row in per_seed)
        diffs = {}
        for ref, other in PAIRS:
            pairs = [(rounds_of(row, ref)[r]["test_accuracy"], rounds_of(row, other)[r]["test_accuracy"]) for row in per_seed]
            # resolvable None: every seed draws its own split, so the spread over seeds already holds the test
            # split's sampling noise of the difference; resolved = the 95% interval over seeds excludes 0
            p = paired_difference(r, wr, ref, other, pairs, None)
            diffs[f"{ref} - {other}"] = p.model_dump()
            paired.append(p)
        levels.append({"round": r, "weights_remaining": wr, "cells": cells, "paired": diffs})
    ck_acc = [row["checkpoint"]["test_accuracy"] for row in per_seed]
    test_n = per_seed[0]["test_n"]
    return {"model": name, "title": spec["title"], "recipe": spec["recipe"], "seeds": seeds, "test_n": test_n,
            "checkpoint_test_mean": statistics.fmean(ck_acc),
            "checkpoint_test_std": statistics.stdev(ck_acc) if len(ck_acc) > 1 else 0.0,
            "checkpoint_seconds_mean": statistics.fmean(row["checkpoint"]["seconds"] for row in per_seed),
            "checkpoint_iterations": per_seed[0]["checkpoint"]["iterations"],
            "test_se": binomial_se(statistics.fmean(ck_acc), test_n),
            "rewind_iter": per_seed[0]["modes"]["lr-rewind"]["rewind_iter"],
            "finetune_lr": per_seed[0]["modes"]["finetune"]["finetune_lr"],
            "levels": levels, "per_seed": per_seed}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def verdict(level: dict) -> str:
    """The mode with the best mean, and which of its differences are resolved (95% interval over seeds excludes 0)."""
    cells = level["cells"]
    best = max(MODES, key=lambda m: cells[m]["test_mean"])
    resolved = []
    for p in level["paired"].values():
        if p["low"] is not None and (p["low"] > 0 or p["high"] < 0):
            winner, loser = (p["reference"], p["other"]) if p["mean"] > 0 else (p["other"], p["reference"])
            resolved.append(f"{winner} > {loser}")
    return f"best mean: {best}; resolved: {', '.join(resolved) if resolved else 'none'}"


def model_section(s: dict) -> list[str]:
    from ticketpack.transfer.records import PairedDifference
    from ticketpack.transfer.report import fmt_interval

    if not s.get("seeds"):
        return [f"### {s['model']}\n", s.get("note", "no results"), ""]
    lines = [
        f"### {s['title']}\n",
        f"Recipe: {s['recipe']}, cosine schedule, {s['checkpoint_iterations']} steps per training run. Checkpoint "
        f"(dense, trained with that recipe): test accuracy {_pct(s['checkpoint_test_mean'])} ± "
        f"{_pct(s['checkpoint_test_std'])} over seeds {', '.join(map(str, s['seeds']))}, trained in "
        f"{s['checkpoint_seconds_mean']:.1f} s. lr-rewind replays the schedule from step k = {s['rewind_iter']}; "
        f"finetune trains at {s['finetune_lr']:g}. Test split: {s['test_n']} examples (one accuracy's standard error "
        f"about {_pct(s['test_se'])} points).\n",
        "Test accuracy in %, mean ± std over seeds; differences in points, mean [95% interval over seeds], "
        "paired by seed (* the interval excludes 0):\n",
        "| round | weights | weight-rewind | lr-rewind | finetune | lr-rewind − finetune | weight-rewind − finetune "
        "| lr-rewind − weight-rewind |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lv in s["levels"]:
        c = lv["cells"]
        accs = [f"{_pct(c[m]['test_mean'])} ± {_pct(c[m]['test_std'])}" for m in MODES]
        diffs = []
        for ref, other in PAIRS:
            p = PairedDifference.model_validate(lv["paired"][f"{ref} - {other}"])
            diffs.append(fmt_interval(p) + (" *" if p.resolved else ""))
        lines.append(f"| {lv['round']} | {_pct(lv['weights_remaining'])}% | " + " | ".join(accs + diffs) + " |")
    lines += ["", "Training cost to reach each round (rounds 1..r, after the checkpoint), mean over seeds: seconds "
              "(steps):", "",
              "| round | weights | weight-rewind | lr-rewind | finetune |", "| ---: | ---: | ---: | ---: | ---: |"]
    for lv in s["levels"]:
        c = lv["cells"]
        lines.append(f"| {lv['round']} | {_pct(lv['weights_remaining'])}% | " + " | ".join(
            f"{c[m]['cum_seconds_mean']:.1f} s ({c[m]['cum_iterations_mean']:.0f})" for m in MODES) + " |")
    lines += ["", "| round | weights | verdict |", "| ---: | ---: | --- |"]
    for lv in s["levels"]:
        lines.append(f"| {lv['round']} | {_pct(lv['weights_remaining'])}% | {verdict(lv)} |")
    lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mdsd", help="The review data.")
    ap.add_argument("--work", type=Path, default=None, help="Where the searches go (finished ones are reused; "
                    "default: a directory per --epochs under the temp dir).")
    ap.add_argument("--models", default="resnet,fasttext", help="Comma-separated: resnet, fasttext.")
    ap.add_argument("--jobs", type=int, default=2, help="Searches at a time.")
    ap.add_argument("--threads", type=int, default=1, help="Torch threads per search.")
    ap.add_argument("--epochs", type=int, default=20, help="Epochs per training run (the recipes' own 20; 10 halves the time).")
    ap.add_argument("--rewind-frac", type=float, default=0.05,
                    help="lr-rewind: replay the schedule from this fraction of a run's steps.")
    args = ap.parse_args()
    args.work = args.work or Path(tempfile.gettempdir()) / f"ticketpack-retrain-modes-e{args.epochs}"
    specs = model_specs(args.data)
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in specs]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; known: {', '.join(specs)}")
    specs = {m: specs[m] for m in wanted}
    skipped = {}
    for name, spec in list(specs.items()):
        if "needs" in spec and not spec["needs"].exists():
            skipped[name] = f"{spec['needs']} not found (the review data; --data)"
            print(f"skipping {name}: {skipped[name]}", file=sys.stderr)
            del specs[name]

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    dirs, failures, walls = run_grid(specs, args) if specs else ({}, [], {})
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    summaries = [summarize(name, spec, dirs[name]) for name, spec in specs.items()]

    command = "python bench/retrain_modes.py" + "".join(
        f" --{k} {v}" for k, v in (("models", args.models), ("jobs", args.jobs), ("threads", args.threads),
                                   ("epochs", args.epochs), ("rewind-frac", args.rewind_frac))
        if str(v) != str(ap.get_default(k.replace("-", "_"))))
    length_note = ("(the recipes' own length)" if args.epochs == 20 else
                   "(the recipes say 20; shortened to keep both grids well inside 30 minutes)" if args.epochs < 20 else
                   "(the recipes say 20)")
    lines = [
        "# Retraining after pruning: weight-rewind, lr-rewind or finetune, from a trained checkpoint\n",
        f"Written by `{command}` in {wall / 60:.1f} minutes: {args.jobs} searches at a time, {args.threads} torch "
        f"thread each, on {os.cpu_count()} cores shared with other work (load average "
        f"{load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f} at the start, "
        f"{load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f} at the end), so the seconds are relative "
        "costs under that load, not speeds. Each model and seed (0, 1, 2; the seed also draws the split): a dense "
        f"checkpoint trained with the model's recipe under a cosine schedule for {args.epochs} epochs "
        f"{length_note} without early stopping; then a search from it with "
        f"each `--retrain` mode, layer-wise magnitude pruning of {RATE:.0%} per round (the output layer half that), "
        f"{ROUNDS} rounds, each round trained with the same recipe: weight-rewind rewinds the survivors to the "
        f"checkpoint and replays the whole schedule, lr-rewind keeps the last round's weights and replays it from "
        f"step k = {args.rewind_frac:.0%} of a run's steps, finetune keeps them and trains the same number of steps "
        "at train.lr/10. Each round keeps the best-validation weights of its run.\n",
    ]
    for name, why in skipped.items():
        lines.append(f"**{name} skipped**: {why}.\n")
    for s in summaries:
        lines += model_section(s)
    if failures:
        lines += ["## Failures\n", "```", *[f.rstrip() for f in failures], "```", ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retrain_modes.md").write_text("\n".join(lines).rstrip() + "\n")
    (RESULTS / "retrain_modes.json").write_text(json.dumps(
        {"command": command, "wall_seconds": round(wall, 1), "jobs": args.jobs, "threads": args.threads,
         "cpu_count": os.cpu_count(), "loadavg_start": load_before, "loadavg_end": load_after,
         "epochs": args.epochs, "rewind_frac": args.rewind_frac, "rate": RATE, "rounds": ROUNDS, "seeds": SEEDS,
         "skipped": skipped, "failures": failures, "job_wall_seconds": walls, "models": summaries},
        indent=2) + "\n")
    print("\n".join(lines))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
