"""Flags that set a command's pydantic config: one table per command (flag → dotted config key) from which the
command's parameters, their help and the config itself are made, so a flag and a config key cannot disagree.

    FLAGS = ConfigFlags("ticketpack.search.config:SearchConfig", Flag("--rounds", "prune.rounds", int), ...)

    @FLAGS.command
    def search_cmd(cfg, out_dir: ..., force: ...) -> None: ...

The command gets the table's flags and ``--config FILE`` besides its own parameters, and is called with ``cfg``, the
config built from the file and the flags given (flags win). A flag's help is its config field's description, key,
bounds and default, and its shell completion the field's fixed values (a ``Literal``), all read only when help is
shown or a value completed: importing a config may import torch, which the runtime-only install does not have (so
a flag writes its value type; tests/test_options.py holds it to the field's). The option reference, docs/options.md,
is written from the same tables (:mod:`ticketpack.cli.reference`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from rich.markup import escape

from ticketpack.core.config_files import build_config, field_at, nested_model
from ticketpack.core.errors import TicketpackError

PANEL = "Config: these flags, or their keys in a --config FILE"
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", rich_help_panel=PANEL, help=escape(
    "TOML, YAML or JSON file of this command's config keys, each flag's [config: key] (prune.rounds: `rounds` in a "
    "[prune] table); flags win."))]


@dataclass(frozen=True)
class Flag:
    """``--prune-rate`` sets ``prune.rate``: its value on the command line has ``type``; ``parse`` turns it into the
    config's value (comma-separated lists, JSON objects) and raises ValueError for one it cannot read."""

    decl: str  # "--prune-rate", "--access-log/--no-access-log", or an argument's name
    key: str
    type: Any = str
    parse: Callable[[Any], Any] | None = None
    metavar: str | None = None  # how help shows a value that parse reads: "JSON", "A,B,..."
    argument: bool = False

    @property
    def param(self) -> str:
        return self.decl.split("/")[0].lstrip("-").replace("-", "_")

    @property
    def name(self) -> str:
        return self.decl.upper() if self.argument else self.decl.split("/")[0]

    def parameter(self, complete: Callable[[str], list[str]] | None = None) -> inspect.Parameter:
        info = (typer.Argument(show_default=False, metavar=self.metavar) if self.argument
                else typer.Option(self.decl, metavar=self.metavar, rich_help_panel=PANEL, autocompletion=complete))
        return inspect.Parameter(self.param, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=Annotated[Optional[self.type], info])


class ConfigFlags:
    """The config-backed flags of one command and the config model (``"module:Model"``, imported when needed)."""

    def __init__(self, model: str, *flags: Flag, default_notes: dict[str, str] | None = None) -> None:
        self.model_ref = model
        self.flags = flags
        # key prefix → how help shows the default of its keys: "{}, or the model's recipe" (search: a model's recipe
        # replaces TrainConfig's defaults; unset ones stay unshown), or a text in place of it ("the ticket's": unset
        # keys of transfer's TrainOverrides keep the ticket's recipe)
        self.default_notes = default_notes or {}

    def model(self) -> type[BaseModel]:
        module, name = self.model_ref.split(":")
        return getattr(importlib.import_module(module), name)

    def command(self, fn: Callable) -> Callable:
        """``fn(cfg, **own)`` (or ``fn(**own)``) as a typer callback taking ``fn``'s own parameters, the flags and
        ``--config``."""
        params = inspect.signature(fn).parameters
        own = [_evaluated(p, fn.__globals__) for p in params.values() if p.name != "cfg"]
        config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt)
        arguments = [f.parameter() for f in self.flags if f.argument]
        options = [f.parameter(self.completer(f) if f.type is str and not f.parse else None)
                   for f in self.flags if not f.argument]

        def callback(**kwargs):
            values = {f.param: kwargs.pop(f.param) for f in self.flags}
            cfg = self.build(kwargs.pop("config"), values)  # checked even where fn has no use for it (report)
            return fn(cfg, **kwargs) if "cfg" in params else fn(**kwargs)

        # not __annotations__: they name the config class, which this module does not import
        functools.update_wrapper(callback, fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        callback.__signature__ = inspect.Signature(  # keyword-only: typer passes keywords, in any order
            [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in arguments + own + options + [config]])
        callback.config_flags = self
        return callback

    def completer(self, flag: Flag) -> Callable[[str], list[str]]:
        """Shell completion of ``flag``'s values: its field's choices (``--optimizer``: sgd, adam, adamw), read when
        completing; none for a free value, or where the config cannot be imported (a runtime-only install)."""

        def complete(incomplete: str) -> list[str]:
            try:
                annotation = field_at(self.model(), flag.key).annotation
            except ImportError:
                return []
            return [c for c in choices(annotation) if c.startswith(incomplete)]

        return complete

    def build(self, config_file: Path | None, values: dict[str, Any]) -> BaseModel:
        """The config from ``config_file`` and the flags given (``values`` by parameter name; None: not given)."""
        overrides = {}
        for f in self.flags:
            value = values[f.param]
            if value is None or isinstance(value, (list, tuple)) and not value:
                continue
            try:
                overrides[f.key] = f.parse(value) if f.parse else value
            except ValueError as exc:
                raise TicketpackError(f"{f.name}: {exc}") from None
        return build_config(self.model(), config_file, overrides, flags={f.key: f.name for f in self.flags})

    def describe(self, params: list) -> None:
        """Set each config-backed parameter's help to its field's description, its [key] and default."""
        model = self.model()
        by_param = {f.param: f for f in self.flags}
        for p in params:
            if (f := by_param.get(p.name)) is not None:
                p.help = self.help_text(model, f.key)

    def help_text(self, model: type[BaseModel], key: str) -> str:
        """``Fraction of … each round. [config: prune.rate] [0<x<1] [default: 0.2]``, escaped for rich."""
        f = next(f for f in self.flags if f.key == key)
        field = field_at(model, key)
        marks = [f"[config: {key}]"]
        if bounds := bounds_text(field):
            marks.append(f"[{bounds}]")
        if (default := self.default_text(model, f)) is not None:
            marks.append("[required]" if default is REQUIRED else f"[default: {default}]")
        return escape(" ".join([field.description or "", *marks]).strip())

    def default_text(self, model: type[BaseModel], flag: Flag) -> str | object | None:
        """The default of ``flag``'s field as the user would type it (``0.2``, ``no-train-dense``, ``a,b``), as the
        note of its key says (``adam, or the model's recipe``); :data:`REQUIRED`; or None: unset, its description
        says what that means (``--threads``: torch's choice)."""
        value = default_at(model, flag.key)
        if value is PydanticUndefined:
            return REQUIRED
        shown = _typed(value, flag)
        note = next((n for prefix, n in self.default_notes.items() if flag.key.startswith(prefix)), None)
        if note is None or "{}" in note and shown is None:
            return shown
        return note.format(shown)


def choices(annotation: Any) -> list[str]:
    """The values a ``Literal`` (or optional ``Literal``) annotation allows, as typed; [] for any other type."""
    if typing.get_origin(annotation) is Literal:
        return [str(a) for a in typing.get_args(annotation)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [c for a in typing.get_args(annotation) for c in choices(a)]
    return []


REQUIRED = object()  # a field without a default: the flag (or its --config key) must be given


def default_at(model: type[BaseModel], key: str) -> Any:
    """The default at dotted ``key`` of ``model``: a nested key is read from its parent's default when that is an
    instance (``model.name`` of SearchConfig: ``auto``), else from the nested model's field; PydanticUndefined for
    a required field."""
    *parents, leaf = key.split(".")
    cls, holder = model, None
    for name in parents:
        field = cls.model_fields[name]
        value = getattr(holder, name) if holder is not None else _field_default(field)
        cls = nested_model(field.annotation)
        holder = value if isinstance(value, BaseModel) else None
    return getattr(holder, leaf) if holder is not None else _field_default(cls.model_fields[leaf])


def _field_default(field) -> Any:
    return PydanticUndefined if field.is_required() else field.get_default(call_default_factory=True)


def _typed(value: Any, flag: Flag) -> str | None:
    """``value`` as it would be typed for ``flag``; None where nothing is worth showing (unset, empty, an off
    switch that has no --no- form)."""
    if value is None:
        return None
    if isinstance(value, bool):
        on, _, off = flag.decl.partition("/")
        if off:
            return (on if value else off).lstrip("-")
        return "on" if value else None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or None
    if isinstance(value, dict):
        return json.dumps(value) if value else None
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return str(value)


def bounds_text(field) -> str:
    """The field's numeric bounds as click writes a range: ``x>=1``, ``0<x<1``, ``0<=x<=64``; empty for none."""
    low = high = None
    for m in field.metadata:
        for attr, op in (("ge", "<="), ("gt", "<"), ("le", "<="), ("lt", "<")):
            if (bound := getattr(m, attr, None)) is not None:
                if attr in ("ge", "gt"):
                    low = (bound, op)
                else:
                    high = (bound, op)
    if low and high:
        return f"{low[0]}{low[1]}x{high[1]}{high[0]}"
    if low:
        return f"x{'>=' if low[1] == '<=' else '>'}{low[0]}"
    return f"x{high[1]}{high[0]}" if high else ""


def _evaluated(p: inspect.Parameter, namespace: dict) -> inspect.Parameter:
    """``p`` with its annotation evaluated (modules here use ``from __future__ import annotations``)."""
    return p.replace(annotation=eval(p.annotation, namespace)) if isinstance(p.annotation, str) else p


# The flags of a `train` table (every field of TrainConfig: a test holds them to it, and transfer's TrainOverrides
# is made from the same fields) and of how a run runs, shared by the commands whose configs have them (search,
# transfer). The value types are written here, not read from TrainConfig: importing it imports torch, which the CLI
# must not need to start (a test checks they agree).
TRAIN_FLAGS = (
    Flag("--epochs", "train.epochs", int),
    Flag("--iterations", "train.iterations", int),
    Flag("--patience", "train.patience", int),
    Flag("--lr", "train.lr", float),
    Flag("--optimizer", "train.optimizer"),
    Flag("--momentum", "train.momentum", float),
    Flag("--weight-decay", "train.weight_decay", float),
    Flag("--batch-size", "train.batch_size", int),
    Flag("--loader-workers", "train.loader_workers", int),
    Flag("--device", "train.device"),
    Flag("--precision", "train.precision"),
    Flag("--deterministic/--no-deterministic", "train.deterministic", bool),
    Flag("--schedule", "train.schedule"),
    Flag("--warmup-steps", "train.warmup_steps", int),
    Flag("--step-every", "train.step_every", int),
    Flag("--gamma", "train.gamma", float),
    Flag("--seed", "seed", int),
    Flag("--threads", "threads", int),
)


# Fields the library names that are no parameter of the command under that name: (command, field) → flag, or
# (None, field) for every command. Everything else maps by itself (below, :func:`flag_for`).
FIELD_FLAGS: dict[tuple[str | None, str], str] = {
    ("evaluate", "seed"): "--split-seed",  # evaluate_model(seed=...) is the split seed
    ("transfer", "ray_timeout_s"): "--ray-timeout",  # run_transfer(ray_timeout_s=...)
    ("transfer", "level"): "--levels",  # each of TransferConfig.levels, resolved against the ticket
}


def flag_for(command, field: str) -> str | None:
    """The flag (or argument, as help shows it: ``SOURCE``) of the click ``command`` that sets the library's
    ``field``: an argument's or config field's name, dotted for a nested config key (``prune.rate``). In order: the
    explicit :data:`FIELD_FLAGS`; the command's config-backed flag of that key (``seed`` → ``--seed-index``), or of
    the one key ending in ``.field``; the parameter of that name or flag (``out`` → ``--out``). None: no flag sets it.
    """
    name = getattr(command, "name", None)
    for key in ((name, field), (None, field)):
        if key in FIELD_FLAGS:
            return FIELD_FLAGS[key]
    table: ConfigFlags | None = getattr(getattr(command, "callback", None), "config_flags", None)
    if table is not None:
        for f in table.flags:
            if f.key == field:
                return f.name
        leaf = [f for f in table.flags if f.key.rsplit(".", 1)[-1] == field]
        if len(leaf) == 1:
            return leaf[0].name
    for p in getattr(command, "params", []):
        longs = [o for o in p.opts if o.startswith("--")]
        if p.name == field or any(o[2:].replace("-", "_") == field for o in longs):
            if getattr(p, "param_type_name", "") == "argument":
                return (p.metavar or p.name).upper()
            return longs[0] if longs else p.opts[0]
    return None


def to_flags(text: str, fields, command) -> str:
    """``text`` with each of the ``fields`` it names (in backticks: ```level```) as the flag of ``command`` that sets
    it (``--level``); a field no flag sets keeps its backticks (it is a key of a --config file)."""
    for name in fields:
        flag = flag_for(command, name)
        if flag is not None:
            text = text.replace(f"`{name}`", flag)
    return text


def in_flags(exc: Exception, command) -> str:
    """The message of ``exc`` (a :class:`~ticketpack.core.errors.TicketpackError`) in ``command``'s flags."""
    return to_flags(str(exc), getattr(exc, "fields", ()), command)
