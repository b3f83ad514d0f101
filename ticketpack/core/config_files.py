"""Read ``--config`` files (TOML, YAML or JSON) into a pydantic model, with command-line flags taking precedence.

A key the model does not have is named with the nearest valid dotted key (``rounds`` → ``prune.rounds``), and a
value the model refuses is named by where it came from: the flag that gave it, or the file.
"""

from __future__ import annotations

import difflib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ticketpack.core.errors import FieldError, TicketpackError

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
            raise TicketpackError(f"config {path} does not parse: {_yaml_problem(exc)}") from None
        raise
    if not isinstance(data, dict):
        raise TicketpackError(f"config {path} must hold a mapping of options")
    return data


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's error as one line: what is wrong, and where (line and column, 1-based)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def with_overrides(cls: type[M], config: M | None, overrides: dict[str, Any], what: str) -> M:
    """The config a stage runs with: ``config`` (``cls()``'s defaults when None) with ``overrides`` of its fields,
    validated by pydantic (``export_model(src, out, config, level=3)``: the override wins). A name that is not a field
    of ``cls``, or a value it refuses, is a one-line :class:`FieldError` naming the field."""
    if config is not None and not isinstance(config, cls):
        raise FieldError(f"{what}: `config` must be a {cls.__name__}, not {type(config).__name__}", fields=["config"])
    if not overrides:
        return config if config is not None else _validated(cls, {}, what)
    fields = type(config).model_fields if config is not None else cls.model_fields
    for name in overrides:
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise FieldError(f"{what}: `{name}` is not an option{hint}; the {cls.__name__} fields are: "
                             f"{', '.join(fields)}", fields=[name])
    base = config.model_dump(exclude_unset=True) if config is not None else {}
    return _validated(type(config) if config is not None else cls, {**base, **overrides}, what)


def _validated(cls: type[M], data: dict[str, Any], what: str) -> M:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise FieldError(validation_message(exc, f"invalid {what} options"), fields=[name] if name else []) from None


def validation_message(exc: ValidationError, where: str) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {loc}: {first['msg']}{more}"


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``PruneConfig``, ``TextPreprocessing | None``), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := nested_model(a))]
        return models[0] if len(models) == 1 else None
    return None


def dotted_keys(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key a config file of ``cls`` may set, nested models spelled with dots: ``prune.rounds``."""
    keys = []
    for name, field in cls.model_fields.items():
        keys.append(prefix + name)
        if sub := nested_model(field.annotation):
            keys += dotted_keys(sub, f"{prefix}{name}.")
    return keys


def field_at(cls: type[BaseModel], key: str):
    """The pydantic ``FieldInfo`` at dotted ``key`` (KeyError when the model has no such key)."""
    *parents, leaf = key.split(".")
    for name in parents:
        cls = nested_model(cls.model_fields[name].annotation)
        if cls is None:
            raise KeyError(key)
    return cls.model_fields[leaf]


def unknown_keys(cls: type[BaseModel], data: dict, prefix: str = "") -> list[str]:
    """The dotted keys of ``data`` that ``cls`` does not have (nested mappings are walked along nested models)."""
    found = []
    for name, value in data.items():
        field = cls.model_fields.get(str(name))
        if field is None:
            found.append(f"{prefix}{name}")
        elif isinstance(value, dict) and (sub := nested_model(field.annotation)):
            found += unknown_keys(sub, value, f"{prefix}{name}.")
    return found


def suggest(key: str, valid: list[str]) -> str | None:
    """The valid key nearest ``key``: the same last segment elsewhere (``rounds`` → ``prune.rounds``), else the
    closest spelling of the whole key or of its last segment."""
    last = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in valid if k.rsplit(".", 1)[-1] == last]
    if same_leaf:
        return same_leaf[0]
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return close[0]
    leaves = {k.rsplit(".", 1)[-1]: k for k in reversed(valid)}
    close = difflib.get_close_matches(last, list(leaves), n=1)
    return leaves[close[0]] if close else None


def _unknown_key_message(cls: type[BaseModel], key: str, source: str) -> str:
    valid = dotted_keys(cls)
    near = suggest(key, valid)
    if near is not None:
        return f"{source}: unknown key {key!r}; did you mean {near!r}?"
    if not valid:
        return f"{source}: unknown key {key!r}; this command has no config keys"
    parent = key.rpartition(".")[0]
    siblings = [k for k in valid if k.rpartition(".")[0] == parent]
    return f"{source}: unknown key {key!r}; valid keys{' under ' + parent if parent else ''}: {', '.join(siblings)}"


def build_config(cls: type[M], config_file: Path | None, overrides: dict[str, Any],
                 flags: dict[str, str] | None = None) -> M:
    """``cls`` from the file's mapping, then each non-None override at its dotted key (``train.lr``).

    ``flags`` names the flag of each key (``{"prune.rate": "--prune-rate"}``), so that a refused override or a
    missing value is reported as the user would type it.
    """
    data = read_mapping(config_file) if config_file else {}
    source = f"config {config_file}"
    if bad := unknown_keys(cls, data):
        raise TicketpackError(_unknown_key_message(cls, bad[0], source))
    given = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise TicketpackError(f"{source}: key {key!r} must be a mapping")
        node[leaf] = value
        given[dotted] = value
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise TicketpackError(_value_message(exc, given, flags or {}, source if config_file else None)) from None


def _value_message(exc: ValidationError, given: dict[str, Any], flags: dict[str, str], source: str | None) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    flag = next((flags[k] for k in given if k in flags and (key == k or key.startswith(k + "."))), None)
    if flag is not None:
        return f"{flag} ({key}): {first['msg']}{more}"
    if first["type"] == "missing" and key in flags:
        return f"{flags[key]} is required (or `{key}` in a --config file){more}"
    return f"{source or 'invalid options'}: {key or '(top level)'}: {first['msg']}{more}"
