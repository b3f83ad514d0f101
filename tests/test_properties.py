"""Hypothesis property tests: the input parsers, the preprocessing (text and image), the model card round-trip,
the sparse bitmask encode/decode and the sealed JSON files. Each property holds for every generated input; a
parser either returns a well-formed value or raises the one user-error type, never anything else."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pydantic import ValidationError

from ticketpack.core.errors import TicketpackError
from ticketpack.data.preprocessing import ImagePreprocessing, TextPreprocessing
from ticketpack.evaluate.gates import (
    MAX_BATCH_SIZE,
    parse_batch_limits,
    parse_batch_sizes,
)
from ticketpack.transfer.config import level_error

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- input parsers


@FAST
@given(st.text(max_size=40))
def test_batch_sizes_parse_to_sorted_bounded_positive_sizes_or_a_user_error(text):
    try:
        sizes = parse_batch_sizes(text)
    except TicketpackError as exc:
        assert "`batch_sizes`" in str(exc) and exc.fields == ("batch_sizes",)
        return
    assert sizes and list(sizes) == sorted(set(sizes))
    assert all(1 <= s <= MAX_BATCH_SIZE for s in sizes)


@FAST
@given(st.lists(st.integers(1, MAX_BATCH_SIZE), min_size=1, max_size=6))
def test_batch_sizes_round_trip(sizes):
    assert parse_batch_sizes(",".join(map(str, sizes))) == tuple(sorted(set(sizes)))


@FAST
@given(st.lists(st.text(max_size=20), max_size=4))
def test_batch_limits_parse_or_refuse(items):
    try:
        limits = parse_batch_limits(items)
    except TicketpackError as exc:
        assert "BATCH=MS" in str(exc)
        return
    assert all(b >= 1 and v > 0 for b, v in limits.items())


@FAST
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6)))
def test_percent_levels_outside_0_100_are_refused(value):
    text = f"{value}%"
    why = level_error(text)
    try:
        pct = float(text[:-1])
    except ValueError:
        assert why is not None
        return
    assert (why is None) == (0 < pct <= 100)


@FAST
@given(st.lists(st.one_of(st.integers(-5, 50), st.text(max_size=8)), min_size=1, max_size=4))
def test_transfer_levels_are_valid_or_a_validation_error(levels):
    from ticketpack.transfer import TransferConfig

    try:
        cfg = TransferConfig(ticket="t", target="rot30", levels=levels)
    except ValidationError:
        return
    for level in cfg.levels:
        assert level_error(level) is None
        assert isinstance(level, int) and level >= 0 or str(level).strip().endswith("%") or str(level).strip().isdigit()


@FAST
@given(st.text(min_size=1, max_size=60))
def test_serve_model_specs_parse_to_a_safe_name(spec):
    from ticketpack.serve.config import ModelSource

    try:
        src = ModelSource.parse(spec)
    except (TicketpackError, ValidationError):
        return
    assert src.name and "/" not in src.name


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_training_options_are_finite(lr):
    from ticketpack.training.config import TrainConfig

    try:
        cfg = TrainConfig(lr=lr)
    except ValidationError:
        assert not (np.isfinite(lr) and lr > 0)
        return
    assert np.isfinite(cfg.lr) and cfg.lr > 0


# ---------------------------------------------------------------- preprocessing


TEXT = TextPreprocessing(num_buckets=97, max_tokens=12, ngrams=2)


@FAST
@given(st.lists(st.text(max_size=80), min_size=1, max_size=8))
def test_text_features_have_the_card_shape_and_id_range(texts):
    x = TEXT.transform(texts)
    assert x.shape == (len(texts), TEXT.max_tokens) and x.dtype == np.int64
    assert ((x >= 0) & (x < TEXT.num_buckets)).all()
    for row, text in zip(x, texts):
        n = min(len(TEXT.tokens(text)), TEXT.max_tokens)
        assert (row[:n] > 0).all() and (row[n:] == 0).all()  # ids first, then padding
        assert row[:n].tolist() == [TEXT.token_id(t) for t in TEXT.tokens(text)[:n]]  # one hash: rows, lists, single
    assert np.array_equal(TEXT.transform(texts), x)  # deterministic


@FAST
@given(st.lists(st.one_of(st.integers(), st.none(), st.binary(max_size=4)), min_size=1, max_size=3))
def test_text_features_refuse_non_strings(values):
    with pytest.raises(TicketpackError):
        TEXT.transform(values)


IMAGE = ImagePreprocessing()


@FAST
@given(arrays(np.float64, st.sampled_from([(1, 64), (2, 8, 8), (1, 1, 8, 8), (3, 64), (2, 7), (64,)]),
              elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_image_inputs_become_finite_float32_or_a_user_error_without_warnings(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning fails the test
        try:
            out = IMAGE.transform(x)
        except TicketpackError:
            return
    assert out.dtype == np.float32 and out.shape[1:] == IMAGE.input_shape and np.isfinite(out).all()
    flat = np.asarray(x, dtype=np.float64).reshape(out.shape)
    np.testing.assert_allclose(out, ((flat - IMAGE.mean) / IMAGE.std).astype(np.float32), rtol=1e-6, atol=1e-30)


@FAST
@given(st.lists(st.one_of(st.just("   "), st.just(""), st.text(alphabet=" \t\n\r", max_size=5)), min_size=1, max_size=3),
       st.integers(0, 3))
def test_empty_or_blank_texts_are_found(blanks, at):
    from ticketpack.runtime.predictor import check_texts, empty_text_index

    texts = ["some words"] * at + blanks
    assert empty_text_index(texts) == at
    with pytest.raises(TicketpackError, match=f"text input {at} is empty"):
        check_texts(texts)


# ---------------------------------------------------------------- model card round-trip


labels_st = st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=6, unique=True)
accuracy_st = st.one_of(st.none(), st.floats(0, 1))
# a card's domain is one name, never a path (ticketpack.runtime.card._one_name refuses the rest)
domain_st = st.text(min_size=1, max_size=20).filter(
    lambda d: d not in (".", "..") and "/" not in d and "\\" not in d and d.isprintable())


@FAST
@given(labels=labels_st, acc=accuracy_st, dense=accuracy_st, domain=st.one_of(st.none(), domain_st))
def test_card_survives_embedding_in_onnx_and_reading_back(exported_digits, labels, acc, dense, domain):
    import onnx

    from ticketpack.runtime.card import parse_card
    from ticketpack.runtime.cardio import card_json, embed_card

    model = onnx.load(str(exported_digits), load_external_data=False)
    card = parse_card(card_json(model))
    changed = card.model_copy(update={
        "label_names": labels,
        "metrics": card.metrics.model_copy(update={"test_accuracy": acc, "dense_test_accuracy": dense}),
        "provenance": card.provenance.model_copy(update={"target_domain": domain}),
    })
    embed_card(model, changed)
    embed_card(model, changed)  # replacing a card leaves one card
    assert sum(p.key == "ticketpack" for p in model.metadata_props) == 1
    again = parse_card(card_json(onnx.load_from_string(model.SerializeToString())))
    assert again == changed


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_CARD_FIELDS = st.sampled_from(["task", "label_names", "input", "output_name", "preprocessing", "model",
                                "provenance", "sparsity", "metrics", "export", "parity", "weights_digest"])


def _card_garbage():
    """Random text; any JSON value; and JSON objects of this card schema version with card-like fields of random
    values, which get past the version check into the field validation."""
    from ticketpack.runtime.card import CARD_SCHEMA_VERSION

    current = st.dictionaries(_CARD_FIELDS, _JSON, max_size=6).map(
        lambda d: {**d, "schema_version": CARD_SCHEMA_VERSION})
    return st.text(max_size=200) | _JSON.map(json.dumps) | current.map(json.dumps)


@FAST
@given(_card_garbage())
def test_card_parser_refuses_garbage_with_a_user_error(text):
    """Garbage either parses into a card (practically never) or is a TicketpackError: one line naming its source.
    Any other exception fails the test."""
    from ticketpack.runtime.card import ModelCard, parse_card

    try:
        card = parse_card(text, "fuzz")
    except TicketpackError as exc:
        message = str(exc)
        assert message.startswith("fuzz: "), message
        assert "\n" not in message, message
    else:
        assert isinstance(card, ModelCard)


# ---------------------------------------------------------------- sparse bitmask encode/decode


def _identity_graph(w: np.ndarray):
    from onnx import TensorProto, helper, numpy_helper

    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(w.shape))
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [], [out],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=25, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(8, 40), st.integers(8, 40)),
              elements=st.floats(-4, 4, width=32, allow_subnormal=False)),
       st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_bitmask_encoding_decodes_to_the_same_weights(w, density, seed):
    import onnxruntime as ort
    from onnx import checker, numpy_helper

    from ticketpack.runtime.storage import bitmask_encode, nonzero_count, stored_weight

    rng = np.random.default_rng(seed)
    w = np.where(rng.random(w.shape) < density, w, np.float32(0)).astype(np.float32)
    model = _identity_graph(w)
    encoded = bitmask_encode(model, min_saving_bytes=0)
    checker.check_model(model)
    arrays_ = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    if encoded:  # only stored sparse when it saves bytes
        assert "w.bits" in arrays_ and "w.values" in arrays_
        assert arrays_["w.values"].size == 1 + int(np.count_nonzero(w))  # a leading 0, then the nonzeros
    key, nonzero, quantized = nonzero_count(arrays_, "w", list(w.shape))
    assert nonzero == int(np.count_nonzero(w)) and not quantized
    key, stored, quantized = stored_weight(arrays_, "w", list(w.shape))
    assert key == "w" and np.array_equal(stored.reshape(w.shape), w)  # decoded by the same code that names the parts
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    decoded = sess.run(["y"], {})[0]
    assert decoded.dtype == np.float32 and np.array_equal(decoded, w)  # bit for bit, zeros included


# ---------------------------------------------------------------- sealed JSON files


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=10))
json_doc = st.dictionaries(st.text(max_size=8).filter(lambda k: k != "digest"),
                           st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                                        max_leaves=10), max_size=6)


@FAST
@given(json_doc, st.data())
def test_sealed_documents_detect_any_changed_value(doc, data):
    from ticketpack.core.fileio import canonical_digest

    digest = canonical_digest(doc)
    assert canonical_digest(json.loads(json.dumps({**doc, "digest": digest}, indent=2))) == digest
    if doc:
        key = data.draw(st.sampled_from(sorted(doc)))
        changed = {**doc, key: [doc[key], "x"]}
        assert canonical_digest(changed) != digest
