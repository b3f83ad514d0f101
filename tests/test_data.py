"""Datasets: digits domains, text directories, stratified deterministic splits, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FIXTURES

from ticketpack.core.errors import TicketpackError
from ticketpack.data import SplitConfig, TextPreprocessing, get
from ticketpack.data.digits import LISTED_DOMAINS


@pytest.mark.parametrize("domain", LISTED_DOMAINS + ["rot90"])
def test_every_digits_domain_loads_with_ten_classes_in_every_split(domain):
    d = get("digits").load(domain, 0, SplitConfig())
    assert d.train.x.shape[1:] == (1, 8, 8) and d.train.x.dtype == np.float32
    for split in (d.train, d.val, d.test):
        assert set(np.unique(split.y)) == set(range(10))
    assert len(d.train) + len(d.val) + len(d.test) == 1797


def test_digits_splits_are_deterministic_and_shared_across_domains():
    a = get("digits").load("clean", 3, SplitConfig())
    b = get("digits").load("rot45", 3, SplitConfig())
    c = get("digits").load("clean", 4, SplitConfig())
    assert np.array_equal(a.test.y, b.test.y)  # same indices, shifted images
    assert not np.array_equal(a.test.x, b.test.x)
    assert not np.array_equal(a.test.x, c.test.x)
    assert np.array_equal(a.test.x, get("digits").load("clean", 3, SplitConfig()).test.x)


def test_digits_shifts_change_the_images():
    clean = get("digits").load("clean", 0, SplitConfig()).train.raw
    for domain in ("rot30", "invert", "blur", "noise"):
        shifted = get("digits").load(domain, 0, SplitConfig()).train.raw
        assert np.abs(shifted - clean).mean() > 0.5, domain
        assert shifted.min() >= 0 and shifted.max() <= 16


def test_unknown_digits_domain_lists_the_known_ones():
    with pytest.raises(TicketpackError, match="rot45.*invert"):
        get("digits").load("sideways", 0, SplitConfig())


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(TicketpackError, match="known: digits"):
        get("mnist")


def test_text_directory_lists_domains_and_keeps_string_labels():
    ds = get(FIXTURES / "reviews")
    assert ds.domains() == ["books", "electronics"]
    d = ds.load("books", 0, SplitConfig(), TextPreprocessing(max_tokens=16, num_buckets=256))
    assert d.label_names == ["neg", "pos"]
    assert d.train.x.dtype == np.int64 and d.train.x.shape[1] == 16
    assert d.train.x.max() < 256 and (d.train.x > 0).any()


def test_hashing_is_deterministic_and_pads_with_zero():
    prep = TextPreprocessing(max_tokens=6, num_buckets=1000)
    ids = prep.transform(["Great battery, great sound!", "bad"])
    assert np.array_equal(ids, prep.transform(["great BATTERY great sound", "Bad"]))
    assert ids[0, 0] == ids[0, 2]  # "great" twice, same bucket
    assert (ids[1, 1:] == 0).all() and ids[1, 0] > 0


def test_bigrams_add_tokens():
    assert TextPreprocessing(ngrams=2).tokens("not good at all") == ["not", "good", "at", "all", "not good", "good at", "at all"]


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(lines), encoding="utf-8")
    return tmp_path


def test_malformed_jsonl_line_is_named(tmp_path):
    root = _write(tmp_path, "a.jsonl", [json.dumps({"text": "ok", "label": 1}) + "\n", "{not json\n"])
    with pytest.raises(TicketpackError, match=r"a\.jsonl:2: not valid JSON"):
        get(root).load("a", 0, SplitConfig())


def test_row_without_label_is_named(tmp_path):
    root = _write(tmp_path, "a.jsonl", [json.dumps({"text": "ok"}) + "\n"])
    with pytest.raises(TicketpackError, match=r"a\.jsonl:1: expected an object"):
        get(root).load("a", 0, SplitConfig())


def test_one_class_domain_is_refused(tmp_path):
    root = _write(tmp_path, "a.jsonl", [json.dumps({"text": f"t{i}", "label": 1}) + "\n" for i in range(10)])
    with pytest.raises(TicketpackError, match="only one class"):
        get(root).load("a", 0, SplitConfig())


def test_empty_domain_is_refused(tmp_path):
    root = _write(tmp_path, "a.jsonl", ["\n"])
    with pytest.raises(TicketpackError, match="no rows"):
        get(root).load("a", 0, SplitConfig())


def test_csv_domain_with_int_labels(tmp_path):
    rows = ["text,label\n"] + [f"\"review {i}, with comma\",{i % 2}\n" for i in range(20)]
    d = get(_write(tmp_path, "shop.csv", rows)).load("shop", 0, SplitConfig())
    assert d.label_names == ["0", "1"] and len(d.train) + len(d.val) + len(d.test) == 20


def test_exact_duplicates_are_dropped_before_splitting(tmp_path):
    lines = [json.dumps({"text": f"text {i % 10}", "label": i % 2}) + "\n" for i in range(40)]
    d = get(_write(tmp_path, "a.jsonl", lines)).load("a", 0, SplitConfig(val_fraction=0.3, test_fraction=0.3))
    assert d.info["duplicates_dropped"] == 30
    all_raw = list(d.train.raw) + list(d.val.raw) + list(d.test.raw)
    assert len(all_raw) == len(set(all_raw)) == 10


def test_image_preprocessing_accepts_flat_and_2d_inputs_and_rejects_bad_shapes():
    from ticketpack.data import ImagePreprocessing

    prep = ImagePreprocessing()
    flat = np.full((2, 64), 16.0)
    assert prep.transform(flat).shape == (2, 1, 8, 8)
    assert prep.transform(np.zeros((3, 8, 8))).shape == (3, 1, 8, 8)
    assert float(prep.transform(flat).max()) == 1.0
    with pytest.raises(TicketpackError, match="shape"):
        prep.transform(np.zeros((2, 7, 7)))


def test_docs_state_the_text_featurization_the_card_records():
    """docs/data.md gives the same recipe as the card's `featurization` and `bucket_rule` (the card is tested to be
    enough to recompute the ids in tests/test_runtime_only.py)."""
    from pathlib import Path

    from ticketpack.data.kinds.text import BUCKET_RULES, FEATURIZATIONS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text(encoding="utf-8")
    for hash_ in ("crc32", "murmur3"):  # crc32: files made before murmur3 became the default
        prep = TextPreprocessing(hash=hash_)
        assert prep.bucket_rule == BUCKET_RULES[hash_] and prep.featurization == FEATURIZATIONS[hash_]
        needles = ["str.lower", "re.findall", "ngram_separator", "pad_id"]
        needles += ["0xEDB88320"] if hash_ == "crc32" else ["U+0130", "MurmurHash3_x86_32", "signed=False", "C.UTF-8"]
        for needle in (BUCKET_RULES[hash_], *needles):
            assert needle in doc and (needle in FEATURIZATIONS[hash_] or needle == BUCKET_RULES[hash_]), needle



def test_a_preprocessings_options_leave_out_what_it_only_states():
    """A search pinned to a ticket's preprocessing (a transfer's target search) gets its options, not the fields that
    only state the recipe or the training data's range: those change as ticketpack learns to say more, and a run
    planned before must still resume."""
    from ticketpack.data.kinds.image import ImagePreprocessing
    from ticketpack.data.kinds.text import TextPreprocessing

    text = TextPreprocessing()
    assert {"featurization", "bucket_rule", "ngram_separator"} <= TextPreprocessing.stated_fields()
    assert not TextPreprocessing.stated_fields() & set(text.options())
    assert text.options()["num_buckets"] == text.num_buckets and "kind" not in text.options()
    image = ImagePreprocessing(train_pixel_min=0.0, train_pixel_max=16.0)
    assert {"train_pixel_min", "train_pixel_max"} <= ImagePreprocessing.stated_fields()
    assert "train_pixel_min" not in image.options() and image.options()["pixel_max"] == image.pixel_max
    rebuilt = ImagePreprocessing.model_validate({"kind": "image", **image.options()})  # the same transform, unstated
    assert rebuilt == image.model_copy(update={"train_pixel_min": None, "train_pixel_max": None})
