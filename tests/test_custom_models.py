"""Models ticketpack has never seen (examples/custom_models/models.py: ordinary user code) go through every stage:
search (weight and neuron granularity) → transfer (two inits) → export (dense/compact/sparse/int8) → evaluate →
serve over HTTP, on the same code path as the built-ins. Sizes are tiny: this checks plumbing, not accuracy."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.search import Ticket

runner = CliRunner()
MODELS_PY = Path(__file__).resolve().parents[1] / "examples" / "custom_models" / "models.py"
REVIEWS = str(FIXTURES / "reviews")

CASES = {
    "resnet": (["--dataset", "digits", "--source", "clean", "--model-options", '{"width": 8}'], "rot15"),
    "branches": (["--dataset", "digits", "--source", "clean", "--model-options", '{"wide": 32, "narrow": 8}'], "rot15"),
    "transformer": (["--dataset", REVIEWS, "--source", "books", "--model-options",
                     '{"dim": 16, "heads": 4, "ff": 32, "layers": 2}', "--config", "TEXT"], "electronics"),
    "vit": (["--dataset", "digits", "--source", "clean", "--model-options", '{"dim": 16, "heads": 2, "mlp": 32}'], "rot15"),
}


def _ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def _search(tmp_path: Path, name: str, granularity: str) -> Path:
    flags, _ = CASES[name]
    if "TEXT" in flags:
        cfg = tmp_path / "text.toml"
        cfg.write_text("[text]\nnum_buckets = 512\nmax_tokens = 32\n")
        flags = [str(cfg) if f == "TEXT" else f for f in flags]
    out = tmp_path / f"{name}-{granularity}"
    _ok(["search", "--out", str(out), "--model", f"{MODELS_PY}:{name}", *flags, "--granularity", granularity,
         "--rounds", "2", "--prune-rate", "0.5", "--epochs", "2", "--threads", "1", "--seed", "0"])
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_user_model_goes_through_every_stage(name, tmp_path):
    import httpx
    import uvicorn

    from ticketpack.evaluate import evaluate_model
    from ticketpack.export.exporter import export_model
    from ticketpack.serve.app import bind, create_app
    from ticketpack.serve.config import ModelSource, ServeConfig
    from ticketpack.serve.models import load_models

    weight = _search(tmp_path, name, "weight")
    neuron = _search(tmp_path, name, "neuron")
    manifest = Ticket.load(neuron).manifest
    assert manifest.model_source.sha256 and manifest.model_source.file == str(MODELS_PY)
    assert manifest.rounds[-1].weights_remaining < 1.0
    assert Ticket.load(weight).manifest.rounds[-1].weights_remaining == pytest.approx(0.25, abs=0.05)

    run = tmp_path / "run"
    _ok(["transfer", str(neuron), "--target", CASES[name][1], "--out", str(run), "--init", "ticket,random-reinit",
         "--levels", "2", "--seeds", "1", "--epochs", "1"])
    report = json.loads((run / "report.json").read_text())
    assert report["jobs_finished"] == report["jobs_total"] == 2 and len(report["results"]) == 2

    files = {}
    for fmt, quantize in [("dense", "none"), ("compact", "none"), ("sparse", "none"), ("compact", "int8")]:
        path = tmp_path / f"{fmt}-{quantize}.onnx"
        result = export_model(neuron, path, level=2, format=fmt, quantize=quantize, threads=1, min_int8_agreement=0.5)
        assert result.card.model.name == f"{MODELS_PY}:{name}"
        if quantize == "none":
            assert result.card.parity.max_abs_diff <= 1e-4
        files[(fmt, quantize)] = path
    compact = export_model(neuron, tmp_path / "compact-again.onnx", level=2, format="compact", threads=1)
    assert compact.size_ratio < 1.0 and any(k < n for k, n in compact.card.export.compacted.values())
    export_model(run, tmp_path / "transferred.onnx", level=2, init="ticket", seed=0, format="sparse", threads=1)

    _ok(["evaluate", str(files[("compact", "none")]), "--baseline", str(files[("dense", "none")]),
         "--batch-sizes", "1", "--threads", "1"])
    report = evaluate_model(files[("compact", "none")], batch_sizes=(1,), threads=1, latency_budget_s=0.05)
    assert report.model.accuracy == pytest.approx(compact.card.metrics.test_accuracy)
    _ok(["validate", str(files[("sparse", "none")])])

    config = ServeConfig(models=[ModelSource(name=name, path=files[("sparse", "none")])], threads=1, provider="cpu")
    server = uvicorn.Server(uvicorn.Config(create_app(config, load_models(config)), log_level="warning"))
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        inputs = ["a wonderful book", "dull and boring"] if name == "transformer" else np.zeros((2, 64)).tolist()
        r = httpx.post(f"http://127.0.0.1:{sock.getsockname()[1]}/v1/models/{name}/predict", json={"inputs": inputs}, timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 2
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_a_model_given_as_a_python_object_needs_no_file(tmp_path):
    import torch
    from torch import nn

    from ticketpack import SearchConfig, export_model, search_ticket

    def tiny(input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, num_classes))

    cfg = SearchConfig.model_validate({"prune": {"rounds": 1}, "train": {"epochs": 1}, "threads": 1})
    manifest = search_ticket(cfg, tmp_path / "t", model=tiny)
    assert manifest.config.model.name.startswith("python:") and manifest.output_layer == "3"
    result = export_model(tmp_path / "t", tmp_path / "m.onnx", level=1, threads=1, model=tiny)
    assert result.card.parity.max_abs_diff <= 1e-4
    instance = tiny((1, 8, 8), 10)
    torch.manual_seed(0)
    assert search_ticket(cfg, tmp_path / "u", model=instance).rounds[-1].weights_remaining < 1.0


# ------------------------------------------------------------------ bad model references: one line, exit 2, nothing written

USER_CODE = '''
import torch
from torch import nn

def raises(input_shape, num_classes):
    raise ValueError("width must be even")

def not_a_module(input_shape, num_classes):
    return 42

def wrong_shape(input_shape, num_classes):
    return nn.Flatten()

def bad_forward(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(3, num_classes))

class Kth(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y - torch.kthvalue(y, 2, 1, keepdim=True)[0]

def unexportable(input_shape, num_classes):
    return Kth(num_classes)

def plain(input_shape, num_classes, hidden=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
'''


@pytest.fixture()
def user_file(tmp_path) -> Path:
    path = tmp_path / "user_models.py"
    path.write_text(USER_CODE)
    return path


def _refused(args: list[str], message: str, out: Path) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


@pytest.mark.parametrize("ref,message", [
    ("{dir}/missing.py:f", "missing.py not found"),
    ("{file}:nothing", "no callable 'nothing'"),
    ("{file}:raises", "ValueError: width must be even"),
    ("{file}:not_a_module", "returned int, not a torch.nn.Module"),
    ("{file}:wrong_shape", "forward returned shape (2, 64); expected (batch, classes) = (2, 10)"),
    ("{file}:bad_forward", "forward failed on an example batch"),
    ("no_such_module_xyz:factory", "no module named 'no_such_module_xyz'"),
    ("{file}:plain", "bad options"),
])
def test_a_bad_model_reference_is_one_line_and_exit_2(user_file, tmp_path, ref, message):
    out = tmp_path / "t"
    ref = ref.format(dir=tmp_path, file=user_file)
    extra = ["--model-options", '{"depth": 3}'] if ref.endswith(":plain") else []
    _refused(["search", "--out", str(out), "--model", ref, *extra, "--rounds", "1", "--epochs", "1"], message, out)


def test_bad_model_options_json_is_refused(user_file, tmp_path):
    _refused(["search", "--out", str(tmp_path / "t"), "--model", f"{user_file}:plain", "--model-options", "{width: 3"],
             "--model-options: not valid JSON", tmp_path / "t")


def test_an_op_torch_onnx_cannot_export_is_named(user_file, tmp_path):
    _ok(["search", "--out", str(tmp_path / "t"), "--model", f"{user_file}:unexportable", "--rounds", "1", "--epochs", "1"])
    _refused(["export", str(tmp_path / "t"), "-o", str(tmp_path / "m.onnx")], "aten::kthvalue", tmp_path / "m.onnx")


def test_a_changed_model_source_is_refused_unless_allowed(user_file, tmp_path):
    _ok(["search", "--out", str(tmp_path / "t"), "--model", f"{user_file}:plain", "--rounds", "1", "--epochs", "1"])
    user_file.write_text(USER_CODE + "\n# edited after the search\n")
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(tmp_path / "t"), "-o", str(out)])
    assert result.exit_code == 2 and "changed since the ticket was made" in result.output
    assert str(user_file) in result.output and "--allow-changed-model" in result.output and not out.exists()
    _ok(["export", str(tmp_path / "t"), "-o", str(out), "--allow-changed-model"])
    _refused(["transfer", str(tmp_path / "t"), "--target", "rot15", "--out", str(tmp_path / "run"), "--seeds", "1"],
             "changed since the ticket was made", tmp_path / "run")


def test_prune_include_and_exclude_choose_the_masked_weights(user_file, tmp_path):
    _ok(["search", "--out", str(tmp_path / "t"), "--model", f"{user_file}:plain", "--rounds", "1", "--epochs", "1",
         "--prune-exclude", "3.*"])
    assert list(Ticket.load(tmp_path / "t").manifest.prunable) == ["1.weight"]
    _refused(["search", "--out", str(tmp_path / "u"), "--model", f"{user_file}:plain", "--prune-include", "nope*"],
             "matches no prunable weight", tmp_path / "u")
