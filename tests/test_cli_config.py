"""Every command's flags against its pydantic config: each config-backed flag names a field of the config, every
other flag is on a short list, every command reads `--config FILE`, and a wrong key in a file names the right one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.config_files import build_config, dotted_keys, field_at, suggest

runner = CliRunner()
GROUP = typer.main.get_command(app)

# The flags that set nothing in a config file: what to read and write, how to run, how to print.
NOT_CONFIG = {
    "search": {"out_dir", "resume", "force", "json_out"},
    "transfer": {"out_dir", "jobs", "executor", "ray_address", "ray_timeout", "gpus_per_job", "resume", "force", "json_out"},
    "report": {"run_dir", "json_out"},
    "export": {"source", "out_path", "force", "sign", "json_out"},
    "evaluate": {"model", "report_path", "json_out", "verbose"},
    "validate": {"model", "json_out"},
    "predict": {"model", "texts", "input_file", "json_out"},
    "serve": {"verbose"},
    "demo": {"out_dir", "json_out"},
    "list": {"json_out"},
}
# What each command needs on its command line to get as far as reading its config (no file is opened before that).
REQUIRED = {
    "search": ["--out", "{tmp}/t"], "transfer": ["t", "--out", "{tmp}/r"], "report": ["r"],
    "export": ["t", "--out", "{tmp}/m.onnx"], "evaluate": ["m.onnx"], "validate": ["m.onnx"], "predict": ["m.onnx"],
    "serve": ["m.onnx"], "demo": ["--out", "{tmp}/demo"], "list": ["models"],
}


def _flags(name: str):
    return GROUP.commands[name].callback.config_flags


def test_every_command_is_listed_here():
    assert set(NOT_CONFIG) == set(GROUP.commands)


@pytest.mark.parametrize("name", sorted(NOT_CONFIG))
def test_every_flag_sets_a_config_field_or_is_listed_as_not_config(name):
    flags = _flags(name)
    model = flags.model()
    by_param = {f.param: f for f in flags.flags}
    for param in GROUP.commands[name].params:
        if param.name == "config":
            continue
        if param.name in by_param:
            field_at(model, by_param[param.name].key)  # KeyError: the flag names no field
        else:
            assert param.name in NOT_CONFIG[name], f"{name} {param.opts}: neither config-backed nor listed"


@pytest.mark.parametrize("name", sorted(NOT_CONFIG))
def test_help_shows_each_config_flags_field_description_and_key(name):
    flags = _flags(name)
    model = flags.model()
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    assert "--config" in result.output
    for f in flags.flags:
        assert f"[config: {f.key}" in result.output
        description = field_at(model, f.key).description
        assert description.split(".")[0][:40] in result.output, (f.name, description)


@pytest.mark.parametrize("name", ["", *sorted(NOT_CONFIG)])
def test_help_shows_no_value_placeholder_for_flags(name):
    result = runner.invoke(app, [name, "--help"] if name else ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output


@pytest.mark.parametrize("name", sorted(set(NOT_CONFIG) - {"serve"}))
def test_json_is_a_flag_everywhere(name):
    (param,) = [p for p in GROUP.commands[name].params if "--json" in p.opts]
    assert param.is_flag


def test_a_seed_flag_is_named_for_what_it_seeds():
    seeds = {name: {o for p in GROUP.commands[name].params for o in p.opts if "seed" in o} for name in NOT_CONFIG}
    assert seeds == {
        "search": {"--seed"}, "transfer": {"--seed", "--seeds"}, "demo": {"--seed"}, "export": {"--seed-index", "--calibration-seed"},
        "evaluate": {"--split-seed"}, "report": set(), "validate": set(), "predict": set(), "serve": set(),
        "list": set(),
    }
    for name in ("search", "transfer", "demo"):  # --seed is the command's root seed, the `seed` of its config
        assert any(f.decl == "--seed" and f.key == "seed" for f in _flags(name).flags)


@pytest.mark.parametrize("name", sorted(NOT_CONFIG))
def test_every_command_names_the_nearest_key_for_an_unknown_one(name, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("threds = 2\n")
    args = [a.format(tmp=tmp_path) for a in REQUIRED[name]]
    result = runner.invoke(app, [name, *args, "--config", str(cfg)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"config {cfg}: unknown key 'threds'" in message
    if "threads" in dotted_keys(_flags(name).model()):
        assert "did you mean 'threads'?" in message
    else:  # validate, report, list: nothing near, so the valid keys are listed
        assert "valid keys: " in message or "has no config keys" in message
    assert list(tmp_path.iterdir()) == [cfg]


def test_a_top_level_key_that_belongs_in_a_section_is_named_with_its_section(tmp_path):
    cfg = tmp_path / "search.toml"
    cfg.write_text("rounds = 3\n")
    result = runner.invoke(app, ["search", "--out", str(tmp_path / "t"), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "unknown key 'rounds'; did you mean 'prune.rounds'?" in " ".join(result.stderr.split())


@pytest.mark.parametrize("key,near", [("rounds", "prune.rounds"), ("prune.rouns", "prune.rounds"),
                                      ("trian.lr", "train.lr"), ("batchsize", "train.batch_size")])
def test_suggest_finds_the_nearest_dotted_key(key, near):
    from ticketpack.search.config import SearchConfig

    assert suggest(key, dotted_keys(SearchConfig)) == near


def test_a_bad_value_from_a_flag_names_the_flag_and_its_key(tmp_path):
    result = runner.invoke(app, ["search", "--out", str(tmp_path / "t"), "--prune-rate", "1.5"])
    assert result.exit_code == 2
    assert "--prune-rate (prune.rate): Input should be less than 1" in " ".join(result.stderr.split())


def test_a_bad_value_from_a_file_names_the_file(tmp_path):
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({"port": 70000}))
    result = runner.invoke(app, ["serve", "m.onnx", "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"config {cfg}: port: Input should be less than or equal to 65535" in " ".join(result.stderr.split())


def test_a_missing_required_key_names_its_flag(tmp_path):
    result = runner.invoke(app, ["transfer", "t", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "--target is required (or `target` in a --config file)" in result.stderr


def test_yaml_and_json_config_files_read_like_toml(tmp_path):
    from ticketpack.evaluate.config import EvaluateConfig

    (tmp_path / "e.yaml").write_text("split_seed: 3\ngates:\n  min_accuracy: 0.9\n")
    (tmp_path / "e.json").write_text('{"split_seed": 3, "gates": {"min_accuracy": 0.9}}')
    for name in ("e.yaml", "e.json"):
        cfg = build_config(EvaluateConfig, tmp_path / name, {"gates.max_size_mb": 1.0})
        assert (cfg.split_seed, cfg.gates.min_accuracy, cfg.gates.max_size_mb) == (3, 0.9, 1.0)


def test_flags_win_over_the_config_file(tmp_path):
    cfg = tmp_path / "validate.toml"
    cfg.write_text("strict = false\n")
    flags = _flags("validate")
    assert flags.build(cfg, {"strict": True, "verify": None}).strict is True
    assert flags.build(cfg, {"strict": None, "verify": None}).strict is False
    cfg.write_text('strict = false\nverify = "from-file.pem"\n')
    assert flags.build(cfg, {"strict": None, "verify": None}).verify == Path("from-file.pem")
    assert flags.build(cfg, {"strict": None, "verify": Path("flag.pem")}).verify == Path("flag.pem")
