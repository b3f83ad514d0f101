"""The real multi-domain review data in ../shared/data/mdsd (skipped, with the reason, when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_data_or_skip

from ticketpack.data import SplitConfig, get
from ticketpack.export.exporter import export_model
from ticketpack.runtime.predictor import load
from ticketpack.search import SearchConfig, Ticket, search
from ticketpack.transfer import TransferConfig, TransferRun, run_transfer


@pytest.mark.parametrize("domain,duplicates", [("books", 44), ("dvd", 46), ("electronics", 34)])
def test_every_review_domain_loads_balanced_with_its_documented_duplicates_dropped(domain, duplicates):
    data = get(shared_data_or_skip()).load(domain, 0, SplitConfig())
    assert data.label_names == ["0", "1"]
    assert data.info["rows"] == 2000 and data.info["duplicates_dropped"] == duplicates
    assert len(data.train) + len(data.val) + len(data.test) == 2000 - duplicates
    assert abs(float(data.test.y.mean()) - 0.5) < 0.05  # stratified


def test_the_text_defaults_say_what_they_do_to_the_real_reviews():
    """serve's default --max-text-chars takes every shared review; max_tokens cuts the one review the field's
    description names, by what it says (bench/text_lengths.py prints the same figures)."""
    from ticketpack.data import TextPreprocessing
    from ticketpack.data.text import read_rows
    from ticketpack.serve.config import ServeConfig

    texts = [t for f in sorted(shared_data_or_skip().glob("*.jsonl")) for t, _ in read_rows(f)]
    prep = TextPreprocessing()
    ids = np.array([len(prep.tokens(t)) for t in texts])
    longest = max(len(t) for t in texts)
    assert longest == 21_217 and ServeConfig.model_fields["max_text_chars"].default >= 1.5 * longest
    cut = ids[ids > prep.max_tokens]
    assert len(texts) == 6000 and list(cut) == [10_599]  # one review, losing 2,407 ids
    description = TextPreprocessing.model_fields["max_tokens"].description
    assert "10,599 ids" in description and "2,407" in description and "6,000 reviews" in description


def test_books_ticket_transfers_to_electronics_and_serves_raw_reviews_through_onnx(tmp_path):
    mdsd = shared_data_or_skip()
    cfg = SearchConfig.model_validate({
        "dataset": str(mdsd), "source": "books", "model": {"name": "bow", "options": {"embed_dim": 16, "hidden": 16}},
        "text": {"num_buckets": 4096, "max_tokens": 128}, "train": {"epochs": 3, "lr": 0.01},
        "prune": {"rounds": 1, "rate": 0.5}, "threads": 1,
    })
    search(cfg, tmp_path / "ticket")
    report = run_transfer(TransferConfig(ticket=str(tmp_path / "ticket"), target="electronics", inits=["ticket"], seeds=1),
                          tmp_path / "run")
    assert report.jobs_finished == 1 and report.results[0].target_test_accuracy > 0.6  # above chance on real reviews
    exported = export_model(tmp_path / "run", tmp_path / "m.onnx", level=1, init="ticket", format="sparse", threads=1)
    assert exported.card.provenance.target_domain == "electronics"

    run = TransferRun.load(tmp_path / "run")
    texts = list(run.target_data().test.raw[:16])
    state, _, _ = run.weights(1, "ticket", 0)
    model = Ticket.load(tmp_path / "ticket").build_model()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        prep = run.ticket.manifest.dataset.preprocessing
        want = torch.softmax(model(torch.from_numpy(prep.transform(texts))), 1).numpy()
    assert np.abs(load(tmp_path / "m.onnx").predict_proba(texts) - want).max() <= 1e-5

