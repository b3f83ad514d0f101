"""The job list of a transfer run and the one function that runs a job, whatever the executor.

A job is a plain :class:`~ticketpack.transfer.records.Job` (a few strings and ints); a worker needs only the run
directory and that description. A worker loads the plan, the verified ticket and the data once
(:meth:`JobContext.load`) and keeps that context for as long as it works on the run, never longer: the executor owns
it, nothing here caches one. :func:`execute` runs a job and writes its files atomically (``result.json`` last), so
a finished job is never redone by ``--resume`` and a killed one leaves no result behind.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import torch

from ticketpack.core import paths
from ticketpack.core.errors import TicketpackError
from ticketpack.core.fileio import read_model, sha256_file, write_model
from ticketpack.core.seeds import derive_seed
from ticketpack.data.base import DomainData
from ticketpack.models.tensors import save_tensors
from ticketpack.pruning import mask as masks
from ticketpack.pruning.granularity import get_granularity
from ticketpack.search import Ticket, search
from ticketpack.training import accuracy, train
from ticketpack.training.device import resolve_device
from ticketpack.transfer import layout
from ticketpack.transfer.records import Job, JobResult, TransferPlan
from ticketpack.transfer.strategies import INITS

TARGET_SEARCH_ID = "target-search"


def job_id(level: int, init: str, seed: int) -> str:
    return f"L{level:02d}-{init}-s{seed}"


def plan_jobs(inits: list[str], levels: list[int], seeds: list[int], search_target: bool = True) -> list[Job]:
    """Every job of a grid, seed by seed (a killed run has whole seeds done first). ``search_target=False``: the
    target ticket is given, so no search job is planned for it."""
    strategies = {name: INITS.get(name) for name in inits}
    masked = [name for name, s in strategies.items() if s.masked]
    jobs: list[Job] = []
    if search_target and any(s.needs_target_search for s in strategies.values()):
        jobs.append(Job(job_id=TARGET_SEARCH_ID, kind="target-search"))
    for seed in seeds:
        for level in levels if masked else []:
            for name in masked:
                jobs.append(Job(job_id=job_id(level, name, seed), init=name, level=level, seed=seed,
                                phase=1 if strategies[name].needs_target_search else 0))
        for name, s in strategies.items():
            if not s.masked:
                jobs.append(Job(job_id=job_id(0, name, seed), init=name, level=0, seed=seed))
    return jobs


class JobContext:
    """What every job of a run reads: the plan, the verified ticket, target and source data, derived seeds."""

    def __init__(self, root: Path, plan: TransferPlan, ticket: Ticket | None = None,
                 target: DomainData | None = None, source: DomainData | None = None) -> None:
        self.root = Path(root)
        self.plan = plan
        self.ticket = (ticket or load_ticket(plan)).keep_loaded()  # every job starts from its θk and masks
        self.target = target or self.ticket.load_data(plan.target, plan.dataset)
        if source is None:
            same = (plan.source, plan.source_dataset) == (plan.target, plan.dataset)
            source = self.target if same else self.ticket.load_data(plan.source, plan.source_dataset)
        self.source = source
        self._target_ticket: Ticket | None = None
        self._structure = None
        self._template = None

    @classmethod
    def load(cls, root: Path) -> "JobContext":
        """The context of the run in ``root``, from its written plan (what a worker loads before its first job)."""
        return cls(Path(root).resolve(), read_model(layout.plan(root), TransferPlan, "transfer plan"))

    @property
    def plan_digest(self) -> str:
        """A digest of the plan: the same directory planned anew (created_at included) gets another."""
        return hashlib.sha256(self.plan.model_dump_json().encode()).hexdigest()

    def build_model(self):
        """A model of the ticket's architecture for a job to load its start state into: a copy of one built once
        per context (a 2^20-row embedding's random initialization costs a tenth of a second per build)."""
        if self._template is None:
            self._template = self._build()
        return copy.deepcopy(self._template)

    def _build(self):
        """A freshly built model of the ticket's architecture (runs its factory)."""
        return self.ticket.build_model(self.plan.config.allow_changed_model)

    def structure(self):
        """The unit groups of the ticket's model (traced once per context)."""
        if self._structure is None:
            self._structure = self.ticket.structure(self.build_model())
        return self._structure

    def seed_for(self, *parts: object) -> int:
        """A seed derived from the run's base seed and labels, e.g. ``("train", seed_index)``."""
        return derive_seed(self.plan.seed, "transfer", *parts)

    def fresh_state(self, seed: int) -> dict[str, torch.Tensor]:
        """A fresh random initialization of the ticket's architecture for seed index ``seed``."""
        torch.manual_seed(self.seed_for("init", seed))
        return self._build().state_dict()

    def target_ticket(self) -> Ticket:
        if self._target_ticket is None:
            path = layout.target_ticket(self.root, self.plan.target_ticket)
            if not path.exists():
                raise TicketpackError(f"{self.root}: the target-ticket search has not run yet")
            if self.plan.target_ticket:  # given, not searched by this run: held to the manifest it was planned with
                self._target_ticket = _planned_ticket(path, self.plan.target_ticket_manifest_sha256, "target ticket")
            else:
                self._target_ticket = Ticket.load(path)
            self._target_ticket.keep_loaded()
        return self._target_ticket


def _planned_ticket(path: Path, manifest_sha256: str | None, what: str) -> Ticket:
    """The ticket at ``path``, refused if its manifest changed since the run was planned."""
    ticket = Ticket.load(path)
    if sha256_file(paths.manifest(path)) != manifest_sha256:
        raise TicketpackError(f"{what} {path} has changed since this transfer run was planned")
    return ticket


def load_ticket(plan: TransferPlan) -> Ticket:
    """The plan's ticket, hash-verified, refused if its manifest changed since the run was planned."""
    return _planned_ticket(Path(plan.ticket), plan.ticket_manifest_sha256, "ticket")


def is_done(root: Path, job: Job) -> bool:
    if job.kind == "target-search":
        from ticketpack.search import load_manifest

        path = layout.target_ticket(root)
        return (path / "manifest.json").exists() and load_manifest(path).status == "complete"
    return layout.job_result(root, job.job_id).exists()


def execute(ctx: JobContext, job: Job | dict[str, Any], first_in_worker: bool = False) -> dict[str, Any] | None:
    """Run one job of ``ctx``'s run and write its files; return its JobResult as a plain dict (what every executor
    sends back alike, across processes and Ray). ``first_in_worker``: the executor's word that this is the first job
    of its worker process (recorded, so that costs are reported without the process's start-up)."""
    job = Job.model_validate(job)
    if job.kind == "target-search":
        search(ctx.plan.target_search, layout.target_ticket(ctx.root), resume=True)
        ctx._target_ticket = None
        return None
    return run_train_job(ctx, job, first_in_worker).model_dump(mode="json")


def run_train_job(ctx: JobContext, job: Job, first_in_worker: bool = False) -> JobResult:
    start = INITS.create(job.init).start(ctx, job.level, job.seed)
    model = ctx.build_model()
    model.load_state_dict(start.state)
    train_seed = ctx.seed_for("train", job.seed)
    structure = ctx.structure() if get_granularity(ctx.ticket.granularity).needs_structure else None
    train_mask = ctx.ticket.training_mask(model, start.mask, structure)
    model.to(resolve_device(ctx.plan.train.device))
    cpu_began = time.process_time()
    result = train(model, ctx.target, ctx.plan.train, train_seed, train_mask)
    cpu_seconds = time.process_time() - cpu_began
    source_acc = accuracy(model, ctx.source.test)  # train() leaves the best-validation weights loaded
    model.to("cpu")

    root, jid = ctx.root, job.job_id
    keep = ctx.plan.config.keep_weights
    weights_sha = save_tensors(layout.job_weights(root, jid), result.state) if keep else None
    mask_sha = (save_tensors(layout.job_mask(root, jid), masks.to_file(start.mask))
                if start.mask is not None and keep else None)
    record = JobResult(
        job_id=jid,
        level=job.level,
        weights_remaining=masks.density(start.mask) if start.mask is not None else 1.0,
        init=job.init,
        seed=job.seed,
        target_val_accuracy=result.val_accuracy,
        target_test_accuracy=result.test_accuracy,
        source_test_accuracy=source_acc,
        best_iteration=result.best_iteration,
        seconds=round(result.seconds, 3),
        cpu_seconds=round(cpu_seconds, 3),
        threads=torch.get_num_threads(),
        first_in_worker=first_in_worker,
        load_1min=round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        cores=os.cpu_count(),
        iterations=result.iterations,
        train_seed=train_seed,
        mask_sha256=masks.digest(start.mask) if start.mask is not None else None,
        weights_file_sha256=weights_sha,
        mask_file_sha256=mask_sha,
        target_round=start.target_round,
        target_val_n=len(ctx.target.val.y),
        target_test_n=len(ctx.target.test.y),
    )
    write_model(layout.job_result(root, jid), record)
    return record
