"""What export reads: a ticket directory (a round's weights, trained on the source domain) or a transfer run
(one job's weights, trained on the target domain), and which level, init strategy and seed to take from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ticketpack.core import paths
from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.fileio import sha256_file
from ticketpack.core.stats import difference_se
from ticketpack.data.base import DomainData
from ticketpack.pruning.mask import Mask
from ticketpack.search import Ticket


@dataclass
class Selection:
    """The weights chosen for export, with everything the model card says about where they came from."""

    kind: str  # "ticket" or "transfer"
    root: Path
    ticket: Ticket
    level: int
    weights_remaining: float
    reason: str
    state: dict[str, torch.Tensor]
    mask: Mask | None
    data: DomainData
    dataset: str
    source_domain: str
    manifest_sha256: str
    seed: int
    target_domain: str | None = None
    init_strategy: str | None = None
    dense_test_accuracy: float | None = None
    extra: dict = field(default_factory=dict)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pts(x: float) -> str:
    return f"{x:g} point" + ("" if x == 1 else "s")


def _sparsest_within(items: list, dense_val: float, max_drop_pts: float, n_val: int | None, val_accuracy: Callable,
                     level: Callable):
    """The item with the fewest weights whose validation accuracy is within ``max_drop_pts`` of dense *beyond the
    validation split's noise* (ties: the later level): ``val - dense_val >= -max_drop + se``, where ``se`` is the
    standard error of the difference of two accuracies on ``n_val`` examples, sqrt(p1(1-p1)/n + p2(1-p2)/n). On a
    small split a level must look better than dense to count as no worse by more than ``max_drop_pts``: a pick
    made on noise ships a model whose test accuracy can fall far below dense."""

    def fits(x) -> bool:
        acc = val_accuracy(x)
        return acc - dense_val >= -max_drop_pts / 100 + difference_se(acc, dense_val, n_val) - 1e-12

    ok = [x for x in items if fits(x)]
    return min(ok, key=lambda x: (x.weights_remaining, -level(x))) if ok else None


def _noise_note(dense_val: float, n_val: int | None) -> str:
    if not n_val:
        return " (the run does not record its validation split size: no allowance for its noise)"
    return (f"; a level counts only beyond the noise of the {n_val}-example validation split (one standard error of "
            f"a difference: {100 * difference_se(dense_val, dense_val, n_val):.1f} points); `level` picks one yourself")


def _is_transfer_run(root: Path) -> bool:
    from ticketpack.transfer import layout  # file names only: cheap

    return layout.plan(root).exists()


def select(source: Path, level: str | int | None, init: str | None, seed: int | None, max_drop_pts: float) -> Selection:
    """Open ``source`` and pick the weights to export (``TicketpackError`` listing what exists when a choice is wrong)."""
    source = Path(source)
    if not source.exists():
        raise TicketpackError(f"{source} not found: give a ticket directory (ticketpack search) or a transfer run (ticketpack transfer)")
    if not source.is_dir():
        raise TicketpackError(f"{source} is a file; give a ticket directory or a transfer run directory")
    if paths.manifest(source).exists():
        return _from_ticket(source, level, init, seed, max_drop_pts)
    if _is_transfer_run(source):
        return _from_run(source, level, init, seed, max_drop_pts)
    raise TicketpackError(f"{source} is neither a ticket directory (no manifest.json) nor a transfer run (no plan.json)")


def _from_ticket(root: Path, level, init, seed, max_drop_pts: float) -> Selection:
    ticket = Ticket.load(root)
    m = ticket.manifest
    if init is not None:
        raise FieldError(
            f"`init` chooses a job of a transfer run; {root} is a ticket directory, whose rounds were trained on "
            f"{m.dataset.source_domain} (leave out `init`, or export from a transfer run)"
        )
    if seed is not None and seed != m.config.seed:
        raise FieldError(f"ticket {root} was found with seed {m.config.seed}; `seed` {seed} does not match it")
    dense = ticket.record(0) if any(r.round == 0 for r in m.rounds) else None
    if level is None:
        if dense is None:
            raise FieldError(f"ticket {root} has no dense round 0 to compare with; give a `level`")
        n_val = m.dataset.split_sizes.get("val")
        rec = _sparsest_within(m.rounds, dense.val_accuracy, max_drop_pts, n_val, lambda r: r.val_accuracy,
                               lambda r: r.round) or dense
        reason = (
            f"round {rec.round} ({_pct(rec.weights_remaining)} weights remaining) is the sparsest whose validation "
            f"accuracy ({rec.val_accuracy:.3f}) is within {_pts(max_drop_pts)} of the dense round's "
            f"({dense.val_accuracy:.3f}){_noise_note(dense.val_accuracy, n_val)}"
        )
    else:
        rec = ticket.record(ticket.resolve_level(level))
        reason = f"`level` {level}: round {rec.round} ({_pct(rec.weights_remaining)} weights remaining)"
    return Selection(
        kind="ticket", root=root, ticket=ticket, level=rec.round, weights_remaining=rec.weights_remaining,
        reason=reason, state=ticket.trained_state(rec.round), mask=ticket.mask(rec.round),
        data=ticket.load_data(m.dataset.source_domain), dataset=m.config.dataset, source_domain=m.dataset.source_domain,
        manifest_sha256=sha256_file(paths.manifest(root)), seed=m.config.seed,
        dense_test_accuracy=dense.test_accuracy if dense else None,
        extra={"strategy": m.config.prune.strategy, "granularity": m.config.prune.granularity},
    )


def _from_run(root: Path, level, init, seed, max_drop_pts: float) -> Selection:
    try:
        from ticketpack.transfer.run import TransferRun
    except ImportError:  # pragma: no cover - the transfer package ships with ticketpack
        raise TicketpackError("reading transfer runs needs ticketpack.transfer, which this installation lacks") from None
    run = TransferRun.load(root)
    results = run.results()
    if not results:
        raise TicketpackError(f"transfer run {root} has no finished jobs yet; resume it with `ticketpack transfer --resume`")
    inits = sorted({r.init for r in results})
    if init is None:
        pruned = sorted({r.init for r in results if r.mask_sha256 is not None})
        if len(pruned) != 1:
            raise FieldError(f"`init` is needed: transfer run {root} holds strategies {', '.join(inits)}")
        init = pruned[0]
    if init not in inits:
        raise TicketpackError(f"transfer run {root} has no finished jobs for strategy {init!r}; available: {', '.join(inits)}")
    seeds = sorted({r.seed for r in results if r.init == init})
    chosen_seed = seeds[0] if seed is None else seed
    if chosen_seed not in seeds:
        raise TicketpackError(
            f"transfer run {root} has no finished {init} jobs for seed {seed}; available seeds: {', '.join(map(str, seeds))}"
        )
    jobs = [r for r in results if r.init == init and r.seed == chosen_seed]
    dense = next((r for r in results if r.mask_sha256 is None and r.seed == chosen_seed), None)  # no mask: dense
    seed_note = f" (seed {chosen_seed}, the lowest of {', '.join(map(str, seeds))})" if seed is None and len(seeds) > 1 else ""
    if level is None:
        if jobs[0].mask_sha256 is None or len(jobs) == 1:
            job = jobs[0]
            reason = f"the only {init} level of this run: {job.level} ({_pct(job.weights_remaining)} weights remaining)"
        elif dense is None:
            have = ", ".join(str(j.level) for j in jobs)
            raise FieldError(f"transfer run {root} has no dense job for seed {chosen_seed} to compare with; give a `level` (levels: {have})")
        else:
            n_val = dense.target_val_n
            note = _noise_note(dense.target_val_accuracy, n_val)
            job = _sparsest_within(jobs, dense.target_val_accuracy, max_drop_pts, n_val,
                                   lambda j: j.target_val_accuracy, lambda j: j.level)
            if job is not None:
                reason = (
                    f"level {job.level} ({_pct(job.weights_remaining)} weights remaining) is the sparsest {init} level "
                    f"whose target validation accuracy ({job.target_val_accuracy:.3f}) is within {_pts(max_drop_pts)} "
                    f"of dense ({dense.target_val_accuracy:.3f}){note}"
                )
            else:
                job = max(jobs, key=lambda j: (j.weights_remaining, -j.level))
                reason = (
                    f"no {init} level is shown to be within {_pts(max_drop_pts)} of dense "
                    f"({dense.target_val_accuracy:.3f}){note}; level {job.level} is the densest (target validation "
                    f"accuracy {job.target_val_accuracy:.3f}), and its test accuracy may still be below dense's"
                )
        reason += seed_note
        chosen_level = job.level
    else:
        chosen_level = run.resolve_level(level)
        reason = f"`level` {level}: level {chosen_level}{seed_note}"
    state, mask, job = run.weights(chosen_level, init, chosen_seed)
    if level is not None:
        reason += f" ({_pct(job.weights_remaining)} weights remaining)"
    plan = run.plan
    m = run.ticket.manifest
    return Selection(
        kind="transfer", root=root, ticket=run.ticket, level=job.level, weights_remaining=job.weights_remaining,
        reason=reason, state=state, mask=mask, data=run.target_data(), dataset=plan.dataset,
        source_domain=plan.source, manifest_sha256=plan.ticket_manifest_sha256, seed=job.seed,
        target_domain=plan.target, init_strategy=init,
        dense_test_accuracy=dense.target_test_accuracy if dense else None,
        extra={"strategy": m.config.prune.strategy, "granularity": m.config.prune.granularity},
    )


def register_source_model(source: Path, model) -> None:
    """Build the model of a ticket (or of a transfer run's ticket) from ``model``, a factory or module."""
    from ticketpack.core.fileio import read_model
    from ticketpack.models.factory import register_object
    from ticketpack.search import load_manifest

    if paths.manifest(source).exists():
        reference = load_manifest(source).config.model.name
    elif _is_transfer_run(source):
        from ticketpack.transfer import layout
        from ticketpack.transfer.records import TransferPlan

        reference = read_model(layout.plan(source), TransferPlan, "transfer plan").model.name
    else:
        return  # select() says what is wrong with the source
    register_object(model, reference)

