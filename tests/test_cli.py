"""The command line as a whole: shell completion, and commands that leave the caller's process as they found it."""

from __future__ import annotations

import os
import socket

import pytest
from typer.testing import CliRunner

from ticketpack.cli.app import app

runner = CliRunner()


def _complete(words: str) -> list[str]:
    """What the bash completion script (`ticketpack --show-completion`) gets back for the words typed so far."""
    env = {"_TICKETPACK_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    result = runner.invoke(app, [], env=env, prog_name="ticketpack")
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_help_offers_to_install_shell_completion():
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_completion_knows_the_commands_and_their_config_flags():
    assert _complete("ticketpack ev") == ["evaluate"]
    assert _complete("ticketpack search --prune-r") == ["--prune-rate"]
    assert "--split-seed" in _complete("ticketpack evaluate --s")


def test_serve_with_several_workers_restores_the_environment(exported_digits, monkeypatch):
    pytest.importorskip("uvicorn")
    import ticketpack.serve.app as serve_app

    seen = {}
    monkeypatch.setattr(serve_app.uvicorn, "run", lambda *a, **kw: seen.update(os.environ))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/the/callers/own")
    monkeypatch.delenv(serve_app.CONFIG_ENV, raising=False)
    with socket.socket() as s:  # several workers need a fixed port: a free one
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = dict(os.environ)
    result = runner.invoke(app, ["serve", str(exported_digits), "--workers", "2", "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert serve_app.CONFIG_ENV in seen and seen["PROMETHEUS_MULTIPROC_DIR"] != "/the/callers/own"  # the workers'
    assert dict(os.environ) == before
