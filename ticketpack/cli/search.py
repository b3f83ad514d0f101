"""`ticketpack search`: parse flags → SearchConfig → ticketpack.search → table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ticketpack.cli.common import ConfigOpt, JsonOpt, SeedOpt, ThreadsOpt, err, json_options, out, pct, print_json
from ticketpack.config_files import build_config


def search_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Ticket directory to write.")],
    dataset: Annotated[Optional[str], typer.Option(help="Dataset: 'digits' or a directory of <domain>.jsonl/.csv files.")] = None,
    source: Annotated[Optional[str], typer.Option(help="Source domain to find the ticket in (digits: clean, rot45, ...).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model: a registry name (lenet-300-100, convnet, bow, textcnn, fasttext; default: lenet-300-100 for "
        "images, fasttext for text), path/to/file.py:factory or package.module:factory. A factory is your own code "
        "and runs when the model is built.")] = None,
    model_options: Annotated[Optional[str], typer.Option(help="JSON object of keyword options for the model factory, e.g. '{\"width\": 16}'.")] = None,
    prune_include: Annotated[Optional[list[str]], typer.Option(help="Glob over parameter names: prune only matching weights (repeatable).")] = None,
    prune_exclude: Annotated[Optional[list[str]], typer.Option(help="Glob over parameter names: never prune matching weights (repeatable).")] = None,
    output_layer: Annotated[Optional[str], typer.Option(help="Module name of the output layer (default: detected from the model's output).")] = None,
    rounds: Annotated[Optional[int], typer.Option(help="Pruning rounds after the dense round 0.")] = None,
    prune_rate: Annotated[Optional[float], typer.Option(help="Fraction of remaining weights pruned per round.")] = None,
    output_prune_rate: Annotated[Optional[float], typer.Option(help="Rate for the output layer (default: half of --prune-rate).")] = None,
    target_sparsity: Annotated[Optional[float], typer.Option(help="Prune until this sparsity (0-1) instead of --rounds.")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="Pruning strategy: global, layerwise, random (default: global; layerwise for text models and your own).")] = None,
    granularity: Annotated[Optional[str], typer.Option(help="Prune single weights (weight) or whole units, channels and attention heads (neuron), which export compacts.")] = None,
    rewind_iter: Annotated[Optional[int], typer.Option(help="Rewind to the weights after this many steps (0: θ0).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs per round.")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Training steps per round (instead of --epochs).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="sgd, adam or adamw.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
    seed: SeedOpt = None,
    threads: ThreadsOpt = None,
    config: ConfigOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted search in --out.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing ticket in --out.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Find a lottery ticket by iterative magnitude pruning with rewinding on a source domain."""
    from ticketpack.fileio import check_creatable_dir
    from ticketpack.search import SearchConfig, SearchEvent, search

    check_creatable_dir(out_dir)  # before any data loads
    cfg = build_config(
        SearchConfig,
        config,
        {
            "dataset": dataset, "source": source, "model.name": model, "seed": seed, "threads": threads,
            "model.options": json_options(model_options, "--model-options"), "prune.include": prune_include or None,
            "prune.exclude": prune_exclude or None, "prune.output_layer": output_layer,
            "prune.rounds": rounds, "prune.rate": prune_rate, "prune.output_rate": output_prune_rate,
            "prune.target_sparsity": target_sparsity, "prune.strategy": strategy, "prune.granularity": granularity, "prune.rewind_iter": rewind_iter,
            "train.epochs": epochs, "train.iterations": iterations, "train.lr": lr, "train.optimizer": optimizer,
            "train.batch_size": batch_size,
        },
    )
    from ticketpack.cli.common import check_domain

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
    table = Table(title=f"ticket {out_dir} ({cfg.model.name} on {cfg.dataset}/{cfg.source}, seed {cfg.seed})")
    for col in ("round", "weights remaining", "val acc", "test acc", "best step"):
        table.add_column(col, justify="right")
    for rec in manifest.rounds:
        table.add_row(str(rec.round), pct(rec.weights_remaining), f"{rec.val_accuracy:.3f}",
                      f"{rec.test_accuracy:.3f}", str(rec.best_iteration))
    out.print(table)
