"""Read ``--config`` files (TOML or YAML) into a pydantic model, with command-line flags taking precedence."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ticketpack.errors import TicketpackError

M = TypeVar("M", bound=BaseModel)


def read_mapping(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TicketpackError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise TicketpackError(f"config {path}: use a .toml, .yaml/.yml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise TicketpackError(f"config {path} does not parse: {exc}") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml eagerly
        if type(exc).__module__.startswith("yaml"):
            raise TicketpackError(f"config {path} does not parse: {exc}") from None
        raise
    if not isinstance(data, dict):
        raise TicketpackError(f"config {path} must hold a mapping of options")
    return data


def validation_message(exc: ValidationError, where: str) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {loc}: {first['msg']}{more}"


def build_config(cls: type[M], config_file: Path | None, overrides: dict[str, Any]) -> M:
    """``cls`` from the file's mapping, then each non-None override at its dotted key (``train.lr``)."""
    data = read_mapping(config_file) if config_file else {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise TicketpackError(f"config key {key!r} must be a mapping")
        node[leaf] = value
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise TicketpackError(validation_message(exc, "invalid options")) from None
