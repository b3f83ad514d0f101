"""The serve app's outer middleware: per-model request, error and latency metrics for predict calls, and the
request body-size limit (a body over it is answered 413 before, or while, it is read)."""

import re
import time

from starlette.responses import JSONResponse

from ticketpack.serve.config import ServeConfig
from ticketpack.serve.errors import BodyTooLarge, error_response
from ticketpack.serve.metrics import UNKNOWN_MODEL, Metrics
from ticketpack.serve.models import ServedModel

PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict/?$")
INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer/?$")  # the Open Inference Protocol's predict


def body_limit(config: ServeConfig, models: dict[str, ServedModel]) -> int:
    """Largest request body worth reading: a full batch of the longest inputs, JSON-escaped, with slack."""
    per_input = max(m.predictor.card.preprocessing.request_bytes(config.max_text_chars) for m in models.values())
    return config.max_batch * per_input + 65_536


class Guard:
    """Pure ASGI middleware: per-model request/error/latency metrics for predict calls (v1 predict and v2 infer), and
    the body-size limit."""

    def __init__(self, app, metrics: Metrics, names: set[str], max_body: int) -> None:
        self.app, self.metrics, self.names, self.max_body = app, metrics, names, max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        match = PREDICT_PATH.match(scope["path"]) or INFER_PATH.match(scope["path"])
        model = (match.group(1) if match.group(1) in self.names else UNKNOWN_MODEL) if match else None
        status, start, seen = 500, time.perf_counter(), 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
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
                message = f"request body is larger than {self.max_body:,} bytes"
                v2 = scope["path"].startswith("/v2/")  # the Open Inference Protocol's error format
                answer = JSONResponse({"error": message}, 413) if v2 else error_response(413, "content_too_large", message)
                await answer(scope, receive, send)
            else:
                await self.app(scope, limited_receive, observed_send)
        finally:
            if model is not None:
                self.metrics.in_flight.dec()
                self.metrics.answered(model, status, time.perf_counter() - start)
