"""`ticketpack serve` speaks the Open Inference Protocol (KServe v2) too: a real `ticketpack serve` subprocess,
called by a client nobody here wrote (`tritonclient[http]`'s InferenceServerClient) and, for bad input, by httpx.

Labels and probabilities are checked against `ticketpack.load(path)` (what `ticketpack predict` runs) on the same
inputs; every bad request gets the protocol's `{"error": message}` with a 4xx status."""

from __future__ import annotations

import struct
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ticketpack[serve]'")
httpx = pytest.importorskip("httpx")

from test_serve import _free_port, _serve, _wait_ready  # noqa: E402  (one way to start a server in tests)

import ticketpack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_BATCH, MAX_TEXT = 8, 200
TEXTS = ["a wonderful, moving book", "boring and far too long", "it arrived broken", "Ünïcode façade — naïve café"]


@contextmanager
def _serving(digits: Path, text: Path):
    """`ticketpack serve digits=... reviews=...` on a free loopback port: (host:port, url)."""
    port = _free_port()
    proc = _serve(f"digits={digits}", f"reviews={text}", "--port", str(port), "--max-batch", str(MAX_BATCH),
                  "--max-text-chars", str(MAX_TEXT), "--no-access-log")
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, timeout=90)
        yield f"127.0.0.1:{port}", url
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def server(exported_digits, exported_text):
    with _serving(exported_digits, exported_text) as s:
        yield s


@pytest.fixture(scope="module")
def triton(server):
    """tritonclient's InferenceServerClient on the server."""
    http = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http] (the test extra): "
                               "pip install 'tritonclient[http]'")
    client = http.InferenceServerClient(url=server[0], network_timeout=60.0)
    yield http, client
    client.close()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[1], timeout=30) as c:
        yield c


def _digits(n: int) -> np.ndarray:
    """n digits images, raw 0-16 intensities, (n, 8, 8, 1) float32: the protocol's (N, H, W, C) layout."""
    from sklearn.datasets import load_digits

    return load_digits().images[:n].astype(np.float32)[..., None]


# ---- health and metadata ---------------------------------------------------------------------------------------


def test_health_and_readiness_through_tritonclient(triton):
    _, c = triton
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("digits") and c.is_model_ready("reviews") and c.is_model_ready("digits", "1")
    assert not c.is_model_ready("nope") and not c.is_model_ready("digits", "2")


def test_server_metadata_names_ticketpack_its_version_and_the_binary_extension(triton):
    meta = triton[1].get_server_metadata()
    assert meta == {"name": "ticketpack", "version": ticketpack.__version__, "extensions": ["binary_tensor_data"]}


def test_model_metadata_gives_each_models_input_and_outputs(triton, exported_digits, exported_text):
    c = triton[1]
    digits, reviews = c.get_model_metadata("digits"), c.get_model_metadata("reviews", "1")
    classes = {"digits": len(ticketpack.load(exported_digits).labels), "reviews": len(ticketpack.load(exported_text).labels)}
    eight_bit = getattr(ticketpack.load(exported_digits), "self_contained", False)  # such a file takes uint8 pixels
    assert digits["inputs"] == [{"name": "image", "datatype": "UINT8" if eight_bit else "FP32", "shape": [-1, 8, 8, 1]}]
    assert reviews["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    for meta in (digits, reviews):
        assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
        k = classes[meta["name"]]
        assert meta["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                                   {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
                                   {"name": "logits", "datatype": "FP32", "shape": [-1, k]}]


# ---- infer: the same labels and probabilities as ticketpack.load ---------------------------------------------


def _infer(triton, model: str, name: str, array: np.ndarray, datatype: str, binary: bool, outputs=None):
    http, c = triton
    tensor = http.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    requested = None if outputs is None else [http.InferRequestedOutput(o, binary_data=binary) for o in outputs]
    return c.infer(model, [tensor], outputs=requested)


def _labels(result) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("label").ravel()]


@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_digits_infer_gives_the_offline_predictors_labels_and_probabilities(triton, exported_digits, datatype, binary):
    images = _digits(MAX_BATCH).astype(np.float32 if datatype == "FP32" else np.uint8)
    offline = ticketpack.load(exported_digits)
    result = _infer(triton, "digits", "image", images, datatype, binary,
                    outputs=None if binary else ["label", "probabilities"])
    probs = result.as_numpy("probabilities")
    assert probs.dtype == np.float32 and probs.shape == (MAX_BATCH, len(offline.labels))
    np.testing.assert_allclose(probs, offline.predict_proba(images), rtol=0, atol=1e-6)
    assert _labels(result) == offline.predict(images)
    response = result.get_response()
    assert response["model_name"] == "digits"
    sent_binary = ["parameters" in o and "binary_data_size" in o["parameters"] for o in response["outputs"]]
    assert sent_binary == [binary, binary]  # tritonclient asks for binary outputs unless it names the outputs


@pytest.mark.parametrize("shape", ["N", "Nx1"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_text_infer_with_bytes_gives_the_offline_predictors_labels_and_probabilities(triton, exported_text, shape, binary):
    texts = np.array(TEXTS, dtype=object)
    if shape == "Nx1":
        texts = texts[:, None]
    offline = ticketpack.load(exported_text)
    result = _infer(triton, "reviews", "text", texts, "BYTES", binary)
    np.testing.assert_allclose(result.as_numpy("probabilities"), offline.predict_proba(TEXTS), rtol=0, atol=1e-6)
    assert _labels(result) == offline.predict(TEXTS)


def test_outputs_in_the_request_pick_what_is_answered_and_logits_are_the_models(triton, exported_digits):
    images = _digits(3)
    offline = ticketpack.load(exported_digits)
    result = _infer(triton, "digits", "image", images, "FP32", True, outputs=["logits"])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["logits"]
    np.testing.assert_allclose(result.as_numpy("logits"), offline.logits(images), rtol=0, atol=1e-5)
    assert result.as_numpy("label") is None


def test_versions_route_and_request_id(client, exported_text):
    body = {"id": "req-7", "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS[:2]}]}
    r = client.post("/v2/models/reviews/versions/1/infer", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    out = r.json()
    assert out["id"] == "req-7" and out["model_name"] == "reviews" and out["model_version"] == "1"
    assert out["outputs"][0] == {"name": "label", "shape": [2], "datatype": "BYTES",
                                 "data": ticketpack.load(exported_text).predict(TEXTS[:2])}


def test_nested_json_data_is_taken_row_major(client, exported_digits):
    images = _digits(2)
    body = {"inputs": [{"name": "image", "shape": [2, 8, 8, 1], "datatype": "FP32", "data": images.tolist()}]}
    r = client.post("/v2/models/digits/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == ticketpack.load(exported_digits).predict(images)


# ---- bad input: {"error": message}, 4xx ------------------------------------------------------------------------


def _image(**over) -> dict:
    return {"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0.0] * 64, **over}


def _text(**over) -> dict:
    return {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["fine"], **over}


def _binary_body(header: dict, tail: bytes) -> tuple[bytes, dict]:
    head = __import__("json").dumps(header).encode()
    return head + tail, {"Inference-Header-Content-Length": str(len(head))}


BAD = [
    # (id, model, body (or (bytes, headers)), status, words in the message)
    ("unknown model", "nope", {"inputs": [_text()]}, 404, "no model named 'nope'"),
    ("unknown version", "reviews/versions/3", {"inputs": [_text()]}, 404, "no version '3'"),
    ("BYTES to an image model", "digits", {"inputs": [_image(datatype="BYTES", data=["x"] * 64)]}, 400, "is BYTES; model 'digits' takes"),
    ("FP32 to a text model", "reviews", {"inputs": [_text(datatype="FP32", data=[1.0])]}, 400, "takes BYTES"),
    ("an unknown datatype", "digits", {"inputs": [_image(datatype="FOO")]}, 400, "is FOO"),
    ("shape and data disagree", "digits", {"inputs": [_image(shape=[2, 8, 8, 1])]}, 400, "128 values; its data has 64"),
    ("texts and shape disagree", "reviews", {"inputs": [_text(shape=[3])]}, 400, "3 values; its data has 1"),
    ("wrong image shape", "digits", {"inputs": [_image(shape=[1, 64], data=[0.0] * 64)]}, 400, "(N, H, W, C)"),
    ("NCHW image", "digits", {"inputs": [_image(shape=[1, 1, 8, 8])]}, 400, "[-1, 8, 8, 1]"),
    ("no input", "digits", {"inputs": []}, 400, "0 inputs"),
    ("missing inputs", "digits", {"outputs": [{"name": "label"}]}, 400, "inputs"),
    ("two inputs", "digits", {"inputs": [_image(), _image()]}, 400, "2 inputs"),
    ("wrong input name", "digits", {"inputs": [_image(name="pixels")]}, 400, "no input 'pixels'"),
    ("unknown output", "digits", {"inputs": [_image()], "outputs": [{"name": "scores"}]}, 400, "no output 'scores'"),
    ("a string among numbers", "digits", {"inputs": [_image(data=["0"] * 64)]}, 400, "not a number"),
    ("a number among texts", "reviews", {"inputs": [_text(data=[7])]}, 400, "not a string"),
    ("no data", "reviews", {"inputs": [_text(data=None)]}, 400, "no data"),
    ("negative dimension", "digits", {"inputs": [_image(shape=[-1, 8, 8, 1])]}, 400, "shape"),
    ("empty batch", "digits", {"inputs": [_image(shape=[0, 8, 8, 1], data=[])]}, 400, "at least one"),
    ("UINT8 out of range", "digits", {"inputs": [_image(datatype="UINT8", data=[300] + [0] * 63)]}, 400, "0 to 255"),
    ("NaN pixels", "digits", (b'{"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": ['
                              + b",".join([b"NaN"] * 64) + b"]}]}", {"content-type": "application/json"}), 400, "NaN"),
    ("infinite pixel", "digits", {"inputs": [_image(data=[1e39] + [0.0] * 63)]}, 400, "infinite"),
    ("empty text", "reviews", {"inputs": [_text(data=["  "])]}, 400, "empty"),
    ("malformed JSON", "reviews", (b'{"inputs": [', {"content-type": "application/json"}), 400, "malformed JSON"),
    ("not an object", "reviews", {"_json": ["x"]}, 400, "JSON object"),
    ("batch over the limit", "reviews", {"inputs": [_text(shape=[MAX_BATCH + 1], data=["ok"] * (MAX_BATCH + 1))]}, 413, f"at most {MAX_BATCH}"),
    ("text over the limit", "reviews", {"inputs": [_text(data=["y" * (MAX_TEXT + 1)])]}, 413, "characters"),
    ("binary size past the body", "digits", _binary_body({"inputs": [_image(data=None, parameters={"binary_data_size": 512})]}, b"\0" * 256), 400, "binary_data_size"),
    ("binary size not the shape's", "digits", _binary_body({"inputs": [_image(data=None, parameters={"binary_data_size": 8})]}, b"\0" * 8), 400, "256 bytes"),
    ("binary BYTES cut short", "reviews", _binary_body({"inputs": [_text(data=None, parameters={"binary_data_size": 6})]}, struct.pack("<I", 9) + b"ab"), 400, "past the end"),
    ("binary BYTES not UTF-8", "reviews", _binary_body({"inputs": [_text(data=None, parameters={"binary_data_size": 6})]}, struct.pack("<I", 2) + b"\xff\xfe"), 400, "UTF-8"),
    ("header length past the body", "reviews", (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}), 400, "Inference-Header-Content-Length"),
]


@pytest.mark.parametrize("model,body,status,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_answers_the_protocols_error_with_a_4xx(client, model, body, status, words):
    if isinstance(body, tuple):
        r = client.post(f"/v2/models/{model}/infer", content=body[0], headers=body[1])
    else:
        r = client.post(f"/v2/models/{model}/infer", json=body.get("_json", body))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    answer = r.json()
    assert set(answer) == {"error"} and isinstance(answer["error"], str), answer
    assert words in answer["error"], answer
    assert client.post("/v2/models/reviews/infer", json={"inputs": [_text()]}).status_code == 200


def test_unknown_model_metadata_and_readiness_answer_404_in_the_protocols_format(client):
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/digits/versions/9"):
        r = client.get(path)
        assert r.status_code == 404 and set(r.json()) == {"error"}, (path, r.text)


def test_tritonclient_raises_the_servers_message_for_bad_input(triton):
    http, c = triton
    tensor = http.InferInput("image", [1, 8, 8, 1], "BYTES")
    tensor.set_data_from_numpy(np.array(["x"] * 64, dtype=object).reshape(1, 8, 8, 1))
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="is BYTES; model 'digits' takes .*UINT8") as caught:
        c.infer("digits", [tensor])
    assert caught.value.status() == "400"


def test_the_v1_api_keeps_its_own_error_format(client):
    r = client.post("/v1/models/nope/predict", json={"inputs": ["x"]})
    assert r.status_code == 404 and r.json()["error"] == "model_not_found" and r.json()["message"]


def test_a_body_over_the_limit_answers_413_in_the_protocols_format_sized_or_streamed(client):
    big = b'{"inputs": [' + b" " * 300_000 + b"]}"  # over this server's limit (a full batch of its largest inputs)
    for content in (big, iter([big[:1000], big[1000:]])):  # with a content-length, then chunked without one
        r = client.post("/v2/models/reviews/infer", content=content, headers={"content-type": "application/json"})
        assert r.status_code == 413 and set(r.json()) == {"error"} and "larger than" in r.json()["error"], r.text


def _requests_total(client, model: str, status: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(s.value for f in families for s in f.samples if s.name == "ticketpack_predict_requests_total"
               and s.labels == {"model": model, "status": status})


def test_infer_calls_are_counted_in_the_predict_metrics(client):
    before = {s: _requests_total(client, "digits", s) for s in ("200", "400")}
    assert client.post("/v2/models/digits/infer", json={"inputs": [_image()]}).status_code == 200
    assert client.post("/v2/models/digits/versions/1/infer", json={"inputs": [_image(datatype="BYTES")]}).status_code == 400
    assert {s: _requests_total(client, "digits", s) - before[s] for s in before} == {"200": 1, "400": 1}


def test_self_contained_files_answer_alike(triton, digits_ticket, text_ticket, tmp_path_factory):
    """Files whose graph takes raw inputs (`export --self-contained`): uint8 pixels advertised, the same answers as
    ticketpack.load's, FP32 and UINT8 images and BYTES texts alike."""
    from ticketpack.export.exporter import export_model

    where = tmp_path_factory.mktemp("self-contained")
    digits, text = where / "digits.onnx", where / "text.onnx"
    export_model(digits_ticket, digits, level=3, format="compact", threads=1, self_contained=True)
    export_model(text_ticket, text, level=2, format="compact", threads=1, self_contained=True)
    http = triton[0]
    offline = {"digits": ticketpack.load(digits), "reviews": ticketpack.load(text)}
    assert offline["digits"].self_contained and offline["reviews"].self_contained
    images, texts = _digits(MAX_BATCH), np.array(TEXTS, dtype=object)
    with _serving(digits, text) as (address, _):
        c = http.InferenceServerClient(url=address, network_timeout=60.0)
        try:
            assert c.get_model_metadata("digits")["inputs"][0]["datatype"] == "UINT8"
            cases = [("digits", "image", images, "FP32"), ("digits", "image", images.astype(np.uint8), "UINT8"),
                     ("reviews", "text", texts, "BYTES")]
            for model, name, array, datatype in cases:
                result = _infer((http, c), model, name, array, datatype, True, outputs=["label", "probabilities", "logits"])
                raw = TEXTS if model == "reviews" else array
                np.testing.assert_allclose(result.as_numpy("probabilities"), offline[model].predict_proba(raw), rtol=0, atol=1e-6)
                np.testing.assert_allclose(result.as_numpy("logits"), offline[model].logits(raw), rtol=0, atol=1e-5)
                assert _labels(result) == offline[model].predict(raw), (model, datatype)
        finally:
            c.close()


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_infer_reads_the_body_as_json_whatever_its_content_type_says(server, content_type):
    """As Triton does: tritonclient sends no content type, `curl -d` a form's."""
    body = __import__("json").dumps({"inputs": [_text()]}).encode()
    headers = {} if content_type is None else {"content-type": content_type}
    r = httpx.post(f"{server[1]}/v2/models/reviews/infer", content=body, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["outputs"][0]["name"] == "label", r.text
