"""`ticketpack export`: every format passes the checker and parity, compaction is exact, the sparse file is
smaller, the card round-trips, raw text reaches the same logits through the file alone, and bad input writes nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import copy_with_schema_version, text_config, tiny_config
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.errors import GateFailed
from ticketpack.export.compact import compact
from ticketpack.export.exporter import (
    ExportConfig,
    ExportResult,
    export_model,
    export_prepared,
    prepare,
)
from ticketpack.runtime.card import CARD_KEY, ModelCard, parse_card
from ticketpack.runtime.cardio import read_card
from ticketpack.runtime.digest import weights_digest
from ticketpack.runtime.validate import validate_model
from ticketpack.search import Ticket, search

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [(f, q) for f in ("dense", "compact", "sparse") for q in ("none", "int8", "int8-static")]


def _ort(path_or_bytes, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"]).run(["logits"], {"input": x})[0]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture(scope="session")
def neuron_ticket(tmp_path_factory) -> Path:
    """lenet on digits pruned by whole neurons (half the units per round): compaction has units to remove."""
    out = tmp_path_factory.mktemp("tickets") / "neuron"
    search(tiny_config(prune={"rounds": 2, "rate": 0.5, "granularity": "neuron", "strategy": "layerwise"}), out)
    return out


@pytest.fixture(scope="session")
def exports(digits_ticket, text_ticket, tmp_path_factory) -> dict:
    """Every format × quantization of the digits ticket (round 3, ~12% weights) and the bow ticket (round 2, 25%)."""
    out = tmp_path_factory.mktemp("exports")
    found = {}
    for name, ticket, level in (("lenet", digits_ticket, 3), ("bow", text_ticket, 2)):
        prepared = prepare(ticket, level=level, threads=1)
        for fmt, q in VARIANTS:
            path = out / f"{name}-{fmt}-{q}.onnx"
            found[(name, fmt, q)] = (path, export_prepared(prepared, path, ExportConfig(format=fmt, quantize=q, threads=1)))
        found[(name, "x")] = prepared.x_test
    return found


@pytest.mark.parametrize("name", ["lenet", "bow"])
@pytest.mark.parametrize("fmt,quantize", VARIANTS)
def test_every_format_passes_the_checker_and_parity(exports, name, fmt, quantize):
    path, result = exports[(name, fmt, quantize)]
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    parity = result.card.parity
    assert parity.examples > 0
    if quantize == "none":
        assert parity.max_abs_diff <= 1e-4 and parity.argmax_agreement == 1.0
    else:
        assert parity.float_max_abs_diff <= 1e-4
        assert parity.argmax_agreement >= min(0.95, 1 - 1 / parity.examples) - 1e-9  # one disagreement passes
    logits = _ort(path, exports[(name, "x")])
    assert logits.shape == (len(exports[(name, "x")]), len(result.card.label_names))


@pytest.mark.parametrize("name", ["lenet", "bow"])
def test_graph_io_is_one_input_and_logits_with_a_dynamic_batch(exports, name):
    graph = onnx.load(str(exports[(name, "compact", "none")][0])).graph
    (inp,), (out,) = graph.input, graph.output
    assert (inp.name, out.name) == ("input", "logits")
    assert inp.type.tensor_type.elem_type == (onnx.TensorProto.FLOAT if name == "lenet" else onnx.TensorProto.INT64)
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("name", ["lenet", "bow"])
@pytest.mark.parametrize("fmt", ["compact", "sparse"])
def test_compact_and_sparse_logits_match_dense_to_1e5(exports, name, fmt):
    x = exports[(name, "x")]
    dense = _ort(exports[(name, "dense", "none")][0], x)
    assert np.abs(_ort(exports[(name, fmt, "none")][0], x) - dense).max() <= 1e-5


def test_neuron_ticket_compacts_into_smaller_layers_with_the_same_logits(neuron_ticket, tmp_path):
    prepared = prepare(neuron_ticket, level=2, threads=1)
    dense = export_prepared(prepared, tmp_path / "d.onnx", ExportConfig(format="dense", threads=1))
    small = export_prepared(prepared, tmp_path / "c.onnx", ExportConfig(format="compact", threads=1))
    kept, total = small.card.export.compacted["hidden.0.weight"]
    assert kept <= total // 4 + 1
    assert small.file_bytes < 0.2 * dense.file_bytes
    assert np.abs(_ort(tmp_path / "c.onnx", prepared.x_test) - _ort(tmp_path / "d.onnx", prepared.x_test)).max() <= 1e-5


def test_export_leaves_torch_threads_and_rng_as_it_found_them(digits_ticket, tmp_path):
    before = torch.get_num_threads()
    torch.manual_seed(1234)
    rng = torch.random.get_rng_state()
    export_model(digits_ticket, tmp_path / "m.onnx", level=1, format="dense", threads=before + 1)
    assert torch.get_num_threads() == before  # it ran the reference with before + 1 threads and built a model
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_sparse_file_is_smaller_than_dense_and_shrinks_with_sparsity(exports):
    dense = exports[("lenet", "dense", "none")][1]
    sparse = exports[("lenet", "sparse", "none")][1]
    assert dense.size_ratio == pytest.approx(1.0, abs=1e-3)
    # round 3 keeps ~12.5% of the hidden weights: values (4 bytes) + 1 bit per entry
    assert sparse.size_ratio <= 0.2
    assert sparse.file_bytes < exports[("lenet", "compact", "none")][1].file_bytes


@pytest.mark.parametrize("name", ["lenet", "bow"])
@pytest.mark.parametrize("fmt,quantize", VARIANTS)
def test_the_card_names_exactly_the_tensors_the_file_stores_as_bit_masks(exports, name, fmt, quantize):
    path, result = exports[(name, fmt, quantize)]
    inits = {t.name for t in onnx.load(str(path)).graph.initializer}
    bitmasked = sorted(n.removesuffix(".values") for n in inits if n.endswith(".values"))
    remaps = sorted(n.removesuffix(".bits") for n in inits if n.endswith(".bits") and n[:-5] + ".values" not in inits)
    export = result.card.export
    assert sorted(export.rank_encoded) == remaps
    if fmt == "sparse":
        assert sorted(export.bitmask_encoded) == bitmasked
        assert export.sparse_encoding == ("bitmask" if bitmasked else None)
    else:
        assert export.bitmask_encoded is None and export.sparse_encoding is None and bitmasked == []
    if (name, fmt, quantize) == ("lenet", "sparse", "none"):  # unstructured, ~12% of the weights: the encoding pays
        assert bitmasked and result.format_note is None


def test_a_neuron_ticket_exported_sparse_says_it_stored_nothing_sparse_and_names_compact(neuron_ticket, tmp_path):
    out = tmp_path / "m.onnx"
    res = runner.invoke(app, ["export", str(neuron_ticket), "--level", "2", "--format", "sparse", "-o", str(out),
                              "--threads", "1"])
    assert res.exit_code == 0, res.output
    card = read_card(out)
    assert card.export.format == "sparse"
    assert card.export.bitmask_encoded == [] and card.export.sparse_encoding is None
    assert not [t.name for t in onnx.load(str(out)).graph.initializer if t.name.endswith((".values", ".bits"))]
    warning = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "stored no weight as values + bit mask" in warning[0], res.stderr
    assert "use --format compact" in warning[0]
    assert "none (every weight stored dense)" in res.stdout


def test_a_compact_export_that_removes_nothing_names_sparse():
    from onnx import TensorProto, helper, numpy_helper

    from ticketpack.export.exporter import _format_note

    w = np.zeros((32, 32), dtype=np.float32)
    w[::4, ::4] = 1.0  # 1/16 of the weights, none of them a whole row or column apart
    graph = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["input", "fc.weight.T"], ["logits"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 32])],
        [numpy_helper.from_array(w, "fc.weight.T")]))
    note = _format_note("compact", {"fc": [32, 32]}, [], graph)
    assert note is not None and "removed nothing" in note and "--format sparse would store 1 of its weights" in note
    assert _format_note("compact", {"fc": [8, 32]}, [], graph) is None  # compaction removed units: it paid
    assert _format_note("sparse", {"fc": [32, 32]}, ["fc.weight.T"], graph) is None


def test_int8_shrinks_the_file_and_reports_the_accuracy_change(exports):
    q = exports[("lenet", "dense", "int8")][1]
    assert q.size_ratio < 0.35
    m = q.card.metrics
    assert m.test_accuracy is not None and m.reference_test_accuracy is not None
    assert abs(m.test_accuracy - m.reference_test_accuracy) <= 0.05


@pytest.mark.parametrize("fmt", ["compact", "sparse"])
def test_static_int8_on_compaction_stays_within_a_point_of_the_float_export(digits_ticket, tmp_path, fmt):
    prepared = prepare(digits_ticket, level=3, threads=1)
    float_ = export_prepared(prepared, tmp_path / "float.onnx", ExportConfig(format=fmt, threads=1))
    static = export_prepared(prepared, tmp_path / "static.onnx", ExportConfig(format=fmt, quantize="int8-static", threads=1))
    assert validate_model(tmp_path / "static.onnx", strict=True).passed
    y = prepared.y_test
    accuracy = (_ort(tmp_path / "static.onnx", prepared.x_test).argmax(1) == y).mean()
    assert accuracy == pytest.approx(static.card.metrics.test_accuracy)
    assert float_.card.metrics.test_accuracy - accuracy <= 0.01 + 1e-9
    assert {n.op_type for n in onnx.load(str(tmp_path / "static.onnx")).graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    assert static.card.export.calibration.model_dump() == {
        "method": "minmax", "samples": 256, "seed": 0, "split": "digits/clean/train"}
    assert static.file_bytes < float_.file_bytes


def test_static_int8_further_than_allowed_from_the_float_accuracy_writes_nothing(digits_ticket, tmp_path, monkeypatch):
    import ticketpack.export.quantize as quantize

    draw = quantize.calibration_sample
    monkeypatch.setattr(quantize, "calibration_sample", lambda x, n, seed: 300 * draw(x, n, seed))  # ranges far too wide
    prepared = prepare(digits_ticket, level=3, threads=1)
    config = ExportConfig(quantize="int8-static", min_int8_agreement=0, threads=1)
    with pytest.raises(GateFailed, match="static int8 test accuracy"):
        export_prepared(prepared, tmp_path / "m.onnx", config)
    assert _files(tmp_path) == []


def test_calibration_sample_is_drawn_by_its_seed():
    from ticketpack.export.quantize import calibration_sample

    x = np.arange(1000)[:, None]
    a, b, c = (calibration_sample(x, 256, seed) for seed in (0, 0, 1))
    assert a.shape == (256, 1) and len(np.unique(a)) == 256 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert calibration_sample(x[:10], 256, 0).shape == (10, 1)


def test_card_round_trips_through_onnx_and_onnxruntime_and_matches_its_schema(exports):
    import jsonschema

    path, result = exports[("bow", "sparse", "none")]
    assert read_card(path) == result.card
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert parse_card(meta[CARD_KEY]) == result.card
    schema = json.loads((ROOT / "schemas" / "model-card.schema.json").read_text())
    jsonschema.validate(json.loads(meta[CARD_KEY]), schema)


def test_card_holds_preprocessing_provenance_sparsity_and_metrics(exports, text_ticket):
    card: ModelCard = exports[("bow", "compact", "none")][1].card
    manifest = Ticket.load(text_ticket).manifest
    assert card.preprocessing == manifest.dataset.preprocessing and card.preprocessing.kind == "text"
    assert card.input.dtype == "int64" and card.input.shape == ["batch", card.preprocessing.max_tokens]
    assert card.label_names == manifest.dataset.label_names
    assert card.provenance.level == 2 and card.provenance.source_domain == "books"
    assert len(card.provenance.ticket_manifest_sha256) == 64
    assert 0 < card.sparsity.weights_remaining < 0.5
    assert {layer.name for layer in card.sparsity.layers} == set(manifest.prunable)
    assert card.metrics.dense_test_accuracy == manifest.rounds[0].test_accuracy
    assert card.metrics.reference_test_accuracy == pytest.approx(manifest.rounds[2].test_accuracy)


def test_weights_digest_is_in_the_card_and_detects_a_changed_weight(exports):
    path, result = exports[("lenet", "compact", "none")]
    model = onnx.load(str(path))
    assert weights_digest(model) == result.card.weights_digest
    init = model.graph.initializer[0]
    array = onnx.numpy_helper.to_array(init).copy()
    array.flat[0] += 1e-3
    init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    assert weights_digest(model) != result.card.weights_digest


def test_raw_text_gives_the_pytorch_logits_through_the_onnx_file_alone(exports, text_ticket):
    from ticketpack.runtime.predictor import load

    path, _ = exports[("bow", "sparse", "none")]
    texts = ["A wonderful, moving book; I loved every page.", "Dull plot and wooden characters. Returned it.",
             "", "zzzz qqqq unseen tokens only"]
    ticket = Ticket.load(text_ticket)
    model = ticket.build_model()
    model.load_state_dict(ticket.trained_state(2))
    model.eval()
    with torch.no_grad():
        want = torch.softmax(model(torch.from_numpy(ticket.manifest.dataset.preprocessing.transform(texts))), 1).numpy()
    got = load(path).predict_proba(texts)
    assert np.abs(got - want).max() <= 1e-5


def test_compaction_folds_constant_units_and_drops_embedding_rows_exactly(text_ticket, tmp_path):
    prepared = prepare(text_ticket, level=2, threads=1)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        emb = prepared.model.embed.weight
        emb[torch.from_numpy(rng.random(emb.shape[0]) < 0.7)] = 0.0  # 70% of the hashed vocabulary unused
        prepared.model.fc.weight[:4] = 0.0  # four hidden units with no input: relu(bias) is folded into `out`
        prepared.model.fc.bias[:4] = 0.5
        prepared.torch_logits = prepared.model(torch.from_numpy(prepared.x_test)).numpy()
    prepared.state = {k: v.detach().numpy().copy() for k, v in prepared.model.state_dict().items()}
    result = export_prepared(prepared, tmp_path / "c.onnx", ExportConfig(format="compact", threads=1))
    kept_rows, rows = result.card.export.compacted["vocabulary:embed.weight"]
    assert kept_rows < 0.4 * rows
    assert result.card.export.compacted["fc.weight"][0] <= 12
    assert any("embed.remap" in n.input for n in onnx.load(str(tmp_path / "c.onnx")).graph.node)
    assert result.card.parity.max_abs_diff <= 1e-5


def test_a_ticket_whose_hidden_layer_is_pruned_away_compacts_to_its_constant_output(tmp_path):
    # global magnitude ranks bow's N(0,1) embedding above its small `fc` layer and empties `fc` in round 1:
    # every logit is then a constant, and compaction must say so exactly
    search(text_config(strategy="global"), tmp_path / "t")
    result = export_model(tmp_path / "t", tmp_path / "c.onnx", level=1, threads=1)
    assert result.card.export.compacted["fc.weight"] == [1, 16]
    assert result.card.export.compacted["embed.weight"] == [1, 16]
    assert result.card.parity.max_abs_diff <= 1e-5 and result.size_ratio < 0.2


CUSTOM = str(ROOT / "examples" / "custom_models" / "models.py")


@pytest.mark.parametrize("name,options,kind", [
    ("lenet-300-100", {}, "image"), ("convnet", {}, "image"), ("bow", {}, "text"), ("textcnn", {}, "text"),
    (f"{CUSTOM}:resnet", {"width": 8}, "image"), (f"{CUSTOM}:branches", {"wide": 16, "narrow": 8}, "image"),
    (f"{CUSTOM}:transformer", {"dim": 16, "heads": 4, "ff": 16}, "text"),
], ids=lambda v: v.rpartition(":")[2] if isinstance(v, str) else None)
def test_compact_graph_equals_the_masked_torch_model_for_every_architecture(name, options, kind):
    from ticketpack.data import ImagePreprocessing, TextPreprocessing
    from ticketpack.export.exporter import _graph
    from ticketpack.models import ModelSpec, build, example_input
    from ticketpack.pruning import mask as masks
    from ticketpack.pruning.strategies import prune
    from ticketpack.pruning.structure import expand, trace
    from ticketpack.pruning.targets import output_layer, parameters, prunable_names

    torch.manual_seed(0)
    prep = ImagePreprocessing() if kind == "image" else TextPreprocessing(num_buckets=64, max_tokens=12)
    x0 = example_input(prep)
    model = build(ModelSpec(name=name, options=options), prep, 3, x0).eval()
    prunable, layer = prunable_names(model), output_layer(model, x0)
    structure, gen = trace(model, x0, layer, prunable), torch.Generator().manual_seed(0)
    mask = masks.ones_like(parameters(model, prunable))
    for _ in range(3):
        weights = {n: p.detach() for n, p in parameters(model, prunable).items()}
        mask = prune("layerwise", weights, mask, 0.5, [], 0.0, gen, granularity="neuron", structure=structure)
    masks.apply_mask(model, expand(mask, structure, dict(model.named_parameters())))
    rng = np.random.default_rng(0)
    raw = rng.random((5, 64)) * 16 if kind == "image" else ["a b c d e", "f g", "h i j k l m n o p q r s", "t"]
    x = prep.transform(raw)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    summary = compact(model, x0, layer, prunable)
    assert any(kept < total for kept, total in summary.values())
    graph = _graph(model, x0, 17, {n: p.detach().numpy() for n, p in model.named_parameters() if n in prunable})
    onnx.checker.check_model(graph, full_check=True)
    assert np.abs(_ort(graph.SerializeToString(), x) - want).max() <= 1e-5


def test_without_a_level_export_picks_the_sparsest_round_within_the_tolerance_beyond_validation_noise(
        digits_ticket, tmp_path):
    result = export_model(digits_ticket, tmp_path / "auto.onnx", max_accuracy_drop=1.0, threads=1)
    m = Ticket.load(digits_ticket).manifest
    n, d = m.dataset.split_sizes["val"], m.rounds[0].val_accuracy
    fits = [r for r in m.rounds
            if r.val_accuracy - d >= -0.01 + math.sqrt((r.val_accuracy * (1 - r.val_accuracy) + d * (1 - d)) / n) - 1e-12]
    assert result.level == min(fits or [m.rounds[0]], key=lambda r: r.weights_remaining).round
    assert f"round {result.level}" in result.level_reason and f"{n}-example validation split" in result.level_reason


def test_the_level_pick_does_not_trust_a_gain_within_the_validation_noise():
    """A level that looks 1.4 points better than dense on 300 validation examples is not known to be within one
    point of dense (the standard error of the difference is ~3.3 points): the pick stays dense."""
    from types import SimpleNamespace

    from ticketpack.export.sources import _sparsest_within

    dense = SimpleNamespace(weights_remaining=1.0, val=0.800, level=0)
    sparse = SimpleNamespace(weights_remaining=0.1, val=0.814, level=3)
    pick = lambda n: _sparsest_within([dense, sparse], 0.800, 1.0, n, lambda x: x.val, lambda x: x.level)
    assert pick(300) is None  # not even dense clears its own noise margin at 1 point: the caller falls back to dense
    assert pick(100_000) is sparse  # a split large enough to resolve a point


def test_level_as_percentage_picks_the_nearest_round(digits_ticket, tmp_path):
    result = export_model(digits_ticket, tmp_path / "p.onnx", level="25%", format="dense", threads=1)
    assert result.level == 2 and result.weights_remaining == pytest.approx(0.25, abs=0.02)


def test_a_failed_parity_check_exits_1_and_writes_nothing(digits_ticket, tmp_path):
    prepared = prepare(digits_ticket, level=1, threads=1)
    prepared.torch_logits = prepared.torch_logits + 1e-2
    with pytest.raises(GateFailed, match="parity"):
        export_prepared(prepared, tmp_path / "m.onnx", ExportConfig(threads=1))
    assert _files(tmp_path) == []


# ------------------------------------------------------------------ command line


def test_cli_exports_and_prints_the_result_as_json(digits_ticket, tmp_path):
    out = tmp_path / "m.onnx"
    res = runner.invoke(app, ["export", str(digits_ticket), "--level", "3", "--format", "sparse", "-o", str(out),
                              "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    result = ExportResult.model_validate_json(res.stdout)
    assert result.path == str(out) and out.stat().st_size == result.file_bytes
    assert result.card.export.format == "sparse" and result.card.export.sparse_encoding == "bitmask"
    assert result.card.export.bitmask_encoded and result.format_note is None


def test_cli_table_shows_the_size_relative_to_the_unpruned_dense_export(digits_ticket, tmp_path):
    res = runner.invoke(app, ["export", str(digits_ticket), "--level", "3", "-o", str(tmp_path / "m.onnx"), "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "× the unpruned dense export" in res.stdout and "parity" in res.stdout


def _bad(args: list[str], out: Path, *needles: str) -> None:
    existed = out.exists()
    res = runner.invoke(app, ["export", *args, "-o", str(out), "--threads", "1"])
    assert res.exit_code == 2, res.output
    for needle in needles:
        assert needle in res.output
    assert "Traceback" not in res.output
    assert out.exists() == existed


def test_missing_level_exits_2_listing_the_rounds_and_writes_nothing(digits_ticket, tmp_path):
    _bad([str(digits_ticket), "--level", "9"], tmp_path / "m.onnx", "no round 9", "0, 1, 2, 3")
    assert _files(tmp_path) == []


def test_unknown_format_exits_2(digits_ticket, tmp_path):
    _bad([str(digits_ticket), "--format", "tiny"], tmp_path / "m.onnx", "format")


def test_init_on_a_ticket_directory_exits_2(digits_ticket, tmp_path):
    _bad([str(digits_ticket), "--init", "ticket"], tmp_path / "m.onnx", "transfer run")


def test_ticket_of_another_schema_version_exits_2_naming_it(digits_ticket, tmp_path):
    copy = copy_with_schema_version(digits_ticket, tmp_path / "old", "manifest.json", 99)
    _bad([str(copy)], tmp_path / "m.onnx", "schema version 99")


def test_unwritable_path_exits_2_and_leaves_no_partial_file(digits_ticket, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    _bad([str(digits_ticket)], blocker / "m.onnx", "cannot write")
    _bad([str(digits_ticket)], tmp_path, "is a directory")
    assert _files(tmp_path) == ["file"]


def test_not_a_ticket_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    _bad([str(tmp_path / "empty")], tmp_path / "m.onnx", "neither a ticket directory")


# ------------------------------------------------------------------ transfer runs


@pytest.fixture(scope="session")
def transfer_run(digits_ticket, tmp_path_factory) -> Path:
    from ticketpack import (
        transfer,  # part of ticketpack: a broken import must fail, not skip
    )
    out = tmp_path_factory.mktemp("transfer") / "run"
    cfg = transfer.TransferConfig.model_validate({
        "ticket": str(digits_ticket), "target": "rot15", "inits": ["ticket", "dense"], "levels": [2, 3],
        "seeds": 1, "train": {"epochs": 2},
    })
    transfer.run_transfer(cfg, out)
    return out


def test_transfer_run_exports_the_chosen_job_with_its_target_domain(transfer_run, tmp_path):
    from ticketpack.transfer.run import TransferRun

    result = export_model(transfer_run, tmp_path / "t.onnx", level=3, init="ticket", seed=0, format="sparse", threads=1)
    card = result.card
    assert result.source_kind == "transfer" and result.level == 3
    assert (card.provenance.target_domain, card.provenance.init_strategy, card.provenance.source_domain) == ("rot15", "ticket", "clean")
    assert card.metrics.evaluated_on.endswith("rot15/test")
    job = next(r for r in TransferRun.load(transfer_run).results() if (r.level, r.init) == (3, "ticket"))
    assert card.metrics.reference_test_accuracy == pytest.approx(job.target_test_accuracy)
    assert card.parity.max_abs_diff <= 1e-4


def test_transfer_run_without_a_level_compares_with_the_dense_job(transfer_run, tmp_path):
    result = export_model(transfer_run, tmp_path / "t.onnx", init="ticket", threads=1)
    assert result.level in (2, 3) and "dense" in result.level_reason


def test_transfer_run_with_an_unknown_strategy_exits_2_listing_the_available_ones(transfer_run, tmp_path):
    _bad([str(transfer_run), "--init", "finetune"], tmp_path / "m.onnx", "dense, ticket")
    _bad([str(transfer_run), "--init", "ticket", "--level", "1"], tmp_path / "m.onnx", "level 1", "available")


@pytest.mark.parametrize("name", ["lenet", "bow"])
@pytest.mark.parametrize("fmt,quantize", VARIANTS)
def test_every_export_passes_ticketpack_validate_strict(exports, name, fmt, quantize):
    report = validate_model(exports[(name, fmt, quantize)][0], strict=True)
    assert report.passed, [c for c in report.checks if not c.passed]


def test_exported_remapped_embedding_passes_ticketpack_validate(text_ticket, tmp_path):
    prepared = prepare(text_ticket, level=2, threads=1)
    with torch.no_grad():
        prepared.model.embed.weight[torch.from_numpy(np.random.default_rng(1).random(512) < 0.7)] = 0.0
        prepared.torch_logits = prepared.model(torch.from_numpy(prepared.x_test)).numpy()
    prepared.state = {k: v.detach().numpy().copy() for k, v in prepared.model.state_dict().items()}
    for fmt in ("compact", "sparse"):
        export_prepared(prepared, tmp_path / f"{fmt}.onnx", ExportConfig(format=fmt, threads=1))
        report = validate_model(tmp_path / f"{fmt}.onnx", strict=True)
        assert report.passed, [c for c in report.checks if not c.passed]
    # the compacted table's id remap is stored as its bits alone, and rebuilt (then folded) at load
    stored = {t.name for t in onnx.load(str(tmp_path / "compact.onnx")).graph.initializer}
    assert "embed.remap.bits" in stored and "embed.remap" not in stored
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "compact.onnx"), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    assert {n.op_type for n in optimized.graph.node}.isdisjoint({"BitShift", "CumSum"})


def test_transfer_run_of_another_schema_version_exits_2_naming_it(transfer_run, tmp_path):
    copy = copy_with_schema_version(transfer_run, tmp_path / "old-run", "plan.json", 7)
    _bad([str(copy), "--init", "ticket"], tmp_path / "m.onnx", "schema version 7")
