"""What `ticketpack transfer` is asked to do: one pydantic model shared by CLI flags, ``--config`` files and
the run's ``plan.json``."""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from ticketpack.training.config import TrainConfig

DEFAULT_INITS = ("ticket", "random-reinit", "finetune", "random-mask", "dense")
_LEVEL = re.compile(r"^\s*(\d+|\d+(\.\d+)?%)\s*$")


class _TrainOverrides(BaseModel):
    """Training options that replace the ticket's own: every field of the training config, each optional; unset
    ones keep the ticket's values."""

    # The fields are TrainConfig's, made from them below (:func:`_overrides_of`): one added to TrainConfig can be
    # overridden at once, with its own type, bounds and description.

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def apply(self, base: TrainConfig) -> TrainConfig:
        update = self.model_dump(exclude_none=True)
        if "epochs" in update and "iterations" not in update:
            update["iterations"] = None  # an explicit epoch count wins over the ticket's step count
        return TrainConfig.model_validate({**base.model_dump(), **update})


def _overrides_of(model: type[BaseModel]) -> dict[str, Any]:
    """Each field of ``model`` as an optional one: the same type, bounds and description, default None (unset)."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation if _allows_none(field.annotation) else field.annotation | None
        if field.metadata:
            annotation = Annotated[annotation, *field.metadata]
        fields[name] = (annotation, Field(None, description=field.description))
    return fields


def _allows_none(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


TrainOverrides = create_model(
    "TrainOverrides", __base__=_TrainOverrides, __module__=__name__, __doc__=_TrainOverrides.__doc__,
    **_overrides_of(TrainConfig),
)


class TransferConfig(BaseModel):
    """A transfer grid: a ticket, a target domain, initialization strategies × levels × seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ticket: str = Field(description="Ticket directory written by `ticketpack search`.")
    target: str = Field(description="Target domain to re-train in (may equal the ticket's source domain).")
    dataset: str | None = Field(
        None, description="Dataset holding the target domain (default: the ticket's); must share its preprocessing and labels."
    )
    inits: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INITS),
        description="Initialization strategies: ticket, random-reinit, finetune, random-mask, dense, target-ticket.",
    )
    levels: list[int | str] | None = Field(
        None, description="Ticket rounds (3) or weights-remaining levels (20%, nearest round); default: every pruned round."
    )
    seeds: int = Field(3, ge=1, le=100, description="Seeds per (level, strategy): seed indices 0..N-1.")
    train: TrainOverrides = Field(default_factory=TrainOverrides, description="Training options (default: the ticket's).")
    seed: int = Field(0, ge=0, description="Base seed every job's seeds are derived from.")
    threads: int = Field(1, ge=1, description="Torch CPU threads per job (1: run jobs side by side instead).")
    target_ticket: str | None = Field(
        None, description="For `target-ticket`: a ticket already found on the target by the search it would run (same "
        "model, recipe, pruning and seed, e.g. that domain's own ticket in a study over several domains), reused "
        "instead of searching again.",
    )
    keep_weights: bool = Field(
        True, description="Write each job's trained weights and mask (what `ticketpack export` takes from a run); "
        "off, a job writes only its result (with the mask's digest): ~2x the model's size less per job.",
    )
    allow_changed_model: bool = Field(
        False, description="Build the model even if its factory's source file changed since the ticket search."
    )

    @field_validator("inits")
    @classmethod
    def _known_inits(cls, value: list[str]) -> list[str]:
        from ticketpack.transfer.strategies import INITS

        if not value:
            raise ValueError("at least one initialization strategy is needed")
        for name in value:
            INITS.get(name)  # an unknown name lists the known ones
        return list(dict.fromkeys(value))

    @field_validator("levels")
    @classmethod
    def _level_syntax(cls, value: list[int | str] | None) -> list[int | str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one level, or leave levels out for every pruned round")
        for level in value:
            if isinstance(level, int) and level < 0 or isinstance(level, str) and not _LEVEL.match(level):
                raise ValueError(f"level {level!r} is neither a round number nor a percentage like 20%")
            if (why := level_error(level)) is not None:
                raise ValueError(why)
        return value


def level_error(level: int | str) -> str | None:
    """Why ``level`` (a round number or a weights-remaining percentage) is out of range, or None: a percentage must
    lie in (0, 100], since no ticket keeps more than all of its weights or none of them."""
    text = str(level).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            return f"level {text!r} is neither a round number nor a percentage like 20%"
        if not 0 < pct <= 100:
            return f"level {text!r}: a weights-remaining percentage must be above 0% and at most 100%"
    return None
