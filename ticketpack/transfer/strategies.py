"""Initialization strategies at transfer time (Desai, Zhan & Aly 2019): where the weights start, and which mask
holds them, when a model is re-trained on the target domain.

Each strategy is a small function ``(ctx, level, seed) -> Start`` registered in :data:`INITS` under its name; its
docstring is the documentation users see. ``ctx`` is a :class:`StartContext` (the ticket, the derived seeds, a fresh
random initialization, the target ticket), which :class:`ticketpack.transfer.jobs.JobContext` provides. Every
strategy of one seed index trains on the same data order, so strategies are compared pairwise, and ``dense`` and
``random-reinit`` share their fresh initialization.

Adding a strategy is one decorated function here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ticketpack.registry import Registry

if TYPE_CHECKING:
    import torch

    from ticketpack.pruning.mask import Mask
    from ticketpack.pruning.structure import Structure
    from ticketpack.search import Ticket


class StartContext(Protocol):
    """What a strategy may read of its job. Declared here rather than imported from ``jobs``: the config validates
    init names against :data:`INITS`, and the job machinery imports the config, so this module depends on neither."""

    @property
    def ticket(self) -> Ticket: ...

    def structure(self) -> Structure: ...

    def seed_for(self, *parts: object) -> int: ...

    def fresh_state(self, seed: int) -> dict[str, torch.Tensor]: ...

    def target_ticket(self) -> Ticket: ...


@dataclass(frozen=True)
class Start:
    """Where a transfer job starts: the weights to load and the mask to train under (None: dense)."""

    state: dict[str, torch.Tensor]
    mask: Mask | None
    target_round: int | None = None


@dataclass(frozen=True)
class InitStrategy:
    name: str
    start: Callable[[StartContext, int, int], Start]
    masked: bool = True  # False: no mask, so it runs once per seed at level 0 rather than at every level
    needs_target_search: bool = False  # True: runs after IMP on the target has finished

    @property
    def doc(self) -> str:
        return " ".join((self.start.__doc__ or "").split())


INITS: Registry[InitStrategy] = Registry("initialization strategy")


def strategy(name: str, masked: bool = True, needs_target_search: bool = False):
    def deco(fn: Callable[[StartContext, int, int], Start]) -> Callable[[StartContext, int, int], Start]:
        INITS.register(name, InitStrategy(name, fn, masked, needs_target_search))
        return fn

    return deco


@strategy("ticket")
def ticket(ctx: StartContext, level: int, seed: int) -> Start:
    """The source mask with the ticket's own initialization θk (the rewind point it was found with): the lottery
    ticket itself, transferred."""
    return Start(ctx.ticket.rewind_state(), ctx.ticket.mask(level))


@strategy("random-reinit")
def random_reinit(ctx: StartContext, level: int, seed: int) -> Start:
    """The source mask with a fresh random initialization (the same one `dense` starts from for this seed): does
    the ticket's initialization matter, or only its mask?"""
    return Start(ctx.fresh_state(seed), ctx.ticket.mask(level))


@strategy("finetune")
def finetune(ctx: StartContext, level: int, seed: int) -> Start:
    """The source mask with the weights the ticket's round reached on the source domain: sparse fine-tuning."""
    return Start(ctx.ticket.trained_state(level), ctx.ticket.mask(level))


@strategy("random-mask")
def random_mask(ctx: StartContext, level: int, seed: int) -> Start:
    """A random mask with exactly the source mask's per-layer counts, with θk: does the mask itself carry anything?
    (For a neuron-granularity ticket: the same number of whole units per layer, chosen at random.)"""
    import torch

    from ticketpack.pruning.mask import random_like

    gen = torch.Generator().manual_seed(ctx.seed_for("random-mask", level, seed))
    mask = ctx.ticket.mask(level)
    if ctx.ticket.granularity == "neuron":
        from ticketpack.pruning.structure import shuffle_units

        return Start(ctx.ticket.rewind_state(), shuffle_units(mask, ctx.structure(), gen))
    return Start(ctx.ticket.rewind_state(), random_like(mask, gen))


@strategy("dense", masked=False)
def dense(ctx: StartContext, level: int, seed: int) -> Start:
    """No mask: the full network from a fresh random initialization, trained on the target: the reference accuracy."""
    return Start(ctx.fresh_state(seed), None)


@strategy("target-ticket", needs_target_search=True)
def target_ticket(ctx: StartContext, level: int, seed: int) -> Start:
    """A ticket found by IMP directly on the target (same model, pruning, training and θ0 as the source ticket), at
    its round nearest in weights remaining, from its own θk: the upper reference a transferred ticket is held to."""
    found = ctx.target_ticket()
    want = ctx.ticket.record(level).weights_remaining
    rec = min(found.manifest.rounds, key=lambda r: (abs(r.weights_remaining - want), r.round))
    return Start(found.rewind_state(), found.mask(rec.round), target_round=rec.round)
