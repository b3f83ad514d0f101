"""Iterative magnitude pruning with rewinding: train → prune → rewind survivors to θk → repeat.

Every round is written (atomically) as soon as it finishes and the manifest is rewritten after it, so a killed
search resumes from its last finished round. Each round is seeded from (seed, round) alone, which makes a
resumed search produce exactly the ticket an uninterrupted one does.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from ticketpack import paths
from ticketpack.data import get as get_dataset
from ticketpack.errors import FieldError, TicketpackError
from ticketpack.fileio import check_output_dir, write_model
from ticketpack.models import build, example_input
from ticketpack.models.checkpoint import load_into, read_checkpoint
from ticketpack.models.factory import check_source, source_of
from ticketpack.models.scope import torch_scope
from ticketpack.models.tensors import save_tensors
from ticketpack.pruning import mask as masks
from ticketpack.pruning.granularity import get_granularity
from ticketpack.pruning.strategies import prune
from ticketpack.pruning.structure import trace
from ticketpack.pruning.targets import output_layer, output_weights, parameters, prunable_names
from ticketpack.search.artifact import load_manifest
from ticketpack.search.config import SearchConfig
from ticketpack.search.manifest import DatasetInfo, Environment, RoundRecord, TensorFile, TicketManifest
from ticketpack.training import train
from ticketpack.training.device import check_precision, describe, resolve_device
from ticketpack.training.train import TrainProgress, TrainResult, accuracy, total_steps
from ticketpack.version import __version__


@dataclass
class SearchEvent:
    """Progress of a search: ``kind`` is "round_start", "step" (after every training step of the round, in epoch
    ``epoch`` of ``epochs``; ``val_accuracy`` on the steps that evaluated) or "round_end"."""

    kind: str
    round: int
    rounds: int
    step: int = 0
    steps: int = 0
    val_accuracy: float | None = None
    record: RoundRecord | None = None
    epoch: int = 0
    epochs: int = 0


def derive_seed(seed: int, *parts: object) -> int:
    """A stable 63-bit seed from a base seed and labels (same inputs, same seed, on every machine)."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _start_state(r: int, retrain: str, init_state: dict, ticket) -> dict:
    """The weights round ``r`` trains from: θ0 in round 0; then θk (weight-rewind) or the last round's trained
    weights (lr-rewind, finetune), which the new mask prunes."""
    if r == 0:
        return init_state
    return ticket.rewind_state() if retrain == "weight-rewind" else ticket.trained_state(r - 1)


def _retrain_schedule(r: int, prune_cfg, train_cfg) -> dict:
    """How round ``r`` walks the learning-rate schedule: from its start, from step k (lr-rewind), or at a fixed
    small rate (finetune)."""
    if r == 0 or prune_cfg.retrain == "weight-rewind":
        return {}
    if prune_cfg.retrain == "lr-rewind":
        return {"schedule_from": prune_cfg.rewind_iter}
    return {"fixed_lr": prune_cfg.finetune_lr or train_cfg.lr / 10}


def evaluate_as_is(model, data, cfg) -> TrainResult:
    """Round 0 of a search from a checkpoint: the user's model as given, evaluated, not trained."""
    start = time.perf_counter()
    bf16 = cfg.precision == "bf16"
    val = accuracy(model, data.val, workers=cfg.loader_workers, bf16=bf16)
    test = accuracy(model, data.test, workers=cfg.loader_workers, bf16=bf16)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainResult(state=state, val_accuracy=val, test_accuracy=test, best_iteration=0, iterations=0,
                       seconds=time.perf_counter() - start)


def check_out(out: Path, resume: bool, force: bool) -> TicketManifest | None:
    """Check the output directory before any work (deleting nothing); return the manifest to resume from, if any."""
    if check_output_dir(Path(out), resume, force, paths.manifest(out), "ticket"):
        return load_manifest(out)
    return None


def _file(out: Path, path: Path, sha: str) -> TensorFile:
    return TensorFile(path=path.relative_to(out).as_posix(), sha256=sha)


def search(
    config: SearchConfig,
    out: Path,
    resume: bool = False,
    force: bool = False,
    on_event: Callable[[SearchEvent], None] | None = None,
    model: Callable | torch.nn.Module | None = None,
) -> TicketManifest:
    """Find a ticket for ``config`` and write it to ``out``; return its manifest.

    ``model``: a factory or an ``nn.Module`` to use instead of ``config.model.name`` (a notebook needs no file);
    the manifest records its ``module:qualname`` (or ``python:<name>`` when it cannot be imported elsewhere).
    Torch's thread count and global RNG state are the caller's again when it returns.
    """
    with torch_scope(config.threads):
        return _search(config, out, resume, force, on_event, model)


def _search(config: SearchConfig, out: Path, resume: bool, force: bool,
            on_event: Callable[[SearchEvent], None] | None, model: Callable | torch.nn.Module | None) -> TicketManifest:
    began = (time.perf_counter(), time.process_time())
    if model is not None:
        from ticketpack.models.factory import register_object
        from ticketpack.runtime.spec import ModelSpec

        given = config.model_dump(exclude_unset=True)  # re-validated: the model's defaults (strategy) follow it
        given["model"] = ModelSpec(name=register_object(model), options=config.model.options).model_dump()
        config = type(config).model_validate(given)
    out = Path(out)
    device = resolve_device(config.train.device)  # `--device cuda` on a machine without one stops here
    check_precision(config.train.precision, device)
    previous = check_out(out, resume, force)
    dataset = get_dataset(config.dataset)
    data = dataset.load(config.source, config.seed, config.split, options=config.preprocessing_options)
    config = config.for_input(data.preprocessing)
    if previous is not None:
        check_source(previous.model_source, config.model)
    if previous is not None and previous.config != config:
        raise FieldError(
            f"`resume`: {out} was made with a different configuration; use the same options, or `force` to start over",
            fields=["resume", "force"])
    prune_cfg = config.prune
    n_rounds = prune_cfg.planned_rounds
    if prune_cfg.rewind_iter and prune_cfg.rewind_iter >= total_steps(config.train, len(data.train)):
        raise FieldError(f"`prune.rewind_iter` {prune_cfg.rewind_iter} is not below the steps of one training run")
    from_checkpoint = config.init_weights is not None and not config.train_dense
    if from_checkpoint and prune_cfg.rewind_iter and prune_cfg.retrain == "weight-rewind":
        raise FieldError("`prune.rewind_iter` with `init_weights` needs `train_dense` (the weights of step k exist "
                         "only if round 0 trains); without it, weight-rewind rewinds to the checkpoint")

    source = source_of(config.model)
    example = example_input(data.preprocessing)
    torch.manual_seed(derive_seed(config.seed, "init"))
    model = build(config.model, data.preprocessing, data.num_classes, example)
    checkpoint_sha = None
    if config.init_weights is not None:
        state, checkpoint_sha = read_checkpoint(config.init_weights)
        load_into(model, state, f"init weights {config.init_weights}")
    prunable = prunable_names(model, prune_cfg.include, prune_cfg.exclude)
    out_layer = prune_cfg.output_layer or output_layer(model, example)
    output_names = output_weights(model, out_layer, prunable)
    structure = None
    granularity = get_granularity(prune_cfg.granularity)
    if granularity.needs_structure:
        structure = trace(model, example, out_layer, prunable)
        if not structure.groups:
            why = "; ".join(f"{k}: {v}" for k, v in structure.skipped.items()) or "the model has no hidden units"
            raise TicketpackError(f"{granularity.name} granularity: no unit group of this model can be removed "
                                  f"exactly ({why})")

    if previous is None:
        if force and out.exists():  # only now: the data, the model and the checkpoint were all accepted
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        init_sha = save_tensors(paths.init_weights(out), model.state_dict())
        manifest = TicketManifest(
            ticketpack_version=__version__,
            created_at=datetime.now(timezone.utc),
            status="in_progress",
            config=config,
            dataset=DatasetInfo(
                name=config.dataset,
                kind=data.preprocessing.kind,
                factory=dataset.fingerprint() if hasattr(dataset, "fingerprint") else None,  # a factory's source
                source_domain=config.source,
                label_names=data.label_names,
                preprocessing=data.preprocessing,
                rows=data.info.get("rows", len(data.train) + len(data.val) + len(data.test)),
                file_sha256=data.info.get("file_sha256"),
                split_sizes={"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            ),
            prunable={n: list(p.shape) for n, p in parameters(model, prunable).items()},
            output_names=output_names,
            output_layer=out_layer,
            model_source=source,
            init_file=_file(out, paths.init_weights(out), init_sha),
            init_weights_sha256=checkpoint_sha,
            device=describe(device),
            setup_seconds=round(time.perf_counter() - began[0], 3),
            setup_cpu_seconds=round(time.process_time() - began[1], 3),
            environment=Environment(
                python=sys.version.split()[0], torch=torch.__version__, platform=platform.platform()
            ),
        )
        write_model(paths.manifest(out), manifest)
    else:
        manifest = previous
        if manifest.status == "complete":
            return manifest

    from ticketpack.search.artifact import Ticket

    ticket = Ticket(out, manifest)
    ticket.verify()
    init_state = ticket.init_state()
    done = {r.round for r in manifest.rounds}
    strategy = prune_cfg.make_strategy()

    for r in range(n_rounds + 1):
        if r in done:
            continue
        if on_event:
            on_event(SearchEvent("round_start", r, n_rounds))
        round_began = (time.perf_counter(), time.process_time())
        if r == 0:
            mask = masks.ones_like(parameters(model, prunable))
        else:
            gen = torch.Generator().manual_seed(derive_seed(config.seed, "prune", r))
            mask = prune(
                strategy, ticket.trained_state(r - 1), ticket.mask(r - 1), prune_cfg.rate,
                output_names, prune_cfg.effective_output_rate, gen,
                granularity=granularity, structure=structure,
            )
        model.load_state_dict(_start_state(r, prune_cfg.retrain, init_state, ticket))
        model.to(device)

        def step_cb(p: TrainProgress, r: int = r) -> None:
            if on_event:
                on_event(SearchEvent("step", r, n_rounds, p.step, p.steps, p.val_accuracy, epoch=p.epoch, epochs=p.epochs))

        capture = prune_cfg.rewind_iter if (r == 0 and prune_cfg.rewind_iter > 0) else None
        train_mask = ticket.training_mask(model, mask, structure)
        if r == 0 and from_checkpoint:
            result = evaluate_as_is(model, data, config.train)
        else:
            result = train(model, data, config.train, derive_seed(config.seed, "train", r), train_mask, capture, step_cb,
                           **_retrain_schedule(r, prune_cfg, config.train))
        model.to("cpu")
        if r == 0:
            rewind = result.captured if result.captured is not None else init_state  # θk, or θ0 (a checkpoint: not trained)
            manifest.rewind_file = _file(out, paths.rewind_weights(out), save_tensors(paths.rewind_weights(out), rewind))
        mask_sha = save_tensors(paths.round_mask(out, r), masks.to_file(mask))
        weights_sha = save_tensors(paths.round_weights(out, r), result.state)
        record = RoundRecord(
            round=r,
            weights_remaining=masks.density(mask),
            layer_remaining=masks.layer_density(mask),
            mask_sha256=masks.digest(mask),
            val_accuracy=result.val_accuracy,
            test_accuracy=result.test_accuracy,
            best_iteration=result.best_iteration,
            iterations=result.iterations,
            seconds=round(result.seconds, 3),
            wall_seconds=round(time.perf_counter() - round_began[0], 3),
            cpu_seconds=round(time.process_time() - round_began[1], 3),
            mask_file=_file(out, paths.round_mask(out, r), mask_sha),
            weights_file=_file(out, paths.round_weights(out, r), weights_sha),
        )
        manifest.rounds.append(record)
        write_model(paths.manifest(out), manifest)
        if on_event:
            on_event(SearchEvent("round_end", r, n_rounds, record=record))

    manifest.status = "complete"
    write_model(paths.manifest(out), manifest)
    return manifest
