"""Running a transfer grid (:func:`run_transfer`) and reading a finished run back (:class:`TransferRun`).

Everything a user can get wrong (the ticket, the target, the dataset, the strategies, the levels, the output
directory, the executor) is checked before the run directory is created, so a bad call leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ticketpack.core import paths
from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.events import Event
from ticketpack.core.fileio import (
    check_output_dir,
    read_model,
    sha256_file,
    write_model,
)
from ticketpack.data import get as get_dataset
from ticketpack.data.base import DomainData
from ticketpack.data.domain import FeatureCache
from ticketpack.data.registry import DATASETS
from ticketpack.models.scope import torch_scope
from ticketpack.models.tensors import load_tensors
from ticketpack.pruning.mask import Mask, from_file
from ticketpack.search import SearchConfig, Ticket
from ticketpack.training.device import check_precision, resolve_device
from ticketpack.transfer import layout
from ticketpack.transfer.config import TransferConfig
from ticketpack.transfer.executors import Executor, open_executor
from ticketpack.transfer.jobs import JobContext, is_done, load_ticket, plan_jobs
from ticketpack.transfer.records import Job, JobResult, TransferPlan, TransferReport
from ticketpack.transfer.report import read_plan, read_results, render
from ticketpack.transfer.strategies import INITS
from ticketpack.version import __version__

__all__ = ["JobResult", "TransferEvent", "TransferPlan", "TransferRun", "run_transfer"]


@dataclass
class TransferEvent(Event):
    """Progress of a run: ``kind`` is "planned" (``done`` of ``total`` jobs already finished) or "job_end"."""

    stage: str = field(default="transfer", kw_only=True)
    done: int
    total: int
    job: Job | None = None
    result: JobResult | None = None


class TransferRun:
    """A transfer run directory, read back: its plan, its hash-verified ticket and each finished job's model."""

    def __init__(self, root: Path, plan: TransferPlan, ticket: Ticket) -> None:
        self.root = Path(root)
        self.plan = plan
        self.ticket = ticket

    @classmethod
    def load(cls, root: Path) -> "TransferRun":
        plan = read_plan(Path(root))
        return cls(Path(root), plan, load_ticket(plan))

    def results(self) -> list[JobResult]:
        """The finished jobs, in plan order."""
        return read_results(self.root, self.plan)

    def available(self) -> list[tuple[int, str, int]]:
        return [(r.level, r.init, r.seed) for r in self.results()]

    def resolve_level(self, level: int | str) -> int:
        """A round number or a weights-remaining percentage (``"20%"``) → the nearest level of this run."""
        if isinstance(level, int) or str(level).strip().isdigit():
            return int(level)
        want = self.ticket.record(self.ticket.resolve_level(level)).weights_remaining
        return min(self.plan.levels, key=lambda lv: abs(self.plan.level_weights_remaining[lv] - want))

    def weights(self, level: int | str, init: str, seed: int) -> tuple[dict[str, torch.Tensor], Mask | None, JobResult]:
        """The trained weights, the mask (None for dense) and the result of one finished job (level: a round, or a
        weights-remaining percentage such as ``"20%"``)."""
        from ticketpack.transfer.jobs import job_id

        level = self.resolve_level(level)
        jid = job_id(level, init, seed)
        path = layout.job_result(self.root, jid)
        if not path.exists():
            have = ", ".join(f"(level {lv}, {i}, seed {s})" for lv, i, s in self.available()) or "none"
            raise TicketpackError(f"{self.root} has no finished job for level {level}, {init}, seed {seed}; available: {have}")
        result = read_model(path, JobResult, "job result")
        if result.weights_file_sha256 is None:
            raise TicketpackError(f"{self.root} was run with keep_weights off: job {jid} kept no weights to export; "
                                  "run its transfer again with keep_weights on (the default)")
        state = load_tensors(layout.job_weights(self.root, jid), result.weights_file_sha256 or None)
        mask = None
        if result.mask_file_sha256 is not None:
            mask = from_file(load_tensors(layout.job_mask(self.root, jid), result.mask_file_sha256))
        return state, mask, result

    def target_data(self) -> DomainData:
        """The target domain with the ticket's preprocessing and split seed."""
        return self.ticket.load_data(self.plan.target, self.plan.dataset)

    def source_data(self) -> DomainData:
        return self.ticket.load_data(self.plan.source, self.plan.source_dataset)


def _dataset_ref(name: str) -> str:
    """A dataset as the plan records it: registry names as they are, directories as absolute paths."""
    if name in DATASETS:
        return name
    get_dataset(name)  # unknown names and missing directories fail here, with the known names
    return str(Path(name).resolve())


def _levels(ticket: Ticket, levels: list[int | str] | None) -> list[int]:
    if levels is None:
        pruned = [r.round for r in ticket.manifest.rounds if r.round > 0]
        return pruned or [0]
    return sorted({ticket.resolve_level(lv) for lv in levels})


def _labels_present(data: DomainData) -> list[str]:
    """The labels ``data`` holds examples of, in its label order: a target loaded with the ticket's labels (which
    refuses labels the ticket does not know) may still lack some."""
    present = set().union(*(np.unique(s.y).tolist() for s in (data.train, data.val, data.test)))
    return [name for i, name in enumerate(data.label_names) if i in present]


def _target_search(ticket: Ticket, config: TransferConfig, dataset: str, train, levels: list[int]) -> SearchConfig:
    """IMP on the target with the ticket's own model, pruning and seed (so the same splits and the same θ0)."""
    m = ticket.manifest
    prune = m.config.prune.model_copy(update={"rounds": max(levels), "target_sparsity": None})
    return SearchConfig(dataset=dataset, source=config.target, model=m.config.model, preprocessing=_pinned(m),
                        split=m.config.split, train=train, prune=prune, seed=m.config.seed)  # threads: set per job


def _pinned(m) -> dict:
    """The ticket's preprocessing as options: a search of the target with them preprocesses as the ticket does."""
    return m.dataset.preprocessing.options()


def _given_target_ticket(path: Path, wanted: SearchConfig, rounds: int) -> Ticket:
    """A ticket given for `target-ticket`, checked to be what the run's own search would find: the same search
    configuration (its dataset, domain, model, featurization, split, recipe, pruning and seed; the number of rounds
    may be larger, threads may differ), finished, with ``rounds`` rounds at least."""
    found = Ticket.load(path)
    m = found.manifest
    if m.status != "complete":
        raise TicketpackError(f"target ticket {path} is not a finished search (status {m.status})")
    have = m.config.model_copy(update={"threads": None, "text": None, "preprocessing": _pinned(m),  # as _target_search
                                       "dataset": _dataset_ref(m.config.dataset),
                                       "prune": m.config.prune.model_copy(update={"rounds": wanted.prune.rounds})})
    want = wanted.model_copy(update={"threads": None})
    differs = [k for k in SearchConfig.model_fields if getattr(have, k) != getattr(want, k)]
    if differs:
        raise TicketpackError(
            f"target ticket {path} was not found by the search `target-ticket` would run (differs in: "
            f"{', '.join(differs)}); search the target with the ticket's model, recipe, pruning and seed (and its "
            "preprocessing: the search's `preprocessing` option pins it, as the ticket's manifest records it), or leave "
            "target_ticket out"
        )
    if len(m.rounds) - 1 < rounds:
        raise TicketpackError(f"target ticket {path} has {len(m.rounds) - 1} pruned round(s); this run needs {rounds}")
    return found


def plan_run(config: TransferConfig) -> tuple[TransferPlan, JobContext]:
    """Check everything about ``config`` and load what the jobs need; nothing is written."""
    ticket = Ticket.load(Path(config.ticket))
    m = ticket.manifest
    levels = _levels(ticket, config.levels)
    ticket.build_model(config.allow_changed_model)  # a changed model source or a failing factory stops here
    try:
        source_dataset = _dataset_ref(m.config.dataset)
    except TicketpackError:
        raise TicketpackError(
            f"the ticket's dataset {m.config.dataset!r} is not found from {Path.cwd()}: the ticket records the path "
            "given to `ticketpack search`, so run transfer from that directory"
        ) from None
    dataset = _dataset_ref(config.dataset) if config.dataset else source_dataset
    train = config.train.apply(m.config.train)
    device = resolve_device(train.device)  # `--device cuda` without a GPU stops here, before anything is written
    check_precision(train.precision, device)
    target = ticket.load_data(config.target, dataset)  # unknown domain, other kind or other labels fail here
    same = (m.dataset.source_domain, source_dataset) == (config.target, dataset)
    source = target if same else ticket.load_data(m.dataset.source_domain, source_dataset)
    target_search = given = None
    searched = [name for name in config.inits if INITS.get(name).needs_target_search]
    if config.target_ticket and not searched:
        raise TicketpackError("target_ticket is used only by strategies that start from a ticket found on the target "
                              "(target-ticket): add one to the inits, or leave target_ticket out")
    if searched:
        target_search = _target_search(ticket, config, dataset, train, levels)
        found_labels = _labels_present(target)  # what that search would find: the target, loaded as the ticket's
        if found_labels != m.dataset.label_names:
            raise TicketpackError(
                f"{', '.join(searched)} needs {config.target} to hold exactly the ticket's labels "
                f"{m.dataset.label_names}; it holds {found_labels}"
            )
        if config.target_ticket:
            given = _given_target_ticket(Path(config.target_ticket), target_search, max(levels))
    seeds = list(range(config.seeds))
    plan = TransferPlan(
        ticketpack_version=__version__,
        created_at=datetime.now(timezone.utc),
        config=config,
        ticket=str(ticket.root.resolve()),
        ticket_manifest_sha256=sha256_file(paths.manifest(ticket.root)),
        model=m.config.model,
        source_dataset=source_dataset,
        source=m.dataset.source_domain,
        dataset=dataset,
        target=config.target,
        inits=config.inits,
        levels=levels,
        level_weights_remaining={lv: ticket.record(lv).weights_remaining for lv in levels},
        seeds=seeds,
        seed=config.seed,
        train=train,
        target_search=target_search,
        target_ticket=str(given.root.resolve()) if given else None,
        target_ticket_manifest_sha256=sha256_file(paths.manifest(given.root)) if given else None,
        jobs=plan_jobs(config.inits, levels, seeds, search_target=given is None),
    )
    return plan, JobContext(Path("."), plan, ticket, target, source)


def _check_out(out: Path, plan: TransferPlan, resume: bool, force: bool) -> TransferPlan | None:
    """Check the output directory before any work; return the plan to resume, if any."""
    if not check_output_dir(out, resume, force, layout.plan(out), "transfer run"):
        return None
    previous = read_plan(out)
    old, new = previous.identity(), plan.identity()
    if old != new:
        differs = ", ".join(k for k in new if old.get(k) != new[k])
        raise FieldError(
            f"`resume`: {out} was planned differently (differs in: {differs}); use the same options, or `force`",
            fields=["resume", "force"])
    return previous


def _register_ticket_model(ticket: Path, model, in_process: bool) -> None:
    """Build the ticket's model from ``model`` (a factory or module) in this process."""
    from ticketpack.models.factory import OBJECT_PREFIX, register_object
    from ticketpack.search import load_manifest

    reference = load_manifest(ticket).config.model.name
    register_object(model, reference)
    if reference.startswith(OBJECT_PREFIX) and not in_process:
        raise TicketpackError(
            f"the model {reference!r} lives in this Python process only: run with jobs=1 and the local executor, "
            "or give it as path/to/file.py:factory"
        )


def run_transfer(
    config: TransferConfig | None,
    out: Path,
    resume: bool = False,
    force: bool = False,
    jobs: int = 1,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    ray_timeout_s: float = 30.0,
    gpus_per_job: float = 0.0,
    on_event: Callable[[TransferEvent], None] | None = None,
    model: Callable | Any | None = None,
    **overrides,
) -> TransferReport:
    """Re-train ``config.ticket`` on ``config.target`` under each strategy, level and seed; write the run to
    ``out`` (see :mod:`ticketpack.transfer.layout`) and return its report.

    ``jobs`` jobs run at once, on ``executor`` ("local" processes, or "ray" tasks on ``ray_address`` or a local
    Ray instance; an unreachable ``ray_address`` fails after ``ray_timeout_s`` seconds), each job with
    ``config.threads`` torch threads. An executor already open (:func:`~ticketpack.transfer.open_executor`) may
    be given instead, to share its workers between runs: its own jobs and threads then apply (leave ``jobs`` and
    ``ray_address`` out). ``resume`` skips the jobs ``out`` already holds; ``force`` replaces a previous run.

    Torch's thread count and global RNG state are the caller's again when it returns. Domains are featurized
    through the executor's :class:`~ticketpack.data.domain.FeatureCache`: an executor handed to several runs
    featurizes a domain they share once.

    ``config``: a :class:`TransferConfig`; ``overrides``: any of its fields, which win over ``config``'s
    (``run_transfer(config, out, seeds=2)``; with ``config=None`` they must include every required field).
    """
    from ticketpack.core.config_files import with_overrides

    config = with_overrides(TransferConfig, config, overrides, "transfer")
    with torch_scope():  # in-process jobs seed torch's global RNG (a fresh initialization, dropout)
        return _run_transfer(config, Path(out), resume, force, jobs, executor, ray_address, ray_timeout_s,
                             gpus_per_job, on_event, model)


def _run_transfer(config: TransferConfig, out: Path, resume: bool, force: bool, jobs: int, executor: str | Executor,
                  ray_address: str | None, ray_timeout_s: float, gpus_per_job: float,
                  on_event: Callable[[TransferEvent], None] | None, model: Callable | Any | None) -> TransferReport:
    if isinstance(executor, str):  # a missing Ray extra or a bad --jobs fails here, before anything is loaded
        runner = open_executor(executor, jobs, config.threads, ray_address, ray_timeout_s, gpus_per_job)
        scope = runner
    elif jobs != 1 or ray_address:
        raise TicketpackError("jobs and ray_address belong to open_executor when an executor is given")
    else:
        runner, scope = executor, contextlib.nullcontext(executor)
    if model is not None:
        _register_ticket_model(Path(config.ticket), model, runner.in_process)
    features = getattr(runner, "features", None)
    if features is None:  # an executor of the user's own: the featurized domains serve this run only
        features = FeatureCache()
    with features.using():
        plan, ctx = plan_run(config)
    previous = _check_out(out, plan, resume, force)
    with scope, features.using():  # connects to Ray (if asked) before anything is written
        if previous is None:
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            write_model(layout.plan(out), plan)
        else:
            plan = previous
        ctx.root, ctx.plan = out.resolve(), plan

        todo = [job for job in plan.jobs if not is_done(out, job)]
        total = len(plan.jobs)
        done = total - len(todo)
        if on_event:
            on_event(TransferEvent("planned", done, total))
        for phase in sorted({job.phase for job in todo}):
            for job, result in runner.run([j for j in todo if j.phase == phase], ctx):
                done += 1
                if on_event:
                    res = JobResult.model_validate(result) if result is not None else None
                    on_event(TransferEvent("job_end", done, total, job, res))
    return render(out)

