"""`ticketpack search`: flags and --config → SearchConfig → ticketpack.search → table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Self

import typer
from rich.console import Console
from rich.progress import TextColumn
from rich.table import Table

from ticketpack.cli.common import (
    JsonOpt,
    check_domain,
    err,
    json_object,
    out,
    pct,
    print_json,
)
from ticketpack.cli.flags import TRAIN_FLAGS, ConfigFlags, Flag
from ticketpack.cli.progress import Ticker, bar, duration, eta

if TYPE_CHECKING:
    from ticketpack.search import SearchConfig, SearchEvent

FLAGS = ConfigFlags(
    "ticketpack.search.config:SearchConfig",
    Flag("--dataset", "dataset"),
    Flag("--source", "source"),
    Flag("--model", "model.name"),
    Flag("--model-options", "model.options", parse=json_object, metavar="JSON"),
    Flag("--preprocessing", "preprocessing", parse=json_object, metavar="JSON"),
    Flag("--prune-include", "prune.include", list[str]),
    Flag("--prune-exclude", "prune.exclude", list[str]),
    Flag("--output-layer", "prune.output_layer"),
    Flag("--rounds", "prune.rounds", int),
    Flag("--prune-rate", "prune.rate", float),
    Flag("--output-prune-rate", "prune.output_rate", float),
    Flag("--target-sparsity", "prune.target_sparsity", float),
    Flag("--strategy", "prune.strategy"),
    Flag("--granularity", "prune.granularity"),
    Flag("--rewind-iter", "prune.rewind_iter", int),
    Flag("--retrain", "prune.retrain"),
    Flag("--finetune-lr", "prune.finetune_lr", float),
    Flag("--init-weights", "init_weights", metavar="<path>"),
    Flag("--train-dense/--no-train-dense", "train_dense", bool),
    *TRAIN_FLAGS,
    default_notes={"train.": "{}, or the model's recipe"},  # a model's recipe (fasttext's) replaces TrainConfig's
)


@FLAGS.command
def search_cmd(
    cfg: SearchConfig,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Ticket directory to write.")],
    resume: Annotated[bool, typer.Option(help="Continue an interrupted search in --out.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing ticket in --out.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Find a lottery ticket by iterative magnitude pruning with rewinding on a source domain."""
    from ticketpack.core.fileio import check_creatable_dir, check_resumable
    from ticketpack.search import search

    check_resumable(out_dir, resume)
    check_creatable_dir(out_dir)  # before any data loads
    check_domain(cfg.dataset, cfg.source)  # before --force deletes anything
    with SearchProgress(cfg.prune.planned_rounds + 1) as on_event:
        manifest = search(cfg, out_dir, resume=resume, force=force, on_event=on_event)
    if json_out:
        print_json(manifest)
        return
    table = Table(title=f"ticket {out_dir} ({manifest.config.model.name} on {cfg.dataset}/{cfg.source}, seed {cfg.seed})")
    n_test = manifest.dataset.split_sizes.get("test")
    for col in ("round", "weights remaining", "val acc", "test acc ± SE", "best step"):
        table.add_column(col, justify="right")
    for rec in manifest.rounds:
        table.add_row(str(rec.round), pct(rec.weights_remaining), f"{rec.val_accuracy:.3f}",
                      f"{rec.test_accuracy:.3f} ± {_se(rec.test_accuracy, n_test)}", str(rec.best_iteration))
    out.print(table)


def _se(accuracy: float, n: int | None) -> str:
    """Binomial standard error of an accuracy on ``n`` examples: the test split's own noise."""
    from ticketpack.core.stats import binomial_se

    return f"{binomial_se(accuracy, n):.3f}" if n else "?"


class SearchProgress:
    """A search's progress on ``console``: on a terminal, bars of the rounds and of the round's training steps, each
    with an ETA; without one, a plain line every few seconds inside a round (round, epoch, step/total, elapsed,
    ETA of the round). Either way, one line per finished round. Used as ``with SearchProgress(n) as on_event``."""

    def __init__(self, rounds: int, console: Console = err, ticker: Ticker | None = None) -> None:
        self.rounds, self.console = rounds, console
        self.live = console.is_terminal
        self.ticker = ticker or Ticker(console)
        self.round_began = self.ticker.clock()
        self.val: float | None = None
        self.progress = None

    def __enter__(self) -> Self:
        if self.live:
            self.progress = bar(self.console, TextColumn("[bold]{task.description}"))
            self.progress.__enter__()
            self.rounds_task = self.progress.add_task("rounds", total=self.rounds, info="")
            self.steps_task = self.progress.add_task("training", total=1, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, ev: SearchEvent) -> None:
        if ev.kind == "dense_layers":
            self.console.print(ev.message, markup=False, highlight=False, soft_wrap=True)
        elif ev.kind == "round_start":
            self.round_began, self.val = self.ticker.clock(), None
            if self.progress is not None:
                self.progress.reset(self.steps_task, total=1, info="")
                self.progress.update(self.rounds_task, info=f"round {ev.round}/{ev.rounds}")
        elif ev.kind == "step":
            if ev.val_accuracy is not None:
                self.val = ev.val_accuracy
            if self.progress is not None:
                info = f"epoch {ev.epoch}/{ev.epochs}" + (f", val acc {self.val:.3f}" if self.val is not None else "")
                self.progress.update(self.steps_task, total=ev.steps, completed=ev.step, info=info)
            elif self.ticker.due():
                self.ticker.print(self.line(ev))
        elif ev.kind == "round_end":
            if self.progress is not None:
                self.progress.advance(self.rounds_task)
            rec = ev.record
            self.console.print(
                f"round {rec.round}: {pct(rec.weights_remaining)} weights remaining, "
                f"val {rec.val_accuracy:.3f}, test {rec.test_accuracy:.3f} ({rec.seconds:.1f}s)"
            )
            self.ticker.last = self.ticker.clock()

    def line(self, ev: SearchEvent) -> str:
        """``round 2/5 · epoch 3/10 · step 1200/4000 · 35s elapsed · ETA 1m20s (this round) · val acc 0.912``."""
        elapsed = self.ticker.clock() - self.round_began
        val = f" · val acc {self.val:.3f}" if self.val is not None else ""
        return (f"round {ev.round}/{ev.rounds} · epoch {ev.epoch}/{ev.epochs} · step {ev.step}/{ev.steps} · "
                f"{duration(elapsed)} elapsed · {eta(elapsed, ev.step, ev.steps)} (this round){val}")
