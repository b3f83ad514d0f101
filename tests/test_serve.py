"""`ticketpack serve`: a real server on a loopback port, spoken to over HTTP.

Most tests share one in-process server (uvicorn in a thread) holding a digits model and a text model with small
limits; start-up refusal, SIGTERM and the missing-extra message run the real command in a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ticketpack[serve]'")
httpx = pytest.importorskip("httpx")

import uvicorn  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import ticketpack  # noqa: E402
from ticketpack.core.errors import TicketpackError  # noqa: E402
from ticketpack.serve.app import bind, create_app  # noqa: E402
from ticketpack.serve.config import ModelSource, ServeConfig  # noqa: E402
from ticketpack.serve.models import load_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_BATCH, MAX_TEXT = 8, 200


class ThreadServer:
    """uvicorn serving ``config``'s models in a daemon thread on 127.0.0.1 and a free port."""

    def __init__(self, config: ServeConfig) -> None:
        self.app = create_app(config, load_models(config))
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def _config(exported_digits: Path, exported_text: Path) -> ServeConfig:
    return ServeConfig(
        models=[ModelSource(name="digits", path=exported_digits), ModelSource(name="reviews", path=exported_text)],
        max_batch=MAX_BATCH, max_text_chars=MAX_TEXT, threads=1, provider="cpu",
    )


@pytest.fixture(scope="module")
def server(exported_digits, exported_text):
    with ThreadServer(_config(exported_digits, exported_text)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _digits_images(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images[:n].astype(np.float32)  # raw 0-16 intensities, (n, 8, 8)


def _metrics(client) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# ---- endpoints -------------------------------------------------------------------------------------------------


def test_healthz_answers_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_says_ready_once_every_model_passed_its_smoke_inference(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "models": {"digits": "ok", "reviews": "ok"}}


def test_models_lists_labels_sparsity_provenance_and_kind_from_each_card(client, exported_digits, exported_text):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"digits", "reviews"}
    for name, path in (("digits", exported_digits), ("reviews", exported_text)):
        card = ticketpack.load(path).card
        m = models[name]
        assert m["labels"] == card.label_names
        assert m["weights_remaining"] == pytest.approx(card.sparsity.weights_remaining)
        assert m["provenance"]["dataset"] == card.provenance.dataset
        assert m["kind"] == card.preprocessing.kind
        assert m["weights_digest"] == card.weights_digest
    assert models["digits"]["kind"] == "image" and models["reviews"]["kind"] == "text"


def test_text_predictions_match_the_offline_predictor(client, exported_text):
    texts = ["a wonderful, moving book", "boring and far too long", "it arrived broken"]
    r = client.post("/v1/models/reviews/predict", json={"inputs": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    offline = ticketpack.load(exported_text)
    want = offline.predict_proba(texts)
    assert body["model"] == "reviews" and len(body["predictions"]) == len(texts)
    for pred, row in zip(body["predictions"], want):
        probs = [pred["probabilities"][label] for label in offline.labels]
        assert probs == pytest.approx(row.tolist(), abs=1e-6)
        assert pred["label"] == offline.labels[int(np.argmax(row))]
        assert pred["probability"] == pytest.approx(max(probs))
        assert sum(probs) == pytest.approx(1.0)


def test_image_predictions_match_the_offline_predictor_in_every_accepted_layout(client, exported_digits):
    images = _digits_images(4)
    want = ticketpack.load(exported_digits).predict(images)
    layouts = {"HxW": images.tolist(), "flat": images.reshape(4, -1).tolist(), "CxHxW": images[:, None].tolist()}
    for layout, inputs in layouts.items():
        r = client.post("/v1/models/digits/predict", json={"inputs": inputs})
        assert r.status_code == 200, (layout, r.text)
        assert [p["label"] for p in r.json()["predictions"]] == want, layout


def test_openapi_documents_the_request_response_and_error_bodies(client):
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/models/{name}/predict"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictRequest")
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictResponse")
    for status in ("404", "413", "422"):
        assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    inputs = doc["components"]["schemas"]["PredictRequest"]["properties"]["inputs"]
    assert {alt["items"].get("type") for alt in inputs["anyOf"]} >= {"string"}
    assert all(alt["minItems"] == 1 for alt in inputs["anyOf"])


# ---- bad input: a JSON error with the right status, and the server keeps serving ----------------------------------

BAD_REQUESTS = [
    # (id, path, body kwargs, status, error code, field)
    ("unknown model", "/v1/models/nope/predict", {"json": {"inputs": ["x"]}}, 404, "model_not_found", None),
    ("malformed json", "/v1/models/reviews/predict", {"content": b'{"inputs": ["x"', "headers": {"content-type": "application/json"}}, 422, "malformed_json", None),
    ("undecodable json", "/v1/models/reviews/predict", {"content": b'{"inputs": ["\xff"]}', "headers": {"content-type": "application/json"}}, 422, "malformed_json", None),
    ("json sent as text/plain", "/v1/models/reviews/predict", {"content": b'{"inputs": ["x"]}', "headers": {"content-type": "text/plain"}}, 422, "invalid_request", None),
    ("empty body", "/v1/models/reviews/predict", {"content": b"", "headers": {"content-type": "application/json"}}, 422, "invalid_request", None),
    ("not an object", "/v1/models/reviews/predict", {"json": ["x"]}, 422, "invalid_request", None),
    ("missing inputs", "/v1/models/reviews/predict", {"json": {"texts": ["x"]}}, 422, "invalid_request", "inputs"),
    ("inputs not a list", "/v1/models/reviews/predict", {"json": {"inputs": 5}}, 422, "invalid_request", "inputs"),
    ("a number among texts", "/v1/models/reviews/predict", {"json": {"inputs": ["ok", 7]}}, 422, "invalid_request", "inputs.1"),
    ("a string among pixels", "/v1/models/digits/predict", {"json": {"inputs": [[0.0, "1", 2.0]]}}, 422, "invalid_request", "inputs.0.1"),
    ("empty batch", "/v1/models/reviews/predict", {"json": {"inputs": []}}, 422, "empty_batch", "inputs"),
    ("images to a text model", "/v1/models/reviews/predict", {"json": {"inputs": [[1.0, 2.0]]}}, 422, "wrong_input_kind", "inputs"),
    ("texts to an image model", "/v1/models/digits/predict", {"json": {"inputs": ["a digit"]}}, 422, "wrong_input_kind", "inputs"),
    ("wrong image shape", "/v1/models/digits/predict", {"json": {"inputs": [[1.0] * 63]}}, 422, "invalid_input", "inputs"),
    ("ragged images", "/v1/models/digits/predict", {"json": {"inputs": [[1.0] * 64, [1.0] * 8]}}, 422, "invalid_input", "inputs"),
    ("NaN pixels", "/v1/models/digits/predict", {"content": b'{"inputs": [[' + b",".join([b"NaN"] * 64) + b"]]}", "headers": {"content-type": "application/json"}}, 422, "invalid_input", "inputs"),
    ("empty text", "/v1/models/reviews/predict", {"json": {"inputs": [""]}}, 422, "empty_text", "inputs.0"),
    ("all-space text", "/v1/models/reviews/predict", {"json": {"inputs": ["fine", " \t\n "]}}, 422, "empty_text", "inputs.1"),
    ("1e308 pixel", "/v1/models/digits/predict", {"json": {"inputs": [[1e308] + [0.0] * 63]}}, 422, "invalid_input", "inputs"),
    ("-Infinity pixel", "/v1/models/digits/predict", {"content": b'{"inputs": [[0,-Infinity' + b",0" * 62 + b"]]}", "headers": {"content-type": "application/json"}}, 422, "invalid_input", "inputs"),
    ("batch over the limit", "/v1/models/reviews/predict", {"json": {"inputs": ["x"] * (MAX_BATCH + 1)}}, 413, "batch_too_large", "inputs"),
    ("text over the limit", "/v1/models/reviews/predict", {"json": {"inputs": ["ok", "y" * (MAX_TEXT + 1)]}}, 413, "text_too_long", "inputs.1"),
]


@pytest.mark.parametrize("path,kwargs,status,error,field", [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_gets_a_json_error_with_its_status_and_the_server_keeps_serving(client, path, kwargs, status, error, field):
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == error and body["message"]
    assert body["field"] == field
    assert client.post("/v1/models/reviews/predict", json={"inputs": ["still serving"]}).status_code == 200


def test_a_body_over_the_size_limit_is_413_whether_or_not_its_length_is_announced(client):
    huge = b'{"inputs": ["' + b"x" * 4_000_000 + b'"]}'

    def chunks():
        for i in range(0, len(huge), 65_536):
            yield huge[i : i + 65_536]

    for content in (huge, chunks()):
        r = client.post("/v1/models/reviews/predict", content=content, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "content_too_large"
    assert client.get("/healthz").status_code == 200


def test_metrics_count_requests_errors_batch_sizes_and_latency_per_model(client):
    before = _metrics(client)
    assert client.post("/v1/models/reviews/predict", json={"inputs": ["a", "b", "c"]}).status_code == 200
    assert client.post("/v1/models/reviews/predict", json={"inputs": []}).status_code == 422
    assert client.post("/v1/models/nope/predict", json={"inputs": ["a"]}).status_code == 404
    after = _metrics(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("ticketpack_predict_requests_total", model="reviews", status="200") == 1
    assert delta("ticketpack_predict_requests_total", model="reviews", status="422") == 1
    assert delta("ticketpack_predict_errors_total", model="reviews", status="422") == 1
    assert delta("ticketpack_predict_errors_total", model="_unknown", status="404") == 1
    assert delta("ticketpack_predict_batch_size_sum", model="reviews") == 3
    assert delta("ticketpack_predict_latency_seconds_count", model="reviews") == 2


def test_concurrent_requests_share_the_session_and_each_gets_its_own_answer(client, exported_digits):
    images = _digits_images(16)
    want = ticketpack.load(exported_digits).predict(images)

    def one(i):
        r = client.post("/v1/models/digits/predict", json={"inputs": [images[i].tolist()]})
        return r.json()["predictions"][0]["label"]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(16))) == want


# ---- the predict fast path answers exactly as the FastAPI route does -------------------------------------------

_PIXELS = [[float(i % 17) for i in range(64)]]
SAME_ANSWER = [
    # (id, model, body kwargs): valid requests the fast path answers and odd or invalid ones it hands to the route
    ("flat pixels", "digits", {"json": {"inputs": _PIXELS * 3}}),
    ("HxW ints", "digits", {"json": {"inputs": [[[i % 16 for i in range(8)]] * 8]}}),
    ("CxHxW", "digits", {"json": {"inputs": [[[[1.5] * 8] * 8]] * 2}}),
    ("charset in content type", "digits", {"content": b'{"inputs": [[' + b",".join([b"2.0"] * 64) + b"]]}", "headers": {"content-type": "application/json; charset=utf-8"}}),
    ("upper-case content type", "digits", {"content": b'{"inputs": [[' + b",".join([b"2"] * 64) + b"]]}", "headers": {"content-type": "Application/JSON"}}),
    ("a bool among pixels", "digits", {"json": {"inputs": [[True] + [0.0] * 63]}}),
    ("a null among pixels", "digits", {"json": {"inputs": [[None] + [0.0] * 63]}}),
    ("a string among pixels", "digits", {"json": {"inputs": [[0.0, "1"] + [0.0] * 62]}}),
    ("a number at image level", "digits", {"json": {"inputs": [_PIXELS[0], 3.0]}}),
    ("a flat list of numbers", "digits", {"json": {"inputs": _PIXELS[0]}}),
    ("4-deep nesting", "digits", {"json": {"inputs": [[[[[1.0] * 8] * 8]]]}}),
    ("an extra key", "digits", {"json": {"inputs": _PIXELS, "extra": 1}}),
    ("a key repeated", "digits", {"content": b'{"inputs": [[' + b",".join([b"1"] * 64) + b']], "inputs": []}', "headers": {"content-type": "application/json"}}),
    ("Infinity pixel", "digits", {"content": b'{"inputs": [[Infinity' + b",0" * 63 + b"]]}", "headers": {"content-type": "application/json"}}),
    ("a pixel of 1e38", "digits", {"json": {"inputs": [_PIXELS[0], [1e38] + [0.0] * 63]}}),
    ("a huge integer pixel", "digits", {"content": b'{"inputs": [[1' + b"0" * 400 + b",0" * 63 + b"]]}", "headers": {"content-type": "application/json"}}),
    ("wrong image shape", "digits", {"json": {"inputs": [[1.0] * 65]}}),
    ("texts to an image model", "digits", {"json": {"inputs": ["a digit"]}}),
    ("batch over the limit", "digits", {"json": {"inputs": _PIXELS * (MAX_BATCH + 1)}}),
    ("texts", "reviews", {"json": {"inputs": ["a wonderful book", "dull", "ok \u00e9t\u00e9"]}}),
    ("texts at the length limit", "reviews", {"json": {"inputs": ["y" * MAX_TEXT]}}),
    ("a text over the limit", "reviews", {"json": {"inputs": ["ok", "y" * (MAX_TEXT + 1)]}}),
    ("a blank text", "reviews", {"json": {"inputs": ["fine", "  "]}}),
    ("pixels to a text model", "reviews", {"json": {"inputs": [[1.0, 2.0]]}}),
    ("a number among texts", "reviews", {"json": {"inputs": ["ok", 7]}}),
    ("one string, not a list", "reviews", {"json": {"inputs": "ok"}}),
    ("empty batch", "reviews", {"json": {"inputs": []}}),
    ("not an object", "reviews", {"json": [["ok"]]}),
    ("sent as text/plain", "reviews", {"content": b'{"inputs": ["x"]}', "headers": {"content-type": "text/plain"}}),
    ("no content type", "reviews", {"content": b'{"inputs": ["x"]}'}),
    ("malformed json", "reviews", {"content": b'{"inputs": ["x"', "headers": {"content-type": "application/json"}}),
]


FAST = [c[1:] for c in SAME_ANSWER if c[0] in {"flat pixels", "HxW ints", "CxHxW", "charset in content type",
                                                "upper-case content type", "texts", "texts at the length limit"}]


@pytest.fixture(scope="module")
def route_and_fast(exported_digits, exported_text):
    """Two in-process apps on the same models: one with the fast path, one sending everything to the route."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    config = _config(exported_digits, exported_text)
    models = load_models(config, validate=False)
    fast = create_app(config, models)
    route = create_app(config, models, fast_path=False)  # state of that app only: `fast` is unchanged
    assert fast.fast is not None and route.fast is None
    with TestClient(route) as r, TestClient(fast) as f:
        yield r, f, models


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "in the pool"])
@pytest.mark.parametrize("model,kwargs", [c[1:] for c in SAME_ANSWER], ids=[c[0] for c in SAME_ANSWER])
def test_the_fast_path_answers_every_request_as_the_route_does(route_and_fast, model, kwargs, inline):
    route, fast, models = route_and_fast
    saved = {n: m.inline_max_rows for n, m in models.items()}
    try:
        for m in models.values():
            m.inline_max_rows = 10**6 if inline else 0
        want = route.post(f"/v1/models/{model}/predict", **kwargs)
        before = fast.app.fast.answers
        got = fast.post(f"/v1/models/{model}/predict", **kwargs)
        took_fast_path = fast.app.fast.answers == before + 1
    finally:
        for n, m in models.items():
            m.inline_max_rows = saved[n]
    assert got.status_code == want.status_code, (got.text, want.text)
    assert got.headers["content-type"] == want.headers["content-type"] == "application/json"
    # plainly valid requests are the fast path's; anything else, valid or not, is left to the route
    assert took_fast_path == ((model, kwargs) in FAST), "answered by the fast path" if took_fast_path else "by the route"
    if want.status_code == 200:
        w, g = want.json(), got.json()
        assert [p["label"] for p in g["predictions"]] == [p["label"] for p in w["predictions"]]
        for pg, pw in zip(g["predictions"], w["predictions"]):
            assert pg["probabilities"] == pytest.approx(pw["probabilities"], abs=1e-12)
        assert g["model"] == w["model"] and g.get("warnings") == w.get("warnings")
    else:
        assert got.json() == want.json()


def test_pixels_far_beyond_the_training_range_are_answered_with_a_warning(client, exported_digits):
    images = _digits_images(3)
    r = client.post("/v1/models/digits/predict", json={"inputs": images.tolist()})
    assert r.status_code == 200 and "warnings" not in r.json()  # in range: no warnings key at all
    images[2, 0, 0] = 1e38
    r = client.post("/v1/models/digits/predict", json={"inputs": images.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["predictions"]) == 3 and len(body["warnings"]) == 1
    assert "1 of 3 images (#2) hold pixel values far outside the range the model was trained on, 0 to 16" in body["warnings"][0]


def test_a_model_that_answers_in_microseconds_runs_its_batches_inline(route_and_fast):
    _, _, models = route_and_fast
    assert models["digits"].inline_max_rows >= MAX_BATCH  # lenet-300-100: a batch of 8 in well under 0.5 ms


def _median_keepalive_ms(url: str, n: int = 21) -> float:
    with httpx.Client(base_url=url, timeout=10) as c:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            c.get("/healthz")
            times.append(1000 * (time.perf_counter() - t))
    return sorted(times)[n // 2]


def test_keep_alive_requests_do_not_wait_for_delayed_acks(server):
    # without TCP_NODELAY every keep-alive response waits ~40 ms for the client's delayed ACK
    assert _median_keepalive_ms(server.url) < 25


# ---- start-up and shutdown of the real command ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "ticketpack", "serve", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server not ready in time")


def _in_flight(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "ticketpack_predict_in_flight")


def test_sigterm_lets_the_in_flight_request_finish_then_exits_0(exported_text):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(f"reviews={exported_text}", "--port", str(port), "--max-text-chars", "200000", "--no-access-log")
    # a slow request: 64 long texts take a few hundred ms to tokenize
    slow = {"inputs": ["lorem ipsum dolor sit amet " * 4000] * 64}
    try:
        _wait_ready(url, proc)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/models/reviews/predict", json=slow, timeout=60)
            deadline = time.monotonic() + 30
            while _in_flight(url) < 1:
                assert time.monotonic() < deadline and not pending.done(), "the request never showed as in flight"
                time.sleep(0.005)
            proc.send_signal(signal.SIGTERM)
            assert not pending.done(), "the request finished before SIGTERM; make it slower"
            r = pending.result()
        assert r.status_code == 200 and len(r.json()["predictions"]) == 64
        assert proc.wait(timeout=30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_several_workers_serve_share_metrics_and_stop_on_sigterm(exported_digits):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(f"digits={exported_digits}", "--port", str(port), "--workers", "2", "--no-access-log")
    try:
        _wait_ready(url, proc)
        image = _digits_images(1).tolist()
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(6):
                assert c.post("/v1/models/digits/predict", json={"inputs": image}).status_code == 200
        assert _median_keepalive_ms(url) < 25
        with httpx.Client(base_url=url, timeout=30) as c:  # new connections may land on either worker
            m = _metrics(c)
        assert m[("ticketpack_predict_requests_total", (("model", "digits"), ("status", "200")))] == 6
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_refuses_to_start_when_any_model_fails_validation_naming_it_and_why(exported_digits, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(exported_digits.read_bytes()[:5000])  # truncated
    port = _free_port()
    proc = _serve(str(exported_digits), str(bad), "--port", str(port))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "refusing to start" in err and "broken" in err and "Traceback" not in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_model_without_a_card_is_refused(tmp_path, exported_digits):
    import onnx

    model = onnx.load(str(exported_digits))
    del model.metadata_props[:]
    path = tmp_path / "nocard.onnx"
    onnx.save(model, str(path))
    cfg = ServeConfig(models=[ModelSource.parse(str(path))], provider="cpu")
    with pytest.raises(TicketpackError, match=r"nocard .*card"):
        load_models(cfg)


def _signed_copies(exported_digits, signing_keys, where: Path) -> tuple[Path, Path]:
    """A signed copy of the digits model, and a copy of it whose card was edited after signing (labels reversed)."""
    import json

    import onnx

    from ticketpack.runtime.card import CARD_KEY
    from ticketpack.runtime.signing import sign_file, signature_path, signer

    good = where / "signed.onnx"
    good.write_bytes(exported_digits.read_bytes())
    sign_file(good, signer(signing_keys[0]))
    model = onnx.load(str(good))
    for prop in model.metadata_props:
        if prop.key == CARD_KEY:
            card = json.loads(prop.value)
            card["label_names"] = card["label_names"][::-1]
            prop.value = json.dumps(card)
    forged = where / "forged.onnx"
    onnx.save(model, str(forged))
    signature_path(forged).write_bytes(signature_path(good).read_bytes())
    return good, forged


def test_verify_serves_a_signed_file_and_refuses_one_changed_after_signing(exported_digits, signing_keys, tmp_path):
    good, forged = _signed_copies(exported_digits, signing_keys, tmp_path)
    served = load_models(ServeConfig(models=[ModelSource.parse(str(good))], provider="cpu", verify=signing_keys[1]))
    assert list(served) == ["signed"]
    # reversed labels are a valid card the file cannot disprove: without --verify it would be served
    assert list(load_models(ServeConfig(models=[ModelSource.parse(str(forged))], provider="cpu"))) == ["forged"]
    cfg = ServeConfig(models=[ModelSource.parse(str(forged))], provider="cpu", verify=signing_keys[1])
    with pytest.raises(TicketpackError, match=r"forged .*changed after it was signed"):
        load_models(cfg)


def test_serve_verify_on_a_changed_file_exits_2_in_one_line_without_binding(exported_digits, signing_keys, tmp_path):
    _, forged = _signed_copies(exported_digits, signing_keys, tmp_path)
    port = _free_port()
    proc = _serve(str(forged), "--verify", str(signing_keys[1]), "--port", str(port))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "changed after it was signed" in errors[0] and "Traceback" not in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_serve_verify_with_a_key_it_cannot_use_is_one_line(exported_digits, signing_keys):
    proc = _serve(str(exported_digits), "--verify", str(signing_keys[0]))  # the private key, not the public one
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--verify" in err and "not an elliptic-curve public key" in err
    assert "Traceback" not in err


def test_a_taken_port_is_a_one_line_error(exported_digits):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _serve(str(exported_digits), "--port", str(taken.getsockname()[1]))
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1" in err and "Traceback" not in err


def test_serve_without_the_extra_names_the_pip_command_and_exits_2(exported_digits):
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.argv = ['ticketpack', 'serve', sys.argv[1]];"
        "from ticketpack.cli.app import main; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(exported_digits)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "pip install 'ticketpack[serve]'" in proc.stderr and "Traceback" not in proc.stderr


def test_importing_ticketpack_serve_imports_neither_torch_nor_fastapi():
    code = "import sys, ticketpack.serve, ticketpack.serve.config; print(sorted({'torch', 'fastapi', 'uvicorn'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


# ---- configuration ------------------------------------------------------------------------------------------------


def test_model_name_is_the_file_stem_unless_given_as_name_equals_path():
    assert ModelSource.parse("out/digits-90.onnx") == ModelSource(name="digits-90", path=Path("out/digits-90.onnx"))
    assert ModelSource.parse("ticket=out/model.onnx") == ModelSource(name="ticket", path=Path("out/model.onnx"))


def test_two_models_with_one_name_are_refused():
    with pytest.raises(ValueError, match="two models are named 'model'"):
        ServeConfig(models=[ModelSource.parse("a/model.onnx"), ModelSource.parse("b/model.onnx")])


def test_on_one_core_longer_runs_stay_on_the_event_loop(monkeypatch):
    """Confined to one core, the inference pool buys no parallelism, only its hand-off: the inline budget grows
    from 0.5 ms to 50 ms (and still sends longer runs to the pool, so health checks keep answering)."""
    from ticketpack.serve import models as served

    monkeypatch.setattr(served.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert served.usable_cpus() == 1 and served.inline_budget_s() == served.INLINE_BUDGET_ONE_CORE_S
    monkeypatch.setattr(served.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert served.usable_cpus() == 2 and served.inline_budget_s() == served.INLINE_BUDGET_S
