"""Desai, Zhan & Aly (2019) on real reviews: a ticket found in books, transferred to dvd and electronics.

    python examples/desai2019/run.py [--config examples/desai2019/config.toml] [--work runs/desai2019] [--jobs 2]

1. `ticketpack search` on the source category (config [search]).
2. `ticketpack transfer` of that ticket to each target category with every strategy, levels and seeds
   (config [transfer]), `--jobs` processes at a time.
3. Copies each run's report.json, results.csv, accuracy_vs_sparsity.png and a markdown table into
   results/<source>-<target>/ beside this script, and writes results/summary.md (weights stay in --work).

Killed? Run it again: the search and every finished transfer job are reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ticketpack.config_files import read_mapping
from ticketpack.search import SearchConfig, Ticket, search
from ticketpack.transfer import TransferConfig, TransferRun, markdown_table, run_transfer
from ticketpack.transfer import layout
from ticketpack.transfer.report import fmt_pct

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=HERE / "config.toml")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "desai2019", help="Tickets and runs (large).")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args()

    started = time.perf_counter()
    raw = read_mapping(args.config)
    search_cfg = dict(raw["search"])
    if not Path(search_cfg["dataset"]).is_absolute():
        search_cfg["dataset"] = str((ROOT / search_cfg["dataset"]).resolve())
    cfg = SearchConfig.model_validate(search_cfg)
    ticket_dir = args.work / f"ticket-{cfg.source}"
    print(f"search: {cfg.model.name} on {cfg.source}, {cfg.prune.rounds} rounds at rate {cfg.prune.rate}", flush=True)
    t0 = time.perf_counter()
    search(cfg, ticket_dir, resume=True)
    search_seconds = time.perf_counter() - t0
    ticket = Ticket.load(ticket_dir)

    summary = [f"# Results: {cfg.model.name} ticket from `{cfg.source}`, transferred\n"]
    summary.append("Source-domain ticket (`ticketpack search`, one seed; test accuracy on the source's test split):\n")
    summary.append("| round | weights remaining | source val | source test |\n| ---: | ---: | ---: | ---: |")
    for rec in ticket.manifest.rounds:
        summary.append(f"| {rec.round} | {100 * rec.weights_remaining:.1f}% | {100 * rec.val_accuracy:.1f} "
                       f"| {100 * rec.test_accuracy:.1f} |")
    timings = {"search": round(search_seconds, 1)}
    for target in raw["targets"]:
        tcfg = TransferConfig.model_validate({**raw["transfer"], "ticket": str(ticket_dir), "target": target})
        run_dir = args.work / f"{cfg.source}-{target}"
        print(f"transfer: {cfg.source} → {target}", flush=True)
        t0 = time.perf_counter()
        report = run_transfer(tcfg, run_dir, resume=True, jobs=args.jobs,
                              on_event=lambda ev: print(f"  {ev.done}/{ev.total} {ev.job.job_id}", flush=True)
                              if ev.kind == "job_end" else None)
        timings[target] = round(time.perf_counter() - t0, 1)
        dest = args.results / f"{cfg.source}-{target}"
        dest.mkdir(parents=True, exist_ok=True)
        for src in (layout.report(run_dir), layout.results_csv(run_dir), layout.plot(run_dir)):
            shutil.copy2(src, dest / src.name)
        table = markdown_table(report)
        (dest / "table.md").write_text(table)
        summary.append(f"\n## {cfg.source} → {target}: test accuracy on {target} (%), mean ± std over "
                       f"{len(report.seeds)} seeds\n\n![{target}]({dest.name}/accuracy_vs_sparsity.png)\n\n{table}")
        sizes = {d: len(TransferRun.load(run_dir).ticket.load_data(d).test) for d in (cfg.source, target)}
        summary.append(f"Test splits: {sizes[target]} {target} reviews, {sizes[cfg.source]} {cfg.source} reviews "
                       f"(one binomial standard error at 75%: {100 * (0.75 * 0.25 / sizes[target]) ** 0.5:.1f} points "
                       f"on {target}).\n")
        summary.append(f"The same models on the {cfg.source} test split (%):\n")
        inits = [i for i in report.inits if i != "dense"]
        summary.append("| level | " + " | ".join(inits) + " |\n| ---: |" + " ---: |" * len(inits))
        for level in report.levels:
            row = {c.init: c for c in report.cells if c.level == level}
            summary.append(f"| {level} | " + " | ".join(
                fmt_pct(row[i].source_test_mean, row[i].source_test_std) if i in row else "" for i in inits) + " |")
        if report.dense:
            summary.append(f"\ndense: {fmt_pct(report.dense.source_test_mean, report.dense.source_test_std)}")
        print(table, flush=True)
    timings["total"] = round(time.perf_counter() - started, 1)
    summary.append(f"\nWall time (s), `--jobs {args.jobs}`: {json.dumps(timings)}\n")
    (args.results / "summary.md").write_text("\n".join(summary) + "\n")
    (args.results / "timings.json").write_text(json.dumps({"jobs": args.jobs, "seconds": timings}, indent=2) + "\n")
    print(f"wrote {args.results}; total {timings['total']} s")


if __name__ == "__main__":
    main()
