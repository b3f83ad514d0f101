"""Options declared once, as config fields: `--help` shows each flag's default and bounds from its field, transfer's
TrainOverrides is made from TrainConfig's fields (patience included), the train flags cover every TrainConfig field,
a flag's value type agrees with its field, completion offers a field's choices, and docs/options.md is the
reference generated from all of it."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Literal

import pytest
import typer.main
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.cli.flags import TRAIN_FLAGS
from ticketpack.core.config_files import field_at
from ticketpack.core.errors import TicketpackError
from ticketpack.training.config import TrainConfig
from ticketpack.transfer.config import TrainOverrides, TransferConfig

runner = CliRunner()
GROUP = typer.main.get_command(app)
CONFIG_COMMANDS = sorted(name for name, c in GROUP.commands.items() if c.callback.config_flags.flags)
OPTION_COMMANDS = sorted(name for name, c in GROUP.commands.items()  # with a config-backed --flag
                         if any(not f.argument for f in c.callback.config_flags.flags))


def _help_lines(name: str) -> list[str]:
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "2000"})  # one line per option
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _row(lines: list[str], key: str) -> str:
    (row,) = [line for line in lines if f"[config: {key}]" in line]
    return row


@pytest.mark.parametrize("command, key, shown", [
    ("search", "prune.rate", "[0<x<1] [default: 0.2]"),
    ("search", "prune.rounds", "[0<=x<=100] [default: 5]"),
    ("search", "prune.granularity", "[default: weight]"),
    ("search", "train.lr", "[x>0] [default: 0.0012, or the model's recipe]"),
    ("search", "train_dense", "[default: no-train-dense]"),
    ("search", "dataset", "[default: digits]"),
    ("transfer", "train.patience", "[x>=1] [default: the ticket's]"),
    ("transfer", "keep_weights", "[default: keep-weights]"),
    ("transfer", "target", "[required]"),
    ("transfer", "inits", "[default: ticket,random-reinit,finetune,random-mask,dense]"),
    ("export", "opset", "[13<=x<=28] [default: 17]"),
    ("evaluate", "batch_sizes", "[default: 1,32,256]"),
    ("serve", "port", "[0<=x<=65535] [default: 8000]"),
])
def test_help_shows_a_flags_bounds_and_default_from_its_field(command, key, shown):
    assert _row(_help_lines(command), key).rstrip(" │").endswith(shown)


@pytest.mark.parametrize("name", OPTION_COMMANDS)
def test_help_shows_the_default_of_every_flag_whose_field_has_one(name):
    """A field with a value by default (not None, not an empty list, not an off switch) shows it in `--help`."""
    table = GROUP.commands[name].callback.config_flags
    model = table.model()
    lines = _help_lines(name)
    for f in table.flags:
        if f.argument:
            continue
        field = field_at(model, f.key)
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        plain = default not in (None, [], {}) and not (default is False and "/" not in f.decl)
        row = _row(lines, f.key)
        if f.key.startswith("model."):
            continue  # model.name: the default ModelSpec's (auto), checked above
        if field.is_required():
            assert "[required]" in row, row
        elif plain:
            assert f"[default: {default if not isinstance(default, (bool, list)) else ''}" in row, row
        elif not f.key.startswith("train.") or name != "transfer":  # transfer: unset train keys are the ticket's
            assert "[default: " not in row, row  # unset: the description says what that means


def test_search_help_shows_defaults_of_most_of_its_flags():
    """The issue: `search --help` showed the default of 1 of its 22 config flags."""
    lines = _help_lines("search")
    rows = [line for line in lines if "[config: " in line]
    with_default = [line for line in rows if "[default: " in line]
    assert len(rows) >= 37 and len(with_default) >= 20, (len(rows), len(with_default))


def test_train_flags_set_every_train_config_field():
    assert {f.key for f in TRAIN_FLAGS if f.key.startswith("train.")} == {f"train.{n}" for n in TrainConfig.model_fields}
    for command in ("search", "transfer"):
        keys = {f.key for f in GROUP.commands[command].callback.config_flags.flags}
        assert {f"train.{n}" for n in TrainConfig.model_fields} <= keys, command


def _base_types(annotation) -> set:
    """``int | None`` → {int}; ``Literal['a']`` → {str}; ``list[str]`` → {list[str]}."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_types(typing.get_args(annotation)[0])
    if origin is Literal:
        return {type(a) for a in typing.get_args(annotation)}
    if origin in (typing.Union, __import__("types").UnionType):
        return set().union(*(_base_types(a) for a in typing.get_args(annotation) if a is not type(None)))
    return {annotation}


@pytest.mark.parametrize("name", CONFIG_COMMANDS)
def test_a_flags_value_type_agrees_with_its_field(name):
    """Flags write their value type (reading the configs would import torch at start-up): it must be the field's."""
    table = GROUP.commands[name].callback.config_flags
    model = table.model()
    for f in table.flags:
        if f.parse is not None:
            continue  # parsed from text (JSON, comma lists) into the field's type, which the config then checks
        types = _base_types(field_at(model, f.key).annotation)
        assert f.type in types or f.type is str and (Path in types or int in types), (name, f.decl, f.type, types)


def _another_value(name: str, field):
    """A valid value of TrainConfig field ``name`` other than its default."""
    default = field.default
    annotation = field.annotation
    if typing.get_origin(annotation) is Literal:
        return next(c for c in typing.get_args(annotation) if c != default)
    types = _base_types(annotation)
    if bool in types:
        return not default
    if int in types:
        return 3 if default != 3 else 4
    if float in types:
        return default / 2 if default else 0.5
    if name == "device":
        return "cpu"
    raise AssertionError(f"TrainConfig.{name}: give this test a valid value of the new field's type")


@pytest.mark.parametrize("name", sorted(TrainConfig.model_fields))
def test_every_train_config_field_can_be_overridden_in_a_transfer(name):
    field = TrainConfig.model_fields[name]
    assert TrainOverrides.model_fields[name].default is None
    assert TrainOverrides.model_fields[name].description == field.description
    value = _another_value(name, field)
    assert getattr(TrainOverrides(**{name: value}).apply(TrainConfig()), name) == value
    assert TrainOverrides().apply(TrainConfig()) == TrainConfig()  # unset: the ticket's


def test_train_overrides_keep_their_fields_bounds():
    for bad in ({"patience": 0}, {"lr": 0}, {"gamma": 2}, {"device": "tpu"}, {"optimizer": "lion"}, {"loader_workers": 65}):
        with pytest.raises(ValueError):
            TrainOverrides(**bad)
    assert set(TrainOverrides.model_fields) == set(TrainConfig.model_fields)


def test_transfer_patience_flag_reaches_the_run(monkeypatch, tmp_path):
    seen = {}

    def fake_run_transfer(cfg, out, **kwargs):
        seen["cfg"] = cfg
        raise TicketpackError("stopped by the test")

    monkeypatch.setattr("ticketpack.transfer.run_transfer", fake_run_transfer)
    result = runner.invoke(app, ["transfer", str(tmp_path / "ticket"), "--target", "rot30", "--out",
                                 str(tmp_path / "run"), "--patience", "3", "--gamma", "0.5"])
    assert "stopped by the test" in result.output
    cfg: TransferConfig = seen["cfg"]
    assert (cfg.train.patience, cfg.train.gamma) == (3, 0.5)
    trained = cfg.train.apply(TrainConfig(epochs=7))
    assert (trained.patience, trained.gamma, trained.epochs) == (3, 0.5, 7)


def test_transfer_refuses_a_bad_patience_naming_the_flag(tmp_path):
    result = runner.invoke(app, ["transfer", str(tmp_path / "ticket"), "--target", "rot30", "--out",
                                 str(tmp_path / "run"), "--patience", "0"])
    assert result.exit_code == 2
    assert "--patience (train.patience)" in result.output


def _complete(words: str) -> list[str]:
    n = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_TICKETPACK_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(n)}
    result = runner.invoke(app, [], env=env, prog_name="ticketpack")
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_completion_offers_a_fields_choices():
    assert _complete("ticketpack search --optimizer ad") == ["adam", "adamw"]
    assert _complete("ticketpack export --route ") == ["torchscript", "dynamo", "auto"]
    assert _complete("ticketpack transfer t --precision ") == ["fp32", "bf16"]
    assert _complete("ticketpack search --dataset ") == []  # a free value: the shell's own (file) completion


def test_committed_option_reference_is_current():
    from ticketpack.cli.reference import DOC, reference_text

    assert DOC.exists(), f"missing {DOC}: run `python -m ticketpack.cli.reference`"
    assert DOC.read_text(encoding="utf-8") == reference_text(), f"{DOC} is stale: run `python -m ticketpack.cli.reference`"


def test_option_reference_lists_every_flag_of_every_command():
    from ticketpack.cli.reference import reference_text

    text = reference_text()
    for name, command in GROUP.commands.items():
        section = text.split(f"## ticketpack {name}\n", 1)[1].split("\n## ", 1)[0]
        for p in command.params:
            if p.name != "config" and getattr(p, "param_type_name", "") != "argument":
                assert f"`{p.opts[0]}`" in section, (name, p.opts)
    assert "| `--patience` | `train.patience` | int, x>=1 | `the ticket's` |" in text
