"""`ticketpack demo`: the whole pipeline on digits, end to end (a small grid to keep it quick)."""

from __future__ import annotations

import json

from ticketpack.demo import DemoConfig, DemoSummary, run_demo
from ticketpack.runtime.validate import validate_model


def test_demo_runs_every_stage_and_writes_a_summary(tmp_path):
    stages = []
    summary = run_demo(DemoConfig(rounds=3, seeds=1, levels=["50%"], jobs=1), tmp_path, on_stage=stages.append)
    assert [s[:3] for s in stages] == ["1/4", "2/4", "3/4", "4/4"]
    assert [r.variant for r in summary.rows] == ["dense", "ticket compact", "ticket sparse"]
    dense, compact, sparse = summary.rows
    assert dense.size_ratio == 1.0 and dense.weights_remaining == 1.0
    assert compact.weights_remaining < 1.0 and compact.size_ratio < 1.0  # neuron tickets compact
    assert sparse.accuracy == compact.accuracy  # same weights, another encoding
    assert set(compact.latency_ratio) == {1, 256}
    for row in summary.rows:
        assert validate_model(row.path).passed
    on_disk = DemoSummary.model_validate_json((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert (tmp_path / "transfer" / "accuracy_vs_sparsity.png").exists()
    assert json.loads((tmp_path / "transfer" / "report.json").read_text())["target"] == "rot30"
