"""`ticketpack transfer`: parse flags → TransferConfig → ticketpack.transfer.run_transfer → table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ticketpack.cli.common import AllowChangedModelOpt, ConfigOpt, JsonOpt, SeedOpt, ThreadsOpt, err, out, print_json
from ticketpack.cli.report import print_outputs, transfer_table
from ticketpack.config_files import build_config


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def transfer_cmd(
    ticket: Annotated[Optional[Path], typer.Argument(help="Ticket directory (from `ticketpack search`).")] = None,
    target: Annotated[Optional[str], typer.Option(help="Target domain to re-train in (e.g. rot45, electronics).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to write.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset of the target domain (default: the ticket's).")] = None,
    init: Annotated[Optional[str], typer.Option(
        help="Comma-separated strategies: ticket, random-reinit, finetune, random-mask, dense, target-ticket.")] = None,
    levels: Annotated[Optional[str], typer.Option(
        help="Comma-separated ticket rounds or weights-remaining levels (3,20%); default: every pruned round.")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per level and strategy (default 3).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs per job (default: the ticket's).")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Training steps per job (instead of --epochs).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: the ticket's).")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="sgd, adam or adamw (default: the ticket's).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (default: the ticket's).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Jobs run at the same time.")] = 1,
    executor: Annotated[str, typer.Option(help="local (processes on this machine) or ray.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        help="Ray cluster address for --executor ray (default: start a local Ray instance).")] = None,
    ray_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds to wait for the Ray cluster at --ray-address before giving up.")] = 30.0,
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    config: ConfigOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out, skipping finished jobs.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing run in --out.")] = False,
    allow_changed_model: AllowChangedModelOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-train a ticket on a target domain under several initializations, against dense and random baselines."""
    from ticketpack.errors import TicketpackError
    from ticketpack.transfer import TransferConfig, TransferEvent, run_transfer

    if out_dir is None:
        raise TicketpackError("--out is required: the run directory to write")
    from ticketpack.fileio import check_creatable_dir

    check_creatable_dir(out_dir)  # before the ticket and data load
    level_list = _csv(levels)
    cfg = build_config(
        TransferConfig,
        config,
        {
            "ticket": str(ticket) if ticket is not None else None, "target": target, "dataset": dataset,
            "inits": _csv(init), "levels": [int(x) if x.isdigit() else x for x in level_list] if level_list else None,
            "seeds": seeds, "seed": seed, "threads": threads, "train.epochs": epochs, "train.iterations": iterations,
            "train.lr": lr, "train.optimizer": optimizer, "train.batch_size": batch_size,
            "allow_changed_model": allow_changed_model or None,
        },
    )
    with Progress(
        TextColumn("[bold]jobs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), console=err, transient=True,
    ) as progress:
        task = progress.add_task("jobs", total=None, info="")

        def on_event(ev: TransferEvent) -> None:
            if ev.kind == "planned":
                progress.update(task, total=ev.total, completed=ev.done,
                                info=f"{ev.done} already done" if ev.done else "")
            elif ev.kind == "job_end":
                r = ev.result
                info = ev.job.job_id + (f": target test {r.target_test_accuracy:.3f}" if r else " done")
                progress.update(task, completed=ev.done, info=info)
                if not err.is_terminal:  # no live bar without a terminal: one plain line per finished job
                    took = f" ({r.seconds:.1f}s)" if r else ""
                    err.print(f"job {ev.done}/{ev.total} {info}{took}", highlight=False, markup=False)

        report = run_transfer(cfg, out_dir, resume=resume, force=force, jobs=jobs, executor=executor,
                              ray_address=ray_address, ray_timeout_s=ray_timeout, on_event=on_event)
    if json_out:
        print_json(report)
        return
    out.print(transfer_table(report))
    print_outputs(out_dir)
