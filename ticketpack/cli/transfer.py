"""`ticketpack transfer`: flags and --config → TransferConfig → ticketpack.transfer.run_transfer → table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, Self

import typer
from rich.console import Console
from rich.progress import TextColumn

from ticketpack.cli.common import JsonOpt, comma_list, err, print_json
from ticketpack.cli.flags import TRAIN_FLAGS, ConfigFlags, Flag
from ticketpack.cli.progress import Heartbeat, Ticker, bar, duration, eta
from ticketpack.cli.report import print_outputs, print_report

if TYPE_CHECKING:
    from ticketpack.transfer import TransferConfig, TransferEvent


def _levels(text: str) -> list[int | str]:
    return [int(x) if x.isdigit() else x for x in comma_list(text)]


FLAGS = ConfigFlags(
    "ticketpack.transfer.config:TransferConfig",
    Flag("ticket", "ticket", argument=True),
    Flag("--target", "target"),
    Flag("--dataset", "dataset"),
    Flag("--init", "inits", parse=comma_list, metavar="A,B,.."),
    Flag("--levels", "levels", parse=_levels, metavar="3,20%,.."),
    Flag("--seeds", "seeds", int),
    Flag("--target-ticket", "target_ticket", metavar="<path>"),
    *TRAIN_FLAGS,
    Flag("--keep-weights/--no-keep-weights", "keep_weights", bool),
    Flag("--allow-changed-model", "allow_changed_model", bool),
    default_notes={"train.": "the ticket's"},  # TrainOverrides: unset keeps the ticket's recipe
)


@FLAGS.command
def transfer_cmd(
    cfg: TransferConfig,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to write.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Jobs run at the same time.")] = 1,
    executor: Annotated[str, typer.Option(help="local (processes on this machine) or ray.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        help="Ray cluster address for --executor ray: HOST:PORT, ray://HOST:PORT or auto (default: start a local "
        "Ray instance).")] = None,
    ray_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds to wait for the Ray cluster at --ray-address before giving up (a refused connection "
        "fails at once).")] = 30.0,
    gpus_per_job: Annotated[float, typer.Option(
        min=0.0, help="--executor ray: GPUs per job (0.5 puts two jobs on a GPU). Local workers spread over the "
        "visible GPUs by themselves.")] = 0.0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out, skipping finished jobs.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing run in --out.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-train a ticket on a target domain under several initializations, against dense and random baselines."""
    from ticketpack.core.errors import TicketpackError
    from ticketpack.core.fileio import check_creatable_dir, check_resumable
    from ticketpack.transfer import run_transfer

    if out_dir is None:
        raise TicketpackError("--out is required: the run directory to write")
    check_resumable(out_dir, resume)
    check_creatable_dir(out_dir)  # before the ticket and data load
    with TransferProgress() as on_event:
        report = run_transfer(cfg, out_dir, resume=resume, force=force, jobs=jobs, executor=executor,
                              ray_address=ray_address, ray_timeout_s=ray_timeout, gpus_per_job=gpus_per_job,
                              on_event=on_event)
    if json_out:
        print_json(report)
        return
    print_report(report)
    print_outputs(out_dir)


class TransferProgress:
    """A transfer run's progress on ``console``: on a terminal, a bar of the jobs with an ETA; without one, a plain
    line per finished job and, while jobs train, one every few seconds (jobs done, elapsed, ETA at the rate of the
    jobs this invocation finished). Used as ``with TransferProgress() as on_event``."""

    def __init__(self, console: Console = err, ticker: Ticker | None = None) -> None:
        self.console = console
        self.ticker = ticker or Ticker(console)
        self.began = self.jobs_began = self.ticker.clock()
        self.done = self.done_before = 0
        self.total: int | None = None
        self.progress = None
        self._scope = None

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self.progress = bar(self.console, TextColumn("[bold]jobs"))
            self._scope = self.progress
            self.task = self.progress.add_task("jobs", total=None, info="")
        else:
            self._scope = Heartbeat(self.ticker, self.line)
        self._scope.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._scope.__exit__(*exc)

    def __call__(self, ev: TransferEvent) -> None:
        if ev.kind == "planned":
            self.done = self.done_before = ev.done
            self.total, self.jobs_began = ev.total, self.ticker.clock()
            if self.progress is not None:
                self.progress.update(self.task, total=ev.total, completed=ev.done,
                                     info=f"{ev.done} already done" if ev.done else "")
        elif ev.kind == "job_end":
            self.done = ev.done
            r = ev.result
            info = ev.job.job_id + (f": target test {r.target_test_accuracy:.3f}" if r else " done")
            if self.progress is not None:
                self.progress.update(self.task, completed=ev.done, info=info)
            else:  # no live bar without a terminal: one plain line per finished job
                took = f" ({r.seconds:.1f}s)" if r else ""
                self.ticker.print(f"job {ev.done}/{ev.total} {info}{took} · {self._timing()}")

    def _timing(self) -> str:
        """``1m05s elapsed · ETA 4m20s``: the ETA at the rate of the jobs finished since they started."""
        now, total = self.ticker.clock(), self.total or 0
        left = eta(now - self.jobs_began, self.done - self.done_before, total - self.done_before)
        return f"{duration(now - self.began)} elapsed · {left}"

    def line(self) -> str | None:
        """``jobs 3/18 done · 1m05s elapsed · ETA 4m20s``; None before the jobs start (inputs are still checked)."""
        if self.total is None:
            return None
        return f"jobs {self.done}/{self.total} done · {self._timing()}"
