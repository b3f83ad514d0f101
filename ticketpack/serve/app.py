"""The HTTP inference server: FastAPI on uvicorn, Prometheus metrics, one ONNX Runtime session per model.

Needs the `serve` extra (``pip install 'ticketpack[serve]'``); nothing else in ticketpack imports this module
at import time. ``serve(models, config=None, *, on_event, **overrides) -> ServeResult`` validates and loads every
model *before* binding the port, so a server never starts half-configured; SIGTERM stops accepting connections
and lets in-flight requests finish (up to ``shutdown_timeout_s``).

This module is the server's front door; each job has its own room:

- :mod:`ticketpack.serve.routes`: ``create_app``, the HTTP API (health, models, metrics, predict: the reference);
- :mod:`ticketpack.serve.fastpath`: the predict fast path in front of FastAPI, which answers a plainly valid request
  itself and hands anything else, body and all, to the route (both paths give the same answer to every request);
- :mod:`ticketpack.serve.guard`: the middleware counting predict calls and limiting request bodies;
- :mod:`ticketpack.serve.errors`: the error answers (``ApiError`` and the exception handlers);
- :mod:`ticketpack.serve.v2`: the Open Inference Protocol (KServe v2) routes beside ``/v1`` (bodies in
  :mod:`ticketpack.serve.v2_api`, tensors in :mod:`ticketpack.serve.v2_tensors`), errors as ``{"error": message}``;
- :mod:`ticketpack.serve.server`: ``serve``, binding the port and running uvicorn with one or several workers.
"""

import uvicorn  # noqa: F401 (the module the server runs; tests patch its functions through here)

from ticketpack.serve.config import CONFIG_ENV, FAST_PATH_ENV, PARENT_ENV  # noqa: F401 (the workers' settings)
from ticketpack.serve.errors import ApiError
from ticketpack.serve.fastpath import INLINE_TEXT_CHARS
from ticketpack.serve.guard import body_limit
from ticketpack.serve.routes import check_inputs, create_app
from ticketpack.serve.server import (
    METRICS_PREFIX,
    ServeResult,
    bind,
    clean_stale_metrics_dirs,
    serve,
)

__all__ = [
    "INLINE_TEXT_CHARS", "METRICS_PREFIX", "ApiError", "ServeResult", "bind", "body_limit", "check_inputs",
    "clean_stale_metrics_dirs", "create_app", "serve",
]
