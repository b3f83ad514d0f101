"""The library speaks in the caller's terms (issue 26, item 6): a mistake in a library call names the argument or
config field the caller gave (`level`, `init_weights`, `gates.min_speedup`), never a command-line flag; the CLI, in
one place (ticketpack.cli.flags.flag_for), names the same mistake by the flag its user typed (--level)."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.errors import FieldError, GateFailed, TicketpackError, field

PACKAGE = Path(__file__).resolve().parents[1] / "ticketpack"
FLAG = re.compile(r"(?<![\w-])--[a-z]")
runner = CliRunner()


def _library_error(call) -> TicketpackError:
    with pytest.raises(TicketpackError) as caught:
        call()
    message = str(caught.value)
    assert not FLAG.search(message), f"a library error names a CLI flag: {message}"
    return caught.value


def _cli_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "`" not in line.split(":", 1)[1].split("(")[0], line
    return " ".join(line.split())


# ---------------------------------------------------------------- one mistake, both ways


def test_a_bad_export_level_names_the_field_in_the_library_and_the_flag_in_the_cli(digits_ticket, tmp_path):
    from ticketpack.export.exporter import export_model

    exc = _library_error(lambda: export_model(digits_ticket, tmp_path / "m.onnx", level=99))
    assert str(exc).startswith("`level` 99: this ticket has no round 99") and exc.fields == ("level",)
    line = _cli_error(["export", str(digits_ticket), "--out", str(tmp_path / "c.onnx"), "--level", "99"])
    assert line.startswith("error: --level 99: this ticket has no round 99; rounds: 0, 1, 2, 3"), line
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "c.onnx").exists()


def test_an_export_choice_that_does_not_fit_the_source_names_its_fields(digits_ticket, tmp_path):
    from ticketpack.export.exporter import export_model

    exc = _library_error(lambda: export_model(digits_ticket, tmp_path / "m.onnx", init="ticket"))
    assert "`init` chooses a job of a transfer run" in str(exc) and "leave out `init`" in str(exc)
    exc = _library_error(lambda: export_model(digits_ticket, tmp_path / "m.onnx", seed=5))
    assert "`seed` 5 does not match it" in str(exc)
    line = _cli_error(["export", str(digits_ticket), "--out", str(tmp_path / "c.onnx"), "--seed-index", "5"])
    assert "--seed-index 5 does not match it" in line  # export_model's `seed` is the command's --seed-index


def test_a_bad_init_weights_path_names_the_config_field_in_the_library_and_the_flag_in_the_cli(tmp_path):
    from conftest import tiny_config

    from ticketpack.search import search_ticket

    missing = tmp_path / "nope.safetensors"
    exc = _library_error(lambda: search_ticket(tiny_config(init_weights=str(missing)), tmp_path / "t"))
    assert str(exc) == f"`init_weights` {missing}: file not found" and exc.fields == ("init_weights",)
    line = _cli_error(["search", "--out", str(tmp_path / "c"), "--epochs", "1", "--rounds", "1", "--threads", "1",
                       "--init-weights", str(missing)])
    assert line == f"error: --init-weights {missing}: file not found"


def test_a_gate_that_cannot_be_checked_names_the_gate_field_in_the_library_and_the_flag_in_the_cli(exported_digits):
    from ticketpack.evaluate import Gates, evaluate_model

    exc = _library_error(lambda: evaluate_model(exported_digits, gates=Gates(min_speedup=2.0)))
    assert str(exc).startswith("`gates.min_speedup` needs `baseline`")
    assert exc.fields == ("gates.min_speedup", "baseline")
    exc = _library_error(lambda: evaluate_model(exported_digits, batch_sizes=[0]))
    assert str(exc).startswith("`batch_sizes` takes comma-separated positive integers")
    assert _cli_error(["evaluate", str(exported_digits), "--min-speedup", "2"]).startswith(
        "error: --min-speedup needs --baseline: a speed-up is measured against another model")
    assert _cli_error(["evaluate", str(exported_digits), "--batch-sizes", "0"]).startswith(
        "error: --batch-sizes takes comma-separated positive integers")


def test_an_output_path_names_its_field_and_the_cli_its_flag(digits_ticket, tmp_path):
    from ticketpack.core.fileio import check_output_dir, check_writable_file

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    exc = _library_error(lambda: check_output_dir(taken, resume=False, force=False, marker=taken / "plan.json",
                                                  what="transfer run"))
    assert str(exc) == f"`out` {taken} already exists; use `resume` to continue it or `force` to replace it"
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"")
    _library_error(lambda: check_writable_file(existing, "out", force=False))
    line = _cli_error(["export", str(digits_ticket), "--out", str(existing)])
    assert line == f"error: --out {existing} already exists; use --force to replace it"


# ---------------------------------------------------------------- the mapping, and the error type


def test_the_cli_maps_each_field_to_the_flag_of_the_command_that_runs():
    from ticketpack.cli.flags import flag_for

    commands = app_commands()
    expected = {
        ("export", "level"): "--level", ("export", "seed"): "--seed-index", ("export", "out"): "--out",
        ("export", "sign"): "--sign", ("export", "force"): "--force",
        ("search", "init_weights"): "--init-weights", ("search", "prune.rewind_iter"): "--rewind-iter",
        ("search", "train.precision"): "--precision", ("search", "resume"): "--resume",
        ("evaluate", "gates.max_accuracy_drop"): "--max-accuracy-drop", ("evaluate", "baseline"): "--baseline",
        ("evaluate", "seed"): "--split-seed", ("evaluate", "batch_sizes"): "--batch-sizes",
        ("evaluate", "report"): "--report",
        ("transfer", "ray_address"): "--ray-address", ("transfer", "ray_timeout_s"): "--ray-timeout",
        ("transfer", "level"): "--levels", ("transfer", "jobs"): "--jobs", ("transfer", "ticket"): "TICKET",
        ("predict", "input_file"): "--input", ("predict", "texts"): "TEXTS",
        ("serve", "port"): "--port", ("serve", "workers"): "--workers", ("validate", "verify"): "--verify",
    }
    got = {key: flag_for(commands[key[0]], key[1]) for key in expected}
    assert got == expected
    assert flag_for(commands["predict"], "gates.min_speedup") is None  # no such flag: the message keeps `the field`


def app_commands() -> dict:
    import typer

    group = typer.main.get_command(app)
    return dict(group.commands)


def test_a_field_error_lists_the_fields_it_names_and_keeps_them_across_processes():
    exc = FieldError(f"{field('level')} 7 is not below {field('prune.rate')}; see `ticketpack search --help`")
    assert exc.fields == ("level", "prune.rate")  # a backticked command is not a field
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is FieldError and str(again) == str(exc) and again.fields == exc.fields
    gate = pickle.loads(pickle.dumps(GateFailed("export without `quantize`", fields=["quantize"])))
    assert gate.fields == ("quantize",) and gate.exit_code == 1
    assert TicketpackError("plain").fields == ()


# ---------------------------------------------------------------- no flag in any library error


def _raised_text(node: ast.Call) -> str:
    """The literal text of an error's message (f-string pieces joined; interpolations as {})."""
    parts = []
    for arg in node.args:
        for sub in ast.walk(arg):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                parts.append(sub.value)
            elif isinstance(sub, ast.FormattedValue):
                parts.append("{}")
    return "".join(parts)


def test_no_error_raised_outside_the_cli_names_a_flag():
    """Every message of an error the library makes (TicketpackError, its subclasses) names fields, not flags; a
    command to run (`ticketpack transfer --resume`, in backticks) is advice, not a flag the caller gave."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name not in ("TicketpackError", "FieldError", "GateFailed"):
                continue
            text = re.sub(r"`ticketpack [^`]*`", "", _raised_text(node))
            if FLAG.search(text):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {text[:100]}")
    assert not offenders, "\n".join(offenders)
