"""Iterative magnitude pruning with rewinding: train → prune → rewind survivors to θk → repeat.

Every round is written (atomically) as soon as it finishes and the manifest is rewritten after it, so a killed
search resumes from its last finished round. Each round is seeded from (seed, round) alone, which makes a
resumed search produce exactly the ticket an uninterrupted one does.
"""

from __future__ import annotations

import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from ticketpack.core import paths
from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.events import Event
from ticketpack.core.fileio import check_output_dir, write_model
from ticketpack.core.seeds import derive_seed
from ticketpack.data import get as get_dataset
from ticketpack.models import build, example_input
from ticketpack.models.checkpoint import load_into, read_checkpoint
from ticketpack.models.factory import check_source, source_of
from ticketpack.models.scope import torch_scope
from ticketpack.models.tensors import save_tensors
from ticketpack.pruning import mask as masks
from ticketpack.pruning.granularity import get_granularity
from ticketpack.pruning.strategies import prune
from ticketpack.pruning.structure import trace
from ticketpack.pruning.targets import (
    output_layer,
    output_weights,
    parameters,
    prunable_names,
)
from ticketpack.search.artifact import load_manifest
from ticketpack.search.config import SearchConfig
from ticketpack.search.manifest import (
    DatasetInfo,
    Environment,
    RoundRecord,
    TensorFile,
    TicketManifest,
)
from ticketpack.training import train
from ticketpack.training.device import check_precision, describe, resolve_device
from ticketpack.training.train import TrainProgress, TrainResult, accuracy, total_steps
from ticketpack.version import __version__


@dataclass
class SearchEvent(Event):
    """Progress of a search: ``kind`` is "dense_layers" (before the rounds of a neuron search that leaves some layers
    dense: ``message`` names each with why), "round_start", "step" (after every training step of the round, in
    epoch ``epoch`` of ``epochs``; ``val_accuracy`` on the steps that evaluated) or "round_end"."""

    stage: str = field(default="search", kw_only=True)
    round: int
    rounds: int
    step: int = 0
    steps: int = 0
    val_accuracy: float | None = None
    record: RoundRecord | None = None
    epoch: int = 0
    epochs: int = 0


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
    config: SearchConfig | None,
    out: Path,
    resume: bool = False,
    force: bool = False,
    on_event: Callable[[SearchEvent], None] | None = None,
    model: Callable | torch.nn.Module | None = None,
    **overrides,
) -> TicketManifest:
    """Find a ticket for ``config`` and write it to ``out``; return its manifest.

    ``config``: a :class:`SearchConfig` (None: its defaults); ``overrides``: any of its fields, which win over
    ``config``'s (``search(config, out, seed=1, prune={"rounds": 2})``: a nested field replaces the whole section).

    ``model``: a factory or an ``nn.Module`` to use instead of ``config.model.name`` (a notebook needs no file);
    the manifest records its ``module:qualname`` (or ``python:<name>`` when it cannot be imported elsewhere).
    Torch's thread count and global RNG state are the caller's again when it returns.
    """
    from ticketpack.core.config_files import with_overrides

    config = with_overrides(SearchConfig, config, overrides, "search")
    with torch_scope(config.threads):
        return _search(config, out, resume, force, on_event, model)


def _search(config: SearchConfig, out: Path, resume: bool, force: bool,
            on_event: Callable[[SearchEvent], None] | None, model: Callable | torch.nn.Module | None) -> TicketManifest:
    """Check everything, build the model, start (or resume) the ticket directory, then run the rounds not done."""
    began = (time.perf_counter(), time.process_time())
    if model is not None:
        config = _with_model(config, model)
    out = Path(out)
    device = resolve_device(config.train.device)  # `--device cuda` on a machine without one stops here
    check_precision(config.train.precision, device)
    previous = check_out(out, resume, force)
    dataset = get_dataset(config.dataset)
    data = dataset.load(config.source, config.seed, config.split, options=config.preprocessing_options)
    config = config.for_input(data.preprocessing)
    _check_plan(config, out, previous, len(data.train))
    setup = _build(config, data)
    if previous is None:
        manifest = _start(config, out, force, dataset, data, setup, device, began)
    elif previous.status == "complete":
        return previous
    else:
        manifest = previous

    from ticketpack.search.artifact import Ticket

    ticket = Ticket(out, manifest)
    ticket.verify()
    if manifest.dense_layers and on_event is not None:
        on_event(SearchEvent("dense_layers", 0, config.prune.planned_rounds, message=dense_message(manifest.dense_layers)))
    rounds = _Rounds(config, out, data, setup, ticket, device, on_event)
    done = {r.round for r in manifest.rounds}
    for r in range(config.prune.planned_rounds + 1):
        if r not in done:
            rounds.run(r)
    manifest.status = "complete"
    write_model(paths.manifest(out), manifest)
    return manifest


def dense_message(dense: dict[str, str]) -> str:
    """One line per layer whose units stay dense, with why (what a neuron search says before its rounds)."""
    what = "1 layer stays" if len(dense) == 1 else f"{len(dense)} layers stay"
    lines = [f"{what} dense (neuron granularity cannot remove their units exactly):"]
    return "\n".join([*lines, *(f"  {name}: {why}" for name, why in dense.items())])


def _with_model(config: SearchConfig, model: Callable | torch.nn.Module) -> SearchConfig:
    """``config`` naming a model given as a Python object (registered under a name the manifest records)."""
    from ticketpack.models.factory import register_object
    from ticketpack.runtime.spec import ModelSpec

    given = config.model_dump(exclude_unset=True)  # re-validated: the model's defaults (strategy) follow it
    given["model"] = ModelSpec(name=register_object(model), options=config.model.options).model_dump()
    return type(config).model_validate(given)


def _check_plan(config: SearchConfig, out: Path, previous: TicketManifest | None, train_rows: int) -> None:
    """Refuse, before any work: resuming with another configuration or model, a rewind step past one training run,
    rewinding weights to a step that a search from a checkpoint never trains."""
    if previous is not None:
        check_source(previous.model_source, config.model)
    if previous is not None and previous.config != config:
        raise FieldError(
            f"`resume`: {out} was made with a different configuration; use the same options, or `force` to start over",
            fields=["resume", "force"])
    prune_cfg = config.prune
    if prune_cfg.rewind_iter and prune_cfg.rewind_iter >= total_steps(config.train, train_rows):
        raise FieldError(f"`prune.rewind_iter` {prune_cfg.rewind_iter} is not below the steps of one training run")
    if _from_checkpoint(config) and prune_cfg.rewind_iter and prune_cfg.retrain == "weight-rewind":
        raise FieldError("`prune.rewind_iter` with `init_weights` needs `train_dense` (the weights of step k exist "
                         "only if round 0 trains); without it, weight-rewind rewinds to the checkpoint")


def _from_checkpoint(config: SearchConfig) -> bool:
    """Round 0 evaluates the checkpoint as given instead of training."""
    return config.init_weights is not None and not config.train_dense


@dataclass
class _Setup:
    """What a search builds before its rounds: the model at θ0, what it prunes and how."""

    model: torch.nn.Module
    source: str
    prunable: list[str]
    output_layer: str
    output_names: list[str]
    granularity: object
    structure: object | None
    checkpoint_sha: str | None


def _build(config: SearchConfig, data) -> _Setup:
    """The model at θ0 (seeded, or the checkpoint), its prunable weights, its output layer and, for a granularity
    that removes whole units, the unit structure (refused when no unit can be removed exactly)."""
    prune_cfg = config.prune
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
    return _Setup(model, source, prunable, out_layer, output_names, granularity, structure, checkpoint_sha)


def _start(config: SearchConfig, out: Path, force: bool, dataset, data, setup: _Setup, device,
           began: tuple[float, float]) -> TicketManifest:
    """A new ticket directory: θ0 and the manifest (in progress), replacing ``out`` under ``force``."""
    if force and out.exists():  # only now: the data, the model and the checkpoint were all accepted
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    init_sha = save_tensors(paths.init_weights(out), setup.model.state_dict())
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
        prunable={n: list(p.shape) for n, p in parameters(setup.model, setup.prunable).items()},
        output_names=setup.output_names,
        output_layer=setup.output_layer,
        dense_layers=dict(setup.structure.skipped) if setup.structure is not None else None,
        model_source=setup.source,
        init_file=_file(out, paths.init_weights(out), init_sha),
        init_weights_sha256=setup.checkpoint_sha,
        device=describe(device),
        setup_seconds=round(time.perf_counter() - began[0], 3),
        setup_cpu_seconds=round(time.process_time() - began[1], 3),
        environment=Environment(python=sys.version.split()[0], torch=torch.__version__, platform=platform.platform()),
    )
    write_model(paths.manifest(out), manifest)
    return manifest


class _Rounds:
    """The rounds of one search: each prunes the last round's weights to a new mask (round 0: none), trains from
    the round's start weights, and records its mask, weights and figures in the manifest as it ends."""

    def __init__(self, config: SearchConfig, out: Path, data, setup: _Setup, ticket, device,
                 on_event: Callable[[SearchEvent], None] | None) -> None:
        self.config, self.out, self.data, self.setup, self.ticket, self.device = config, out, data, setup, ticket, device
        self.emit = on_event or (lambda _event: None)
        self.n_rounds = config.prune.planned_rounds
        self.init_state = ticket.init_state()
        self.strategy = config.prune.make_strategy()

    def run(self, r: int) -> RoundRecord:
        self.emit(SearchEvent("round_start", r, self.n_rounds))
        began = (time.perf_counter(), time.process_time())
        mask = self.mask(r)
        model = self.setup.model
        model.load_state_dict(_start_state(r, self.config.prune.retrain, self.init_state, self.ticket))
        model.to(self.device)
        result = self.train(r, mask)
        model.to("cpu")
        record = self.record(r, mask, result, began)
        self.emit(SearchEvent("round_end", r, self.n_rounds, record=record))
        return record

    def mask(self, r: int) -> dict:
        """All ones in round 0; then the last round's trained weights pruned by the strategy (seeded per round)."""
        setup, prune_cfg = self.setup, self.config.prune
        if r == 0:
            return masks.ones_like(parameters(setup.model, setup.prunable))
        gen = torch.Generator().manual_seed(derive_seed(self.config.seed, "prune", r))
        return prune(
            self.strategy, self.ticket.trained_state(r - 1), self.ticket.mask(r - 1), prune_cfg.rate,
            setup.output_names, prune_cfg.effective_output_rate, gen,
            granularity=setup.granularity, structure=setup.structure,
        )

    def train(self, r: int, mask: dict) -> TrainResult:
        """Round ``r`` trained under ``mask`` (round 0 from a checkpoint: evaluated as given), reporting each step."""
        config, model = self.config, self.setup.model

        def step_cb(p: TrainProgress) -> None:
            self.emit(SearchEvent("step", r, self.n_rounds, p.step, p.steps, p.val_accuracy, epoch=p.epoch,
                                  epochs=p.epochs))

        capture = config.prune.rewind_iter if (r == 0 and config.prune.rewind_iter > 0) else None
        train_mask = self.ticket.training_mask(model, mask, self.setup.structure)
        if r == 0 and _from_checkpoint(config):
            return evaluate_as_is(model, self.data, config.train)
        return train(model, self.data, config.train, derive_seed(config.seed, "train", r), train_mask, capture,
                     step_cb, **_retrain_schedule(r, config.prune, config.train))

    def record(self, r: int, mask: dict, result: TrainResult, began: tuple[float, float]) -> RoundRecord:
        """Write the round's mask and weights (round 0 also the rewind weights) and add its record to the manifest."""
        out, manifest = self.out, self.ticket.manifest
        if r == 0:
            rewind = result.captured if result.captured is not None else self.init_state  # θk, or θ0 (a checkpoint)
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
            wall_seconds=round(time.perf_counter() - began[0], 3),
            cpu_seconds=round(time.process_time() - began[1], 3),
            mask_file=_file(out, paths.round_mask(out, r), mask_sha),
            weights_file=_file(out, paths.round_weights(out, r), weights_sha),
        )
        manifest.rounds.append(record)
        write_model(paths.manifest(out), manifest)
        return record
