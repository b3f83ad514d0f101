"""`ticketpack search`: flags and --config → SearchConfig → ticketpack.search → table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ticketpack.cli.common import JsonOpt, check_domain, err, json_object, out, pct, print_json
from ticketpack.cli.flags import TRAIN_FLAGS, ConfigFlags, Flag

if TYPE_CHECKING:
    from ticketpack.search import SearchConfig

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
    show_defaults=False,  # the model's training recipe and pruning strategy replace the plain defaults
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
    from ticketpack.fileio import check_creatable_dir, check_resumable
    from ticketpack.search import SearchEvent, search

    check_resumable(out_dir, resume)
    check_creatable_dir(out_dir)  # before any data loads
    check_domain(cfg.dataset, cfg.source)  # before --force deletes anything
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), console=err, transient=True,
    ) as progress:
        rounds_task = progress.add_task("rounds", total=cfg.prune.planned_rounds + 1, info="")
        steps_task = progress.add_task("training", total=1, info="")

        def on_event(ev: SearchEvent) -> None:
            if ev.kind == "round_start":
                progress.reset(steps_task, total=1, info="")
                progress.update(rounds_task, info=f"round {ev.round}/{ev.rounds}")
            elif ev.kind == "step":
                info = f"val acc {ev.val_accuracy:.3f}" if ev.val_accuracy is not None else ""
                progress.update(steps_task, total=ev.steps, completed=ev.step, info=info)
            elif ev.kind == "round_end":
                progress.advance(rounds_task)
                rec = ev.record
                err.print(
                    f"round {rec.round}: {pct(rec.weights_remaining)} weights remaining, "
                    f"val {rec.val_accuracy:.3f}, test {rec.test_accuracy:.3f} ({rec.seconds:.1f}s)"
                )

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
    from ticketpack.stats import binomial_se

    return f"{binomial_se(accuracy, n):.3f}" if n else "?"
