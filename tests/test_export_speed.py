"""Export times the file against the unpruned dense float graph and warns when it is slower (issue 24: "int8 must
never make a model slower without saying so"). Correctness only: which ratios are recorded, which events are sent,
what the opt-out leaves out; never a timing threshold (a fake clock stands in where a result must be slow)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.export import speed
from ticketpack.export.exporter import export_model
from ticketpack.export.speed import SlowerThanDense
from ticketpack.runtime.card import SpeedVsDense
from ticketpack.runtime.cardio import read_card


@pytest.fixture(autouse=True)
def _short_budget(monkeypatch):
    monkeypatch.setattr(speed, "BUDGET_S", 0.2)  # the logic under test does not depend on the budget


def _file_twice_as_slow(monkeypatch, factor: float = 2.0) -> None:
    """A clock under which every call of the file's graph takes ``factor`` ms and every call of the dense one 1 ms."""
    monkeypatch.setattr(speed, "_timed", lambda which, run, calls: (factor if which == "file" else 1.0) * calls * 1e-3)


def test_a_compact_export_records_its_speed_against_dense_in_the_card(digits_ticket, tmp_path):
    events = []
    out = tmp_path / "c.onnx"
    result = export_model(digits_ticket, out, level=3, format="compact", threads=1, on_event=events.append)
    recorded = result.card.export.speed_vs_dense
    assert isinstance(recorded, SpeedVsDense)
    n_test = result.card.metrics.test_examples
    assert set(recorded.ratios) == {1, min(64, n_test)}
    assert all(r > 0 for r in recorded.ratios.values())
    assert recorded.threads == 1 and recorded.rounds >= speed.MIN_ROUNDS
    assert read_card(out).export.speed_vs_dense == recorded  # the written file carries the same figures
    assert "timing against the dense graph" in [e.message for e in events if e.kind == "status"]
    slow = [e for e in events if isinstance(e, SlowerThanDense)]
    assert [e.batch for e in slow] == [b for b, r in sorted(recorded.ratios.items()) if r > speed.MARGIN]
    assert (result.speed_note is None) == (not slow)


def test_a_file_slower_than_dense_sends_a_warning_with_batch_ratio_and_threads(digits_ticket, tmp_path, monkeypatch):
    _file_twice_as_slow(monkeypatch)
    events = []
    result = export_model(digits_ticket, tmp_path / "c.onnx", level=3, format="compact", threads=1,
                          on_event=events.append)
    n_test = result.card.metrics.test_examples
    slow = [e for e in events if isinstance(e, SlowerThanDense)]
    assert [(e.kind, e.stage, e.batch, e.ratio, e.threads) for e in slow] == [
        ("slower_than_dense", "export", 1, 2.0, 1), ("slower_than_dense", "export", min(64, n_test), 2.0, 1)]
    assert "2.00× the time of the unpruned dense float graph at batch 1" in slow[0].message
    assert "CPU, 1 thread;" in slow[0].message and "try --format dense" in slow[0].message
    assert result.card.export.speed_vs_dense.ratios == {1: 2.0, min(64, n_test): 2.0}
    assert result.speed_note == "; ".join(e.message for e in slow)


def test_within_the_noise_margin_nothing_is_reported(digits_ticket, tmp_path, monkeypatch):
    _file_twice_as_slow(monkeypatch, factor=1.05)
    events = []
    result = export_model(digits_ticket, tmp_path / "c.onnx", level=3, format="compact", threads=1,
                          on_event=events.append)
    assert set(result.card.export.speed_vs_dense.ratios.values()) == {1.05}
    assert result.speed_note is None and not [e for e in events if isinstance(e, SlowerThanDense)]


def _tiny_graph() -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_slow_ratio_is_measured_again_and_the_lower_median_kept(monkeypatch):
    import numpy as np

    windows = iter([(2.0, 5), (1.02, 6), (1.5, 5), (1.3, 7)])  # batch 1: slow once only; batch 30: slow twice
    monkeypatch.setattr(speed, "_median_ratio", lambda runs, calls, seconds: next(windows))
    measured = speed.measure(_tiny_graph(), _tiny_graph(), np.zeros((30, 4), np.float32), 1)
    assert measured.ratios == {1: 1.02, 30: 1.3} and measured.rounds == 11 and measured.threads == 1
    assert [w.batch for w in speed.slower(measured, "compact", "int8")] == [30]


def test_the_warning_names_what_to_try_for_each_kind_of_file():
    measured = SpeedVsDense(ratios={1: 1.3, 64: 0.8}, threads=None, cpus=4, rounds=5, onnxruntime="1.22.0")
    (int8,) = speed.slower(measured, "compact", "int8-static")
    assert int8.batch == 1 and int8.ratio == 1.3 and int8.threads is None
    assert "(compact, int8-static)" in int8.message and "try --quantize none (the float file)" in int8.message
    assert "ONNX Runtime's default threads (4 CPUs)" in int8.message
    assert "try --format compact" in speed.slower(measured, "sparse", "none")[0].message
    assert speed.batch_sizes(1) == [1] and speed.batch_sizes(30) == [1, 30] and speed.batch_sizes(500) == [1, 64]


def test_no_speed_check_records_nothing_and_the_dense_file_is_not_timed(digits_ticket, tmp_path, monkeypatch):
    _file_twice_as_slow(monkeypatch)
    calls = []
    monkeypatch.setattr(speed, "measure", lambda *a, **k: calls.append(a))
    for fmt, check in (("compact", False), ("dense", True)):
        events = []
        result = export_model(digits_ticket, tmp_path / f"{fmt}.onnx", level=3, format=fmt, threads=1,
                              speed_check=check, on_event=events.append)
        assert result.card.export.speed_vs_dense is None and result.speed_note is None
        assert not [e for e in events if isinstance(e, SlowerThanDense) or "timing" in e.message]
    assert calls == []


def test_the_cli_prints_the_warning_and_takes_no_speed_check(digits_ticket, tmp_path, monkeypatch):
    _file_twice_as_slow(monkeypatch)
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(digits_ticket), "--level", "3", "-o", str(tmp_path / "a.onnx"),
                              "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "at batch 1" in res.output and "--format dense" in res.output
    res = runner.invoke(app, ["export", str(digits_ticket), "--level", "3", "-o", str(tmp_path / "b.onnx"),
                              "--threads", "1", "--no-speed-check"])
    assert res.exit_code == 0, res.output
    assert "at batch 1" not in res.output and read_card(tmp_path / "b.onnx").export.speed_vs_dense is None
