"""Text featurization (hashed word n-grams, no silent truncation) and the fastText-style default text model."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import FIXTURES

from ticketpack.data import SplitConfig, TextPreprocessing, get
from ticketpack.data.text import TruncationWarning, collision_stats

REVIEWS = FIXTURES / "reviews"
TEXTS = ["Great battery, great sound!", "Not good at all. Would not buy again.", "bad"]


def test_defaults_hash_word_trigrams_into_a_large_space():
    prep = TextPreprocessing()
    assert prep.ngrams == 3 and 2**18 <= prep.num_buckets <= 2**20
    tokens = prep.tokens("not good at all")
    assert "not good" in tokens and "good at" in tokens and "at all" in tokens and "not good at" in tokens
    ids = prep.transform(["not good at all"])
    assert (ids[0] > 0).sum() == 9  # 4 words + 3 bigrams + 2 trigrams
    assert prep.token_id("not good") in ids[0] and prep.token_id("good") in ids[0]


def test_transform_is_deterministic_and_needs_no_torch():
    prep = TextPreprocessing(num_buckets=2**18, max_tokens=64)
    a = prep.transform(TEXTS)
    assert a.dtype == np.int64 and a.shape == (3, 64)
    assert np.array_equal(a, TextPreprocessing.model_validate_json(prep.model_dump_json()).transform(TEXTS))
    assert (a[2, 1:] == 0).all() and a[2, 0] > 0  # right-padded with id 0
    # a fresh interpreter, with torch made unimportable, gives the same ids (murmur3, like crc32, is not salted like hash())
    code = (
        "import sys, json; sys.modules['torch'] = None\n"
        "from ticketpack.data.preprocessing import TextPreprocessing\n"
        f"p = TextPreprocessing.model_validate_json({prep.model_dump_json()!r})\n"
        f"print(json.dumps(p.transform({TEXTS!r}).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert np.array_equal(np.array(eval(out)), a)


def test_transform_counting_reports_every_cut_document():
    prep = TextPreprocessing(max_tokens=5)
    x, lengths = prep.transform_counting(TEXTS)
    assert lengths.tolist() == [len(prep.tokens(t)) for t in TEXTS] and lengths[1] > 5
    assert (x[1] > 0).sum() == 5 and (x[0] > 0).sum() == 5  # cut to max_tokens
    assert np.array_equal(x, prep.transform(TEXTS))


def test_loading_a_domain_again_reuses_its_featurization_until_its_file_changes(tmp_path, monkeypatch):
    from ticketpack.data.domain import FeatureCache

    data = tmp_path / "reviews"
    shutil.copytree(REVIEWS, data)
    calls = []
    real = TextPreprocessing.transform_counting
    monkeypatch.setattr(TextPreprocessing, "transform_counting", lambda self, raw: calls.append(1) or real(self, raw))
    ds, prep = get(str(data)), TextPreprocessing(max_tokens=8, num_buckets=512)
    with FeatureCache().using():  # what a transfer worker or an executor keeps (tests/test_no_hidden_state.py)
        with pytest.warns(TruncationWarning):
            a = ds.load("books", 0, SplitConfig(), prep)
        with pytest.warns(TruncationWarning):  # another split seed: no new featurization, the same warning
            b = ds.load("books", 1, SplitConfig(), prep)
        again = ds.load("books", 0, SplitConfig(), prep)
        assert len(calls) == 1 and not np.array_equal(a.test.x, b.test.x)  # one featurization, two splits
        assert np.array_equal(again.train.x, a.train.x) and again.train.x is not a.train.x  # copies: none shares
        assert again.info == a.info
        path = data / "books.jsonl"
        path.write_text(path.read_text() + '{"text": "a review written after the first load", "label": "pos"}\n')
        changed = ds.load("books", 0, SplitConfig(), prep)
        assert len(calls) == 2 and changed.info["rows"] == a.info["rows"] + 1


def test_loading_warns_and_records_how_many_documents_were_cut():
    ds = get(REVIEWS)
    with pytest.warns(TruncationWarning, match=r"books: \d+ of 60 documents have more than max_tokens=8"):
        d = ds.load("books", 0, SplitConfig(), TextPreprocessing(max_tokens=8, num_buckets=512))
    assert d.info["truncated"] > 0 and d.info["max_tokens"] == 8 and d.info["longest_ids"] > 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # nothing cut: no warning
        d = ds.load("books", 0, SplitConfig(), TextPreprocessing(num_buckets=512))
    assert d.info["truncated"] == 0 and d.info["longest_ids"] <= d.preprocessing.max_tokens


def test_collision_stats_count_tokens_that_share_an_id():
    texts = [row["text"] for row in map(__import__("json").loads, (REVIEWS / "books.jsonl").read_text().splitlines())]
    big = collision_stats(TextPreprocessing(), texts)
    tiny = collision_stats(TextPreprocessing(num_buckets=16), texts)
    assert big["distinct_tokens"] == tiny["distinct_tokens"] > 100
    assert big["shared_id_tokens"] < 0.05 and tiny["shared_id_tokens"] == 1.0 and tiny["distinct_ids"] <= 15


# --- the model ---------------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def _data(**prep):
    prep = TextPreprocessing(**{"num_buckets": 4096, "max_tokens": 64, **prep})
    return get(REVIEWS).load("books", 0, SplitConfig(), prep)


def test_fasttext_trains_and_keeps_the_padding_row_zero():
    from ticketpack.models.fasttext import FastText
    from ticketpack.training.config import TrainConfig
    from ticketpack.training.train import train

    torch.set_num_threads(1)
    data = _data()
    torch.manual_seed(0)  # the hidden and output layers' initialization: not left to whatever ran before
    model = FastText(data.preprocessing.input_shape, data.num_classes, data.preprocessing.num_buckets,
                     embed_dim=8, hidden=8, dropout=0.1, token_dropout=0.2)
    cfg = TrainConfig(optimizer="adamw", lr=0.05, weight_decay=0.01, batch_size=8, epochs=15, patience=5)
    result = train(model, data, cfg, seed=0)
    assert result.val_accuracy >= 0.8 and result.test_accuracy >= 0.7  # the fixture is easy
    assert result.iterations <= 15 * 6  # stops early once validation stops improving (6 steps an epoch)
    assert torch.count_nonzero(model.embed.weight[0]) == 0


@pytest.mark.parametrize("optimizer,extra", [("adamw", {"weight_decay": 0.1}), ("sgd", {"weight_decay": 0.01})])
def test_pruned_rows_of_a_sparse_embedding_stay_exactly_zero(optimizer, extra):
    """The lazy row-wise optimizer keeps a masked table's pruned weights at zero itself (its update is multiplied
    by the mask, with no pass after the step): from nonzero initial weights, under decay."""
    from ticketpack.models.fasttext import FastText
    from ticketpack.training.config import TrainConfig
    from ticketpack.training.train import train

    torch.set_num_threads(1)
    data = _data()
    torch.manual_seed(0)
    model = FastText(data.preprocessing.input_shape, data.num_classes, data.preprocessing.num_buckets,
                     embed_dim=8, init="normal", sparse=True, token_dropout=0.0)
    before = model.embed.weight.detach().clone()
    gen = torch.Generator().manual_seed(1)
    mask = {n: torch.rand(p.shape, generator=gen) < 0.5 for n, p in model.named_parameters() if p.dim() > 1}
    cfg = TrainConfig(optimizer=optimizer, lr=0.5 if optimizer == "sgd" else 0.05, iterations=30, batch_size=8, **extra)
    result = train(model, data, cfg, seed=0, mask=mask)
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert (params[name][~m] == 0).all() and (result.state[name][~m] == 0).all()
    used = torch.from_numpy(np.unique(data.train.x[data.train.x > 0]))
    kept = mask["embed.weight"][used]
    assert (model.embed.weight[used][kept] != before[used][kept]).float().mean() > 0.99  # the kept weights trained


def test_fasttext_mean_ignores_padding():
    from ticketpack.models.fasttext import FastText

    torch.manual_seed(0)
    model = FastText((6,), 2, 50, embed_dim=4, init="normal").eval()
    short = torch.tensor([[3, 7, 0, 0, 0, 0]])
    same = torch.tensor([[7, 3, 0, 0, 0, 0]])
    assert torch.allclose(model(short), model(same))
    mean = model.embed.weight[[3, 7]].mean(0)
    assert torch.allclose(model(short), model.out(mean)[None], atol=1e-6)
    assert torch.isfinite(model(torch.zeros((1, 6), dtype=torch.int64))).all()  # an empty document


@pytest.mark.parametrize("options", [{}, {"hidden": 8, "dropout": 0.3, "token_dropout": 0.5}])
def test_fasttext_exports_to_onnx_with_the_same_logits(tmp_path, options):
    ort = pytest.importorskip("onnxruntime")
    from ticketpack.models.fasttext import FastText

    torch.manual_seed(0)
    prep = TextPreprocessing(num_buckets=2**12, max_tokens=32)
    model = FastText(prep.input_shape, 3, prep.num_buckets, embed_dim=8, init="normal", **options).eval()
    x = torch.from_numpy(prep.transform(TEXTS))
    path = tmp_path / "fasttext.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in __import__("onnx").load(str(path)).graph.node}
    assert "Gather" in ops and "RandomUniformLike" not in ops and "Mul" not in ops  # no token dropout, no mask multiply
    for batch in (x, x[:1]):
        got = session.run(["logits"], {"input": batch.numpy()})[0]
        with torch.no_grad():
            want = model(batch).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
