"""The HTTP inference server: FastAPI on uvicorn, Prometheus metrics, one ONNX Runtime session per model.

Needs the `serve` extra (``pip install 'ticketpack[serve]'``); nothing else in ticketpack imports this module
at import time. ``serve(config)`` validates and loads every model *before* binding the port, so a server never
starts half-configured; SIGTERM stops accepting connections and lets in-flight requests finish (up to
``shutdown_timeout_s``).

Predict requests take a fast path (:class:`_FastPredict`) in front of FastAPI: a well-formed body is parsed once
(orjson when installed), turned into the model's input tensor without building pydantic objects, run inline when
the model answers within ``INLINE_BUDGET_S`` (else in the inference pool, off the event loop), and answered with
bytes serialized in one call. Anything the fast path does not accept as plainly valid (an error of any kind, an
odd content type, a body over the limit) is handed, body and all, to the FastAPI route, whose validation and error
answers are the API's reference: both paths give the same answer to every request.
"""

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

import numpy as np
import uvicorn
from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ticketpack.data.kinds import OutOfRange
from ticketpack.errors import FieldError, TicketpackError
from ticketpack.serve.api import (
    ErrorBody,
    Health,
    ModelList,
    PredictRequest,
    PredictResponse,
    Readiness,
)
from ticketpack.serve.config import CONFIG_ENV, FAST_PATH_ENV, PARENT_ENV, ServeConfig
from ticketpack.serve.metrics import UNKNOWN_MODEL, Metrics
from ticketpack.serve.models import ServedModel, load_models, usable_cpus

try:  # the serve extra installs orjson: parsing and writing JSON several times faster than the json module
    import orjson

    _loads, _dumps = orjson.loads, orjson.dumps
except ModuleNotFoundError:  # pragma: no cover - a bare install of fastapi + uvicorn
    import json

    def _loads(body: bytes):
        return json.loads(body, parse_constant=_no_constant)

    def _dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()

    def _no_constant(name: str):  # NaN / Infinity: not JSON; the full path decides what to answer
        raise ValueError(name)
from ticketpack.version import __version__

log = logging.getLogger("ticketpack.serve")

METRICS_PREFIX = "ticketpack-metrics-"
_PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict/?$")
_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "content_too_large",
                415: "unsupported_media_type", 422: "invalid_request", 500: "internal_error", 503: "unavailable"}


class ApiError(Exception):
    """An error answer with a status, a code, a message and optionally the offending field."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, ErrorBody(error=error, message=message, field=field)


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit:,} bytes")


def _error(status: int, error: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, message=message, field=field).model_dump(), status_code=status)


def body_limit(config: ServeConfig, models: dict[str, ServedModel]) -> int:
    """Largest request body worth reading: a full batch of the longest inputs, JSON-escaped, with slack."""
    per_input = max(m.predictor.card.preprocessing.request_bytes(config.max_text_chars) for m in models.values())
    return config.max_batch * per_input + 65_536


class _Guard:
    """Pure ASGI middleware: per-model request/error/latency metrics for predict calls, and the body-size limit."""

    def __init__(self, app, metrics: Metrics, names: set[str], max_body: int) -> None:
        self.app, self.metrics, self.names, self.max_body = app, metrics, names, max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        match = _PREDICT_PATH.match(scope["path"])
        model = (match.group(1) if match.group(1) in self.names else UNKNOWN_MODEL) if match else None
        status, start, seen = 500, time.perf_counter(), 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        async def observed_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if model is not None:
            self.metrics.in_flight.inc()
        try:
            if length is not None and length.isdigit() and int(length) > self.max_body:
                status = 413
                await _error(413, "content_too_large", f"request body is larger than {self.max_body:,} bytes")(
                    scope, receive, send
                )
            else:
                await self.app(scope, limited_receive, observed_send)
        finally:
            if model is not None:
                self.metrics.in_flight.dec()
                self.metrics.answered(model, status, time.perf_counter() - start)


_JSON_TYPE = b"application/json"
INLINE_TEXT_CHARS = 8192  # texts tokenized on the event loop at most (about 0.5 ms); longer batches go to the pool
_ANSWER_HEADERS = [(b"content-type", b"application/json")]


class _FastPredict:
    """The predict fast path: answers a well-formed predict request itself, or returns the body it read so that the
    FastAPI route (the reference, with every check and error answer) handles the request instead.

    "Well-formed" is checked conservatively, so that whatever the fast path accepts the route accepts too and
    answers alike: a JSON object whose only key is ``inputs``; for image models a body with no string other than
    that key and no true/false/null (so every leaf is a JSON number, as the route's strict float fields demand),
    which numpy turns into a rectangular array the model's preprocessing takes; for text models a list of
    non-blank strings within --max-text-chars. At most --max-batch inputs either way.
    """

    def __init__(self, config: ServeConfig, models: dict[str, ServedModel], metrics: Metrics, state: dict,
                 max_body: int) -> None:
        self.config, self.models, self.metrics, self.state, self.max_body = config, models, metrics, state, max_body
        self.labels = {name: m.predictor.labels for name, m in models.items()}
        self.answers = 0  # requests answered here (not handed to the route)

    def model_for(self, scope) -> ServedModel | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        match = _PREDICT_PATH.match(scope["path"])
        return self.models.get(match.group(1)) if match else None

    async def __call__(self, model: ServedModel, scope, receive, send) -> tuple[bytes, bool] | None:
        """Answer the request and return None, or return (the body read so far, whether more is to be read) for the
        full route. None too when the client went away before its body was read."""
        start = time.perf_counter()
        content_type = length = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
            elif key == b"content-length":
                length = value
        if content_type is None or content_type.split(b";", 1)[0].strip().lower() != _JSON_TYPE or (
                length is not None and (not length.isdigit() or int(length) > self.max_body)):
            return b"", True
        chunks = []
        seen, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return None
            chunk = message.get("body", b"")
            seen += len(chunk)
            chunks.append(chunk)
            more = message.get("more_body", False)
            if seen > self.max_body:
                return b"".join(chunks), more  # the route's guard answers 413
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.metrics.in_flight.inc()
        try:
            try:
                inputs, inline = self.parse(model, body)
                if inputs is None:
                    return body, False
                if inline or self.state["executor"] is None:
                    probs, beyond = _predict_now(model, inputs)
                else:
                    probs, beyond = await asyncio.get_running_loop().run_in_executor(
                        self.state["executor"], _predict_now, model, inputs)
                if beyond is not None:  # an answer with a warning: the route words it
                    return body, False
                answer = self.answer(model, probs)
            except Exception:  # noqa: BLE001 - bad input of any kind: the route words the error
                return body, False  # (and its guard counts the request)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_ANSWER_HEADERS, (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer})
        finally:
            self.metrics.in_flight.dec()
        self.metrics.batch(model.name, len(probs))
        self.metrics.answered(model.name, 200, time.perf_counter() - start)
        self.answers += 1
        return None

    def parse(self, model: ServedModel, body: bytes) -> tuple[np.ndarray | list | None, bool]:
        """(raw inputs of a plainly valid body, else None; whether the inference is small enough to run inline)."""
        if not model.takes_text and (body.count(b'"') != 2 or b"true" in body or b"false" in body or b"null" in body):
            return None, False
        obj = _loads(body)
        if type(obj) is not dict or len(obj) != 1:
            return None, False
        inputs = obj.get("inputs")
        if type(inputs) is not list or not 0 < len(inputs) <= self.config.max_batch:
            return None, False
        inline = len(inputs) <= model.inline_max_rows
        if not model.takes_text:
            if type(inputs[0]) is not list:  # a flat list of numbers is not a batch of images
                return None, False
            arr = np.asarray(inputs)  # raises on ragged nesting
            if arr.dtype.kind not in "if" or not 2 <= arr.ndim <= 4:
                return None, False
            return arr, inline
        limit, chars = self.config.max_text_chars, 0
        for text in inputs:
            if type(text) is not str or len(text) > limit or not text.strip():
                return None, False
            chars += len(text)
        return inputs, inline and chars <= INLINE_TEXT_CHARS  # tokenizing long texts takes a while too

    def answer(self, model: ServedModel, probs: np.ndarray) -> bytes:
        labels = self.labels[model.name]
        rows, best = probs.tolist(), probs.argmax(axis=1).tolist()
        return _dumps({"model": model.name, "predictions": [
            {"label": labels[k], "probability": row[k], "probabilities": dict(zip(labels, row))}
            for row, k in zip(rows, best)
        ]})


class _App(FastAPI):
    """FastAPI with the predict fast path in front of its middleware stack."""

    fast: _FastPredict | None = None

    async def __call__(self, scope, receive, send) -> None:
        fast = self.fast
        model = fast.model_for(scope) if fast is not None else None
        if model is None:
            return await super().__call__(scope, receive, send)
        read = await fast(model, scope, receive, send)
        if read is None:
            return
        body, more = read
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        return await super().__call__(scope, replay, send)


def _field(loc) -> str | None:
    """A pydantic error location as a dotted path, without 'body' and the union-member tags pydantic adds."""
    parts = [str(p) for p in loc if p != "body" and not (isinstance(p, str) and "[" in p)]
    return ".".join(parts) or None


def create_app(config: ServeConfig, models: dict[str, ServedModel], fast_path: bool = True) -> FastAPI:
    """The ASGI app serving already loaded ``models`` (see :func:`ticketpack.serve.models.load_models`).

    ``fast_path=False``: every predict request goes through the FastAPI route (the reference), e.g. to measure
    what the fast path saves (bench/serve_bench.py does); the app's ``fast`` is then None."""
    metrics = Metrics(config.max_batch)
    state = {"ready": False, "executor": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One pool for every model's inference, off the event loop; each model has one shared ORT session.
        executor = ThreadPoolExecutor(max_workers=max(usable_cpus(), 2), thread_name_prefix="ticketpack-infer")
        state["executor"] = executor
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            executor.shutdown(wait=True)

    app = _App(
        title="ticketpack",
        version=__version__,
        description="Predictions from exported ticketpack classifiers (ONNX Runtime). Every error answer has an "
        "`ErrorBody`: 404 unknown model, 413 batch/text/body over the limit, 422 malformed JSON, wrong types "
        "an empty batch or an empty text.",
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body.model_dump(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        # `inputs` is a union (texts | images): of the members' errors, the one deepest into the input is the
        # one that matches what the client meant (a string among pixel rows, not "should be a string").
        first = max(errors, key=lambda e: sum(isinstance(p, int) for p in e["loc"]), default=None) or {
            "loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            msg = f"malformed JSON: {first.get('ctx', {}).get('error', 'cannot parse the body')}"
            return _error(422, "malformed_json", msg)
        field = _field(first["loc"])
        if field is None:  # no body, or not a JSON object (or not sent as application/json)
            return _error(422, "invalid_request",
                          'the body must be a JSON object like {"inputs": [...]}, sent as content-type: application/json')
        empty = any(e.get("type") == "too_short" and _field(e["loc"]) == "inputs" for e in errors)
        if empty:
            return _error(422, "empty_batch", "inputs is empty: give at least one input", "inputs")
        msg = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
        return _error(422, "invalid_request", f"{field or 'body'}: {msg}", field)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body json cannot decode (bad UTF-8, nesting too deep): malformed JSON to us
            return _error(422, "malformed_json", "malformed JSON: the body cannot be decoded")
        return JSONResponse(
            ErrorBody(error=_ERROR_CODES.get(exc.status_code, "error"), message=str(exc.detail)).model_dump(),
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal server error (logged on the server)")

    errors = {
        404: {"model": ErrorBody, "description": "No model of that name."},
        413: {"model": ErrorBody, "description": "Batch, text or body over the server's limit."},
        422: {"model": ErrorBody, "description": "Malformed JSON, wrong types, an empty batch or an empty text."},
    }

    async def served(name: Annotated[str, Path(description="Model name, as listed by /v1/models.")]) -> ServedModel:
        if name not in models:
            raise ApiError(404, "model_not_found", f"no model named {name!r}; serving: {', '.join(sorted(models))}")
        return models[name]

    @app.get("/healthz", response_model=Health, tags=["health"], summary="The process is up")
    async def healthz() -> Health:
        return Health()

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["health"],
             summary="Models loaded and smoke inference passed")
    async def readyz():
        body = Readiness(ready=state["ready"], models={n: m.smoke for n, m in models.items()})
        ok = body.ready and all(v == "ok" for v in body.models.values())
        return body if ok else JSONResponse(body.model_dump(), status_code=503)

    @app.get("/v1/models", response_model=ModelList, tags=["models"], summary="Served models and their cards")
    async def list_models() -> ModelList:
        return ModelList(models=[m.info for m in models.values()])

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/v1/models/{name}/predict", response_model=PredictResponse, responses=errors, tags=["models"],
              summary="Predict labels and probabilities for a batch")
    async def predict(req: PredictRequest, model: Annotated[ServedModel, Depends(served)]) -> Response:
        inputs = req.inputs
        if len(inputs) > config.max_batch:
            raise ApiError(413, "batch_too_large", f"{len(inputs)} inputs; this server takes at most {config.max_batch} per request", "inputs")
        is_text = isinstance(inputs[0], str)
        if model.takes_text and not is_text:
            raise ApiError(422, "wrong_input_kind", f"model {model.name!r} takes texts: inputs must be a list of strings", "inputs")
        if not model.takes_text and is_text:
            raise ApiError(422, "wrong_input_kind", f"model {model.name!r} takes {model.predictor.card.preprocessing.noun}: "
                           "inputs must be nested lists of numbers", "inputs")
        if is_text:
            from ticketpack.runtime.predictor import empty_text_index

            if (i := empty_text_index(inputs)) is not None:
                raise ApiError(422, "empty_text", f"input {i} is empty or only whitespace: give some text to classify",
                               f"inputs.{i}")
            for i, text in enumerate(inputs):
                if len(text) > config.max_text_chars:
                    raise ApiError(413, "text_too_long", f"input {i} has {len(text):,} characters; the limit is {config.max_text_chars:,}", f"inputs.{i}")
        metrics.batch(model.name, len(inputs))
        loop = asyncio.get_running_loop()
        try:
            probs, beyond = await loop.run_in_executor(state["executor"], _predict_now, model, inputs)
        except TicketpackError as exc:
            raise ApiError(422, "invalid_input", str(exc), "inputs") from None
        labels = model.predictor.labels
        rows, best = probs.tolist(), probs.argmax(axis=1).tolist()
        body = PredictResponse.model_validate({"model": model.name, "predictions": [
            {"label": labels[k], "probability": row[k], "probabilities": dict(zip(labels, row))}
            for row, k in zip(rows, best)
        ], "warnings": None if beyond is None else [beyond.message(model.predictor.card.preprocessing.noun)]})
        # returned as a Response, so FastAPI does not validate and serialize the model a second time
        return Response(body.model_dump_json(exclude_none=True), media_type="application/json")

    max_body = body_limit(config, models)
    app.add_middleware(_Guard, metrics=metrics, names=set(models), max_body=max_body)
    if fast_path:
        app.fast = _FastPredict(config, models, metrics, state, max_body)
    return app


def _predict_now(model: ServedModel, inputs) -> tuple[np.ndarray, OutOfRange | None]:
    x, beyond = model.prepare_checked(inputs)
    return model.probabilities(x), beyond


def _log_config(access_log: bool) -> dict:
    from uvicorn.config import LOGGING_CONFIG

    cfg = {**LOGGING_CONFIG, "handlers": {k: dict(v) for k, v in LOGGING_CONFIG["handlers"].items()}}
    cfg["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout is for results, logs go to stderr
    cfg["loggers"] = {**cfg["loggers"], "ticketpack.serve": {"handlers": ["default"], "level": "INFO"}}
    return cfg


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front, so a taken port is a clear error and port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then, and without
    # it every keep-alive response waits for the client's delayed ACK (~40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TicketpackError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@contextmanager
def _signals_end_serving():
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; once it has shut down, the signal has done its
    job, so `serve` returns normally (exit 0) instead of dying by the signal or a KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def clean_stale_metrics_dirs(tmp: str | None = None) -> list[str]:
    """Remove the metrics directories (``ticketpack-metrics-PID-*``) of `serve` processes that no longer run."""
    from ticketpack.fileio import _pid_alive

    tmp = tmp or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        m = re.fullmatch(re.escape(METRICS_PREFIX) + r"(\d+)-\w+", name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
            removed.append(name)
    return removed


def serve(config: ServeConfig, on_ready: Callable[[str, dict[str, ServedModel]], None] | None = None,
          fast_path: bool = True) -> None:
    """Validate and load every model, then serve until SIGINT/SIGTERM. Raises TicketpackError if a model fails.

    ``on_ready(url, models)`` is called once the port is bound, before requests are taken. ``fast_path``: see
    :func:`create_app`.
    """
    if config.workers > 1 and config.port == 0:
        raise FieldError("`port` 0 (any free port) needs `workers` 1; give a port for several workers")
    models = load_models(config)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    common = dict(
        log_config=_log_config(config.access_log), access_log=config.access_log,
        timeout_graceful_shutdown=config.shutdown_timeout_s, lifespan="on",
    )
    if config.workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(config, models, fast_path), **common))
        if on_ready:
            on_ready(url, models)
        try:
            with _signals_end_serving():
                server.run(sockets=[sock])
        finally:
            sock.close()
        return
    sock.close()  # the port is free: uvicorn's supervisor binds it and hands it to its worker processes
    if on_ready:
        on_ready(url, models)
    del models  # each worker opens its own sessions
    clean_stale_metrics_dirs()
    metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")
    worker_env = {  # uvicorn starts its workers from import strings: they read their settings here (serve.worker)
        CONFIG_ENV: config.model_dump_json(), PARENT_ENV: str(os.getpid()), "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        FAST_PATH_ENV: "1" if fast_path else "0",
    }
    try:
        with _environ(worker_env):
            uvicorn.run("ticketpack.serve.worker:create_app", factory=True, workers=config.workers, host=config.host,
                        port=config.port, http="ticketpack.serve.worker:NoDelayHTTPProtocol", **common)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@contextmanager
def _environ(values: dict[str, str]):
    """``values`` in os.environ while the block runs (uvicorn's worker processes inherit it), then as before: a
    caller of serve() keeps its environment."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
