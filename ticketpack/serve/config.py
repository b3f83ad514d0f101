"""``ServeConfig``: what `ticketpack serve` serves and how. Needs only pydantic, so it loads without the `serve` extra."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ticketpack.core.errors import TicketpackError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SERVE_EXTRA_HINT = "pip install 'ticketpack[serve]'"
_EXTRA_MODULES = {"fastapi", "starlette", "uvicorn", "prometheus_client", "anyio", "h11"}

# How `serve --workers N` hands its settings to the worker processes (ticketpack.serve.worker): uvicorn takes the app
# as an import string and its workers inherit the environment, so these are set while uvicorn runs, then restored.
CONFIG_ENV = "TICKETPACK_SERVE_CONFIG"  # the ServeConfig, as JSON
PARENT_ENV = "TICKETPACK_SERVE_PARENT"  # the pid of `serve`, which the workers die with
FAST_PATH_ENV = "TICKETPACK_SERVE_FAST_PATH"  # "0": every predict request through the FastAPI route


class ModelSource(BaseModel):
    """One served model: the name in its URL and the exported ONNX file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(description="Name in /v1/models/{name}/predict: letters, digits, '.', '_', '-'.")
    path: Path = Field(description="Exported ticketpack ONNX file.")

    @field_validator("name")
    @classmethod
    def _url_safe(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError(f"model name {v!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return v

    @classmethod
    def parse(cls, spec: str) -> "ModelSource":
        """``path/to/model.onnx`` (name = file stem) or ``name=path/to/model.onnx``."""
        name, sep, rest = spec.partition("=")
        if sep and NAME_RE.fullmatch(name) and not Path(spec).exists():
            return cls(name=name, path=Path(rest))
        path = Path(spec)
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).lstrip("._-") or "model"
        return cls(name=stem, path=path)


class ServeConfig(BaseModel):
    """Options of the HTTP inference server (`ticketpack serve`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    models: list[ModelSource] = Field(min_length=1, description="Models to serve; names must be distinct.")
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 for all).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(1, ge=1, le=64, description="Server processes; each holds its own ONNX Runtime sessions.")
    max_batch: int = Field(256, ge=1, le=100_000, description="Most inputs in one request (more: 413).")
    max_text_chars: int = Field(
        32_768, ge=1, description="Longest text input in characters (longer: 413). The default is over 1.5 "
        "times the longest review in the shared review data, 21,217 characters (bench/text_lengths.py)."
    )
    threads: int = Field(1, ge=1, le=256, description="ONNX Runtime intra-op threads per inference run.")
    provider: Literal["auto", "cpu", "cuda"] = Field("auto", description="ONNX Runtime execution provider.")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="On SIGTERM, how long in-flight requests may take to finish.")
    access_log: bool = Field(True, description="Log one line per request (stderr).")
    verify: Path | None = Field(
        None, description="Public key (PEM, elliptic curve): refuse to start unless every model verifies against its "
        "signature, <model>.sig, written by `ticketpack export --sign` (needs the sign extra)."
    )

    @field_validator("models")
    @classmethod
    def _distinct(cls, v: list[ModelSource]) -> list[ModelSource]:
        seen: dict[str, Path] = {}
        for m in v:
            if m.name in seen:
                raise ValueError(
                    f"two models are named {m.name!r} ({seen[m.name]} and {m.path}); name one with name=path"
                )
            seen[m.name] = m.path
        return v


def require_serve_extra() -> None:
    """Raise a :class:`TicketpackError` naming the pip command when the `serve` extra is not installed."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _EXTRA_MODULES:
            raise
        raise TicketpackError(
            f"`ticketpack serve` needs the serve extra ({exc.name} is not installed): {SERVE_EXTRA_HINT}"
        ) from None
