"""``ModelSpec``: which model to build, by reference plus options (torch-free, so cards and manifests carry it).

A reference is one of
- a registry name (``lenet-300-100``; ``ticketpack list models`` shows them),
- ``path/to/file.py:factory`` (a file of the user's own, imported from that path),
- ``package.module:factory`` (an importable module).

Reading a spec imports nothing: only building the model (``ticketpack.models.build``) runs the factory, which is
the user's own code.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelSpec(BaseModel):
    """A model by reference plus its options, e.g. ``lenet-300-100`` with ``{"hidden": [300, 100]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="Registry name, `path/to/file.py:factory` or `package.module:factory`. The factory is called as "
        "factory(input_shape=..., num_classes=..., [vocab_size=...,] **options) and returns a torch.nn.Module."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword options passed to the factory.")

    @property
    def is_reference(self) -> bool:
        """True for ``file.py:factory`` / ``module:factory``; False for a registry name."""
        return ":" in self.name


class ModelSource(BaseModel):
    """Where a model's code came from when it was built, so a later command can tell that it changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str = Field(description="The model reference as given (registry name or file/module:factory).")
    file: str | None = Field(None, description="Source file of the factory (absolute path when it was built).")
    sha256: str | None = Field(None, description="sha256 of that source file's bytes.")
