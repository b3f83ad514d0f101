"""`ticketpack demo`: the whole pipeline on digits, end to end (a small grid to keep it quick)."""

from __future__ import annotations

import json

from ticketpack.demo import DemoConfig, DemoSummary, run_demo
from ticketpack.runtime.validate import validate_model


def test_demo_runs_every_stage_and_writes_a_summary(tmp_path):
    events = []
    summary = run_demo(DemoConfig(rounds=3, seeds=1, levels=["50%"], jobs=1), tmp_path, on_event=events.append)
    assert [(e.stage, e.kind, e.message[:3]) for e in events] == [("demo", "status", f"{i}/4") for i in range(1, 5)]
    # a neuron ticket (the default) keeps whole units: a sparse file would be the compact graph again, so none
    assert [r.variant for r in summary.rows] == ["dense", "ticket compact"]
    assert "would store the same graph" in events[2].message
    dense, compact = summary.rows
    assert dense.size_ratio == 1.0 and dense.weights_remaining == 1.0
    assert compact.weights_remaining < 1.0 and compact.size_ratio < 1.0  # neuron tickets compact
    assert set(compact.latency_ratio) == {1, 256}
    for row in summary.rows:
        assert validate_model(row.path).passed
    on_disk = DemoSummary.model_validate_json((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert (tmp_path / "transfer" / "accuracy_vs_sparsity.png").exists()
    assert json.loads((tmp_path / "transfer" / "report.json").read_text())["target"] == "rot30"


def test_a_weight_ticket_demo_also_exports_and_measures_the_sparse_encoding(tmp_path):
    summary = run_demo(DemoConfig(rounds=2, seeds=1, levels=["70%"], jobs=1, granularity="weight"), tmp_path)
    assert [r.variant for r in summary.rows] == ["dense", "ticket compact", "ticket sparse"]
    _, compact, sparse = summary.rows
    assert sparse.accuracy == compact.accuracy  # same weights, another encoding
    assert validate_model(sparse.path).passed
