"""`ticketpack evaluate`: accuracy, latency, size and memory on ONNX Runtime, a baseline side by side, gates
(exit 1) and usage errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FIXTURES
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.errors import GateFailed, TicketpackError
from ticketpack.evaluate import EvaluationReport, Gates, evaluate_model
from ticketpack.evaluate.latency import (
    LatencyBudget,
    calls_per_run,
    measure_interleaved,
    median_ci_pct,
)
from ticketpack.export.exporter import export_model

runner = CliRunner()
FAST = ["--threads", "1", "--batch-sizes", "1,16", "--latency-budget", "0.1"]
FAST_KW = {"threads": 1, "batch_sizes": (1, 16), "latency_budget_s": 0.1}


@pytest.fixture(scope="module")
def dense_digits(digits_ticket, tmp_path_factory):
    """The dense (round 0) export of the same ticket: the baseline a ticket is compared against."""
    out = tmp_path_factory.mktemp("dense") / "dense.onnx"
    export_model(digits_ticket, out, level=0, format="dense", threads=1)
    return out


@pytest.fixture(scope="module")
def report(exported_digits, dense_digits) -> EvaluationReport:
    return evaluate_model(exported_digits, baseline=dense_digits, **FAST_KW)


def test_baseline_run_prints_accuracy_latency_and_size_ratios(exported_digits, dense_digits, tmp_path):
    result = runner.invoke(app, ["evaluate", str(exported_digits), "--baseline", str(dense_digits), *FAST])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "vs baseline: speed-up" in out and "x @1" in out and "x @16" in out
    assert "file size" in out and "the baseline's" in out and "accuracy" in out and "points" in out
    assert "p50" in out and "baseline" in out
    assert "runs × calls" in out and "the figures are per call" in out  # how many calls each figure covers


def test_report_compares_model_and_baseline_from_one_run(report, exported_digits, dense_digits):
    c = report.comparison
    assert report.model.path == str(exported_digits) and report.baseline.path == str(dense_digits)
    assert [s.batch_size for s in c.speedup] == [1, 16]
    assert c.speedup[0].speedup == pytest.approx(report.baseline.latency[0].p50_ms / report.model.latency[0].p50_ms)
    # every ratio reads "this model vs baseline": model / baseline
    assert c.size_ratio == pytest.approx(report.model.file_bytes / report.baseline.file_bytes)
    assert c.size_ratio < 1  # compact drops pruned units, so the file shrinks
    assert c.compressed_size_ratio == pytest.approx(report.model.compressed_bytes / report.baseline.compressed_bytes)
    if c.memory_ratio is not None:
        assert c.memory_ratio == pytest.approx(report.model.peak_memory_mb / report.baseline.peak_memory_mb)
    assert report.model.weights_digest_verified and report.baseline.weights_digest_verified
    assert c.accuracy_delta == pytest.approx(report.model.accuracy - report.baseline.accuracy)


def test_latency_figures_are_ordered_and_counted(report):
    for stats in report.model.latency + report.baseline.latency:
        assert stats.runs >= 20 and stats.warmup_runs >= 3
        assert 0 < stats.p50_ms <= stats.p90_ms <= stats.p99_ms
        assert stats.throughput_per_s > 0


def test_interleaving_gives_model_and_baseline_the_same_run_count(report):
    assert [s.runs for s in report.model.latency] == [s.runs for s in report.baseline.latency]
    assert [s.calls_per_run for s in report.model.latency] == [s.calls_per_run for s in report.baseline.latency]


def test_the_json_report_states_the_calls_each_latency_figure_covers(exported_digits):
    result = runner.invoke(app, ["evaluate", str(exported_digits), "--json", "--threads", "1", "--batch-sizes", "1",
                                 "--latency-budget", "0.1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (stats,) = doc["model"]["latency"]
    assert stats["calls_per_run"] >= 1 and stats["runs"] >= 20
    assert "calls_per_run" in doc["latency_note"]


def test_accuracy_comes_with_per_class_accuracy_and_a_confusion_matrix(report):
    m = report.model
    cm = np.array(m.confusion_matrix)
    assert cm.shape == (10, 10) and cm.sum() == report.examples
    assert m.accuracy == pytest.approx(np.trace(cm) / cm.sum())
    assert [c.support for c in m.per_class] == cm.sum(axis=1).tolist()
    assert m.per_class[3].accuracy == pytest.approx(cm[3, 3] / cm[3].sum())


def test_split_comes_from_the_card_unless_seed_overrides(report, exported_digits):
    from ticketpack.runtime.predictor import load

    card = load(exported_digits).card
    assert (report.dataset, report.seed, report.split) == ("digits", card.provenance.seed, "test")
    other = evaluate_model(exported_digits, seed=card.provenance.seed + 1, threads=1, batch_sizes=(1,), latency_budget_s=0.05)
    assert other.seed == card.provenance.seed + 1


def test_the_cards_split_reproduces_the_cards_accuracy(report):
    assert report.notes == []
    assert report.model.accuracy == pytest.approx(report.model.card_test_accuracy, abs=2.5 / report.examples)


def test_a_split_that_does_not_reproduce_the_cards_accuracy_is_noted(report):
    from ticketpack.evaluate.evaluate import _Data, _split_note

    data = _Data(raw=None, y=np.zeros(report.examples), dataset=report.dataset, domain=report.domain,
                 data_file=None, split="test", seed=report.seed)
    off = report.model.model_copy(update={"card_test_accuracy": report.model.accuracy - 0.1})
    assert "probably not the export's" in _split_note(off, data)
    assert _split_note(report.model, data) is None


def test_size_and_memory_are_measured(report):
    for m in (report.model, report.baseline):
        assert m.file_bytes > m.compressed_bytes > 0
        assert m.peak_memory_mb is not None and m.peak_memory_mb > 0


def test_report_writes_an_evaluation_report(exported_digits, tmp_path):
    path = tmp_path / "report.json"
    result = runner.invoke(app, ["evaluate", str(exported_digits), *FAST, "--report", str(path)])
    assert result.exit_code == 0, result.output
    report = EvaluationReport.model_validate_json(path.read_text())
    assert report.passed and report.baseline is None and report.threads == 1


def test_json_prints_only_the_report(exported_digits):
    result = runner.invoke(app, ["evaluate", str(exported_digits), *FAST, "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["examples"] > 0


def test_a_failed_gate_exits_1_naming_the_gate_and_the_margin(exported_digits):
    result = runner.invoke(app, ["evaluate", str(exported_digits), *FAST, "--max-size-mb", "0.000001", "--min-accuracy", "0"])
    assert result.exit_code == 1
    assert "max-size-mb" in result.output and "over by" in result.output
    assert "min-accuracy: accuracy" not in result.output.split("error:")[-1]  # only failed gates are in the error


def test_passing_gates_exit_0(exported_digits, dense_digits):
    result = runner.invoke(app, [
        "evaluate", str(exported_digits), "--baseline", str(dense_digits), *FAST,
        "--min-accuracy", "0.3", "--max-accuracy-drop", "0.5", "--max-p50-ms", "1=1000", "--max-size-mb", "100",
        "--min-speedup", "0.01",
    ])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("pass") == 5


def test_accuracy_drop_gate_measures_against_the_baseline(report):
    from ticketpack.evaluate.gates import check

    (gate,) = check(Gates(max_accuracy_drop=1.0), report.model, report.baseline, report.comparison)
    assert gate.passed and gate.value == pytest.approx(report.baseline.accuracy - report.model.accuracy)
    assert "below the baseline" in gate.detail


def test_raise_for_gates_raises_gate_failed(exported_digits):
    rep = evaluate_model(exported_digits, gates=Gates(max_size_mb=1e-6), threads=1, batch_sizes=(1,), latency_budget_s=0.05)
    assert not rep.passed
    with pytest.raises(GateFailed, match="max-size-mb"):
        rep.raise_for_gates()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-p50-ms", "64=5"], "not in --batch-sizes"),
        (["--max-p50-ms", "fast"], "BATCH=MS"),
        (["--min-speedup", "2"], "needs --baseline"),
        (["--min-accuracy", "1.5"], "min-accuracy"),
        (["--batch-sizes", "0,x"], "--batch-sizes"),
        (["--domain", "sideways"], "unknown digits domain"),
    ],
)
def test_usage_errors_exit_2_with_one_line(exported_digits, args, message):
    base = ["evaluate", str(exported_digits), "--threads", "1", "--latency-budget", "0.05"]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cuda_without_a_cuda_build_exits_2_naming_onnxruntime_gpu(exported_digits):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build offers CUDA")
    result = runner.invoke(app, ["evaluate", str(exported_digits), "--provider", "cuda", *FAST])
    assert result.exit_code == 2
    assert "onnxruntime-gpu" in result.output and "CUDA" in result.output


def test_evaluates_on_a_labelled_text_file(exported_text, tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "reviews" / "books.jsonl").read_text().splitlines()[:12]]
    data = tmp_path / "held_out.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = evaluate_model(exported_text, data_file=data, threads=1, batch_sizes=(1,), latency_budget_s=0.05)
    assert rep.examples == 12 and rep.data_file == str(data) and rep.split is None
    assert sum(c.support for c in rep.model.per_class) == 12


def test_an_empty_data_file_is_a_usage_error(exported_text, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = runner.invoke(app, ["evaluate", str(exported_text), "--data-file", str(empty), *FAST])
    assert result.exit_code == 2 and "no rows" in result.output


def test_a_data_file_with_unknown_labels_is_a_usage_error(exported_text, tmp_path):
    data = tmp_path / "odd.jsonl"
    data.write_text(json.dumps({"text": "fine", "label": "maybe"}) + "\n")
    with pytest.raises(TicketpackError, match="not among the model's labels"):
        evaluate_model(exported_text, data_file=data, threads=1, batch_sizes=(1,))


def test_median_interval_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    few, many = rng.normal(10, 1, 30), rng.normal(10, 1, 3000)
    assert median_ci_pct(many) < median_ci_pct(few) < 10


def test_latency_measurement_stops_within_its_time_budget():
    import time

    start = time.perf_counter()
    (stats,) = measure_interleaved([lambda: time.sleep(0.001)], 1, LatencyBudget(max_seconds=0.15, min_seconds=0.05, target_ci_pct=0.0))
    assert time.perf_counter() - start < 0.6
    assert not stats.stable and stats.runs >= 20


def _tiny_onnx_runner():
    """session.run of a one-node Add graph on 4 floats: a call of a few microseconds."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4]) for name in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "tiny", io[:1], io[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": np.ones((1, 4), np.float32)}
    return lambda: session.run(["y"], feed)


def test_a_microsecond_model_is_timed_stable_in_grouped_runs():
    """Single calls of a few µs hit the run cap before the time floor and were reported unstable; timed in groups
    (autorange), model and baseline alike get a stable median within the default budget."""
    model, baseline = _tiny_onnx_runner(), _tiny_onnx_runner()
    stats = measure_interleaved([model, baseline], 1, LatencyBudget())
    for s in stats:
        assert s.stable, s
        assert s.calls_per_run > 1 and s.runs >= 20
        assert s.p50_ms < LatencyBudget.min_timing_s * 1e3  # each figure is per call, not per group
        assert s.calls_per_run * s.mean_ms >= 0.2 * LatencyBudget.min_timing_s * 1e3  # the groups are not tiny
    assert stats[0].calls_per_run == stats[1].calls_per_run


def test_autorange_grows_the_calls_per_run_until_a_run_lasts_long_enough():
    now = [0]

    def clock() -> int:
        return now[0]

    def call_of(ns: int):
        def run() -> None:
            now[0] += ns
        return run

    budget = LatencyBudget(min_timing_s=1e-4)  # 100 µs
    assert calls_per_run([call_of(7_000)], budget, clock) == (20, 1 + 2 + 5 + 10 + 20)  # 20 × 7 µs ≥ 100 µs
    assert calls_per_run([call_of(200_000)], budget, clock) == (1, 1)  # long enough alone
    # the shortest of several runners decides: every runner's runs must last long enough
    assert calls_per_run([call_of(200_000), call_of(3_000)], budget, clock)[0] == 50
