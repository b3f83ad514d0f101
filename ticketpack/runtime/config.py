"""What `ticketpack validate` is asked to do: the pydantic model behind its flags and ``--config`` files."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ValidateConfig(BaseModel):
    """Which checks `ticketpack validate` requires besides the ones every exported model must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strict: bool = Field(False, description="Also require a PyTorch parity check recorded within its tolerance.")
    verify: Path | None = Field(
        None, description="Public key (PEM, elliptic curve): the file must verify against its signature, <model>.sig, "
        "written by `ticketpack export --sign` (needs the sign extra)."
    )
