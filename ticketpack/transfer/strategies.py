"""Initialization strategies at transfer time (Desai, Zhan & Aly 2019): where the weights start, and which mask
holds them, when a model is re-trained on the target domain.

Each strategy is a small :class:`InitStrategy` class registered in :data:`INITS` under its name: its ``start(ctx,
level, seed) -> Start`` method, its properties (``masked``, ``needs_target_search``), which the job grid reads
instead of names, and its docstring, the documentation users see (``ticketpack list inits``). ``ctx`` is a
:class:`StartContext` (the ticket, the derived seeds, a fresh random initialization, the target ticket), which
:class:`ticketpack.transfer.jobs.JobContext` provides. Every strategy of one seed index trains on the same data order,
so strategies are compared pairwise, and ``dense`` and ``random-reinit`` share their fresh initialization.

Adding a strategy is one registered class here.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from ticketpack.core.registry import Registry

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


class InitStrategy(BaseModel):
    """Where the jobs of one initialization strategy start; its fields, if any, are its options."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    masked: ClassVar[bool] = True  # False: no mask, so it runs once per seed at level 0 rather than at every level
    needs_target_search: ClassVar[bool] = False  # True: runs after IMP on the target has finished

    @abstractmethod
    def start(self, ctx: StartContext, level: int, seed: int) -> Start:
        """The weights and mask of the job at ticket round ``level`` and seed index ``seed``."""


INITS: Registry[type[InitStrategy]] = Registry("initialization strategy")


@INITS("ticket")
class TicketInit(InitStrategy):
    """The source mask with the ticket's own initialization θk (the rewind point it was found with): the lottery
    ticket itself, transferred."""

    def start(self, ctx: StartContext, level: int, seed: int) -> Start:
        return Start(ctx.ticket.rewind_state(), ctx.ticket.mask(level))


@INITS("finetune")
class Finetune(InitStrategy):
    """The source mask with the weights the ticket's round reached on the source domain: sparse fine-tuning."""

    def start(self, ctx: StartContext, level: int, seed: int) -> Start:
        return Start(ctx.ticket.trained_state(level), ctx.ticket.mask(level))


@INITS("random-reinit")
class RandomReinit(InitStrategy):
    """The source mask with a fresh random initialization (the same one `dense` starts from for this seed): does
    the ticket's initialization matter, or only its mask?"""

    def start(self, ctx: StartContext, level: int, seed: int) -> Start:
        return Start(ctx.fresh_state(seed), ctx.ticket.mask(level))


@INITS("random-mask")
class RandomMask(InitStrategy):
    """A random mask with exactly the source mask's per-layer counts, with θk: does the mask itself carry anything?
    (For a neuron-granularity ticket: the same number of whole units per layer, chosen at random.)"""

    def start(self, ctx: StartContext, level: int, seed: int) -> Start:
        import torch

        from ticketpack.pruning.granularity import get_granularity

        gen = torch.Generator().manual_seed(ctx.seed_for("random-mask", level, seed))
        granularity = get_granularity(ctx.ticket.granularity)
        mask, state = ctx.ticket.mask(level), ctx.ticket.rewind_state()
        structure = ctx.structure() if granularity.needs_structure else None
        return Start(state, granularity.random_like(mask, structure, gen))


@INITS("target-ticket")
class TargetTicket(InitStrategy):
    """A ticket found by IMP directly on the target (same model, pruning, training and θ0 as the source ticket), at
    its round nearest in weights remaining, from its own θk: the upper reference a transferred ticket is held to."""

    needs_target_search = True

    def start(self, ctx: StartContext, level: int, seed: int) -> Start:
        found = ctx.target_ticket()
        want = ctx.ticket.record(level).weights_remaining
        rec = min(found.manifest.rounds, key=lambda r: (abs(r.weights_remaining - want), r.round))
        return Start(found.rewind_state(), found.mask(rec.round), target_round=rec.round)


@INITS("dense")
class Dense(InitStrategy):
    """No mask: the full network from a fresh random initialization, trained on the target: the reference accuracy."""

    masked = False

    def start(self, ctx: StartContext, level: int, seed: int) -> Start:
        return Start(ctx.fresh_state(seed), None)


def ordered(names) -> list[str]:
    """``names`` in the one order every table and plot uses: the order strategies are registered in (the
    transferred ticket, its alternatives, the references), then any unknown ones as given."""
    rank = {name: i for i, name in enumerate(INITS.in_order())}
    return sorted(dict.fromkeys(names), key=lambda n: rank.get(n, len(rank)))
