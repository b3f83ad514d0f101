"""The predict fast path (:class:`FastPredict`), in front of FastAPI (:class:`App`).

A well-formed predict body is parsed once (orjson when installed), turned into the model's input tensor without
building pydantic objects, run inline when the model answers within its inline budget (else in the inference pool,
off the event loop), and answered with bytes serialized in one call. Anything the fast path does not accept as
plainly valid (an error of any kind, an odd content type, a body over the limit) is handed, body and all, to the
FastAPI route (:mod:`ticketpack.serve.routes`), whose validation and error answers are the API's reference: both
paths give the same answer to every request.
"""

import asyncio
import time

import numpy as np
from fastapi import FastAPI

from ticketpack.data.kinds import OutOfRange
from ticketpack.serve.config import ServeConfig
from ticketpack.serve.guard import PREDICT_PATH
from ticketpack.serve.metrics import Metrics
from ticketpack.serve.models import ServedModel

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


_JSON_TYPE = b"application/json"
INLINE_TEXT_CHARS = 8192  # texts tokenized on the event loop at most (about 0.5 ms); longer batches go to the pool
_ANSWER_HEADERS = [(b"content-type", b"application/json")]


class FastPredict:
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
        match = PREDICT_PATH.match(scope["path"])
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
                    probs, beyond = predict_now(model, inputs)
                else:
                    probs, beyond = await asyncio.get_running_loop().run_in_executor(
                        self.state["executor"], predict_now, model, inputs)
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


class App(FastAPI):
    """FastAPI with the predict fast path in front of its middleware stack."""

    fast: FastPredict | None = None

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


def predict_now(model: ServedModel, inputs) -> tuple[np.ndarray, OutOfRange | None]:
    x, beyond = model.prepare_checked(inputs)
    return model.probabilities(x), beyond
