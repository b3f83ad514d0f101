"""Both torch.onnx routes (issue 26, part 8): every built-in model and every model of examples/custom_models, at
tiny sizes, exported through the TorchScript route (``dynamo=False``) and the torch.export route (``dynamo=True``)
and held to the parity gate export uses (:func:`ticketpack.export.exporter.float_parity`, after the weight naming of
``_graph``); the route a full export used is recorded in its card; and a sentinel that fails the day torch drops
the TorchScript exporter."""

from __future__ import annotations

import inspect
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from ticketpack.core.errors import TicketpackError
from ticketpack.export.exporter import _graph, export_model, float_parity
from ticketpack.models.factory import resolve
from ticketpack.models.registry import MODELS
from ticketpack.runtime.card import ModelCard
from ticketpack.runtime.cardio import read_card

try:
    import onnxscript  # noqa: F401  (the torch.export route translates through it: the bench extra, in test's)
    NO_ONNXSCRIPT = None
except ImportError:
    NO_ONNXSCRIPT = "onnxscript is not installed (pip install -e '.[test]' installs it): the dynamo route cannot run"

CUSTOM = Path(__file__).resolve().parents[1] / "examples" / "custom_models" / "models.py"
IMAGE, TOKENS, VOCAB = (1, 8, 8), 16, 64
CUSTOM_OPTIONS = {"resnet": {"width": 8}, "branches": {"wide": 32, "narrow": 8},
                  "transformer": {"dim": 16, "heads": 4, "ff": 32, "layers": 2},
                  "vit": {"dim": 16, "heads": 2, "mlp": 32, "layers": 2}}
NAMES = [*MODELS.list(), *(f"custom_models:{n}" for n in CUSTOM_OPTIONS)]
TEXT = {"bow", "textcnn", "fasttext", "custom_models:transformer"}

# (model, route, opset) → why the route fails for it on torch 2.13; each must still fail (strict xfail), with this
# error, so that the table cannot go stale in either direction.
KNOWN_FAILURES = {
    ("custom_models:resnet", "dynamo", 17): (
        ("the dynamo route builds opset 18 and onnx's version converter cannot take this graph down to 17 "
         "(axes_input_to_attribute: no constant axes input); route auto exports it through torchscript"),
        "not the opset 17 asked for",
    ),
}


def _model(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    text = name in TEXT
    kwargs = ({"input_shape": (TOKENS,), "num_classes": 3, "vocab_size": VOCAB} if text
              else {"input_shape": IMAGE, "num_classes": 3})
    if name.startswith("custom_models:"):
        short = name.split(":")[1]
        model = resolve(f"{CUSTOM}:{short}")[0](**kwargs, **CUSTOM_OPTIONS[short])
    else:
        model = MODELS.get(name).factory(**kwargs)
    example = torch.randint(1, VOCAB, (2, TOKENS)) if text else torch.randn(2, *IMAGE)
    return model.eval(), example


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("route", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", NAMES)
def test_every_model_passes_the_parity_gate_through_each_route(name, route, opset, request):
    if route == "dynamo" and NO_ONNXSCRIPT:
        pytest.skip(NO_ONNXSCRIPT)
    known = KNOWN_FAILURES.get((name, route, opset))
    if known:
        request.applymarker(pytest.mark.xfail(reason=known[0], raises=TicketpackError, strict=True))
    model, example = _model(name)
    x = torch.randint(1, VOCAB, (64, TOKENS)) if name in TEXT else torch.randn(64, *IMAGE)
    with torch.no_grad():
        reference = model(x).numpy()
    prunable = {n: p.detach().numpy() for n, p in model.named_parameters() if p.dim() >= 2}
    try:
        graph = _graph(model, example, opset, prunable, route)
    except TicketpackError as exc:
        if known:
            assert known[1] in str(exc), f"{name} fails through {route} for another reason than recorded: {exc}"
        raise
    opsets = {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")}
    assert opsets == {opset}
    assert [i.name for i in graph.graph.input] == ["input"] and [o.name for o in graph.graph.output] == ["logits"]
    batch = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch.HasField("dim_value"), "the batch axis must stay dynamic"
    diff = float_parity(graph, x.numpy(), reference, atol=1e-4, threads=1)  # raises GateFailed past atol
    assert diff <= 1e-4


@pytest.fixture(scope="module")
def route_exports(digits_ticket, tmp_path_factory) -> dict[str, object]:
    if NO_ONNXSCRIPT:
        pytest.skip(NO_ONNXSCRIPT)
    out = tmp_path_factory.mktemp("routes")
    return {route: export_model(digits_ticket, out / f"{route}.onnx", format="compact", route=route, threads=1)
            for route in ("auto", "dynamo", "torchscript")}


def test_the_card_records_the_route_and_auto_takes_dynamo_where_it_passes(route_exports):
    assert route_exports["torchscript"].card.export.route == "torchscript"
    assert route_exports["dynamo"].card.export.route == "dynamo"
    auto = route_exports["auto"]
    assert auto.card.export.route == "dynamo" and auto.route_note is None
    assert read_card(auto.path).export.route == "dynamo"
    for result in route_exports.values():
        assert result.card.parity.max_abs_diff <= result.card.parity.atol
    # the same trained weights stored under the same names through either route (the digest differs: it also
    # covers the routes' own shape constants)
    stored = {route: {t.name: numpy_helper.to_array(t) for t in onnx.load(r.path).graph.initializer}
              for route, r in route_exports.items()}
    for layer in route_exports["dynamo"].card.sparsity.layers:
        name = next(n for n in (layer.name, f"{layer.name}.T") if n in stored["torchscript"])
        assert np.array_equal(stored["dynamo"][name], stored["torchscript"][name]), name


def test_auto_falls_back_to_torchscript_and_says_why(digits_ticket, tmp_path, monkeypatch):
    from ticketpack.export import to_onnx

    def no_dynamo(model, example, opset):
        raise TicketpackError("simulated: the dynamo route cannot export this model")

    monkeypatch.setattr(to_onnx, "_export_dynamo", no_dynamo)
    result = export_model(digits_ticket, tmp_path / "m.onnx", route="auto", threads=1)
    assert result.card.export.route == "torchscript"
    assert "simulated" in result.route_note and "torchscript" in result.route_note
    assert read_card(tmp_path / "m.onnx").export.route == "torchscript"
    with pytest.raises(TicketpackError, match="simulated"):  # a named route never falls back
        export_model(digits_ticket, tmp_path / "d.onnx", route="dynamo", threads=1)
    assert not (tmp_path / "d.onnx").exists()


def test_cards_without_a_route_still_load(route_exports):
    card = route_exports["auto"].card.model_dump(mode="json")
    del card["export"]["route"]
    assert ModelCard.model_validate(card).export.route is None


def test_the_torchscript_exporter_still_exists():
    """The sentinel: torch deprecates ``torch.onnx.export(..., dynamo=False)``. The day it is gone (or stops warning
    of its removal) this test fails, saying to switch ExportConfig.route's default to the dynamo route."""
    version = torch.__version__
    advice = (f"torch {version}: the TorchScript ONNX exporter (dynamo=False) {{}}. Switch the default: "
              "ExportConfig.route (ticketpack/export/exporter.py) must default to 'dynamo', and 'torchscript' leave "
              "it and ROUTES (ticketpack/export/to_onnx.py), with route auto's fallback (see "
              "bench/results/export_routes.md for what the dynamo route does differently).")
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        pytest.fail(advice.format("is gone: torch.onnx.export takes no dynamo argument"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(torch.nn.Linear(3, 2), (torch.randn(1, 3),), io.BytesIO(), dynamo=False)
        except Exception as exc:  # noqa: BLE001 (any failure of the legacy exporter is the news)
            pytest.fail(advice.format(f"fails: {type(exc).__name__}: {exc}"))
    deprecations = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))
                    and "TorchScript" in str(w.message)]
    assert deprecations, (advice.format("no longer warns that it is deprecated; check its status in the torch "
                                        "release notes before relying on it")
                          + f" Warnings seen: {[str(w.message)[:80] for w in caught]}")


@pytest.mark.skipif(bool(NO_ONNXSCRIPT), reason=str(NO_ONNXSCRIPT))
def test_the_cli_takes_route_and_its_json_stays_clean(digits_ticket, tmp_path):
    """``--route dynamo``: the dynamo exporter prints its progress, which must not reach ``--json``'s stdout."""
    from typer.testing import CliRunner

    from ticketpack.cli.app import app
    from ticketpack.export.exporter import ExportResult

    result = CliRunner().invoke(app, ["export", str(digits_ticket), "-o", str(tmp_path / "m.onnx"), "--route",
                                      "dynamo", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert ExportResult.model_validate_json(result.stdout).card.export.route == "dynamo"
