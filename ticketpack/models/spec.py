"""``ModelSpec``: a model by registry name plus options (torch-free, so model cards can carry it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelSpec(BaseModel):
    """A model by registry name plus its width options, e.g. ``lenet-300-100`` with ``{"hidden": [300, 100]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry name of the architecture (see `ticketpack.models.names()`).")
    options: dict[str, Any] = Field(default_factory=dict, description="Width/shape options of the architecture.")
