"""The HTTP API: :func:`create_app` builds the FastAPI app (its lifespan's inference pool, the error handlers of
:mod:`ticketpack.serve.errors`, the routes below, the guard middleware and the fast path) around loaded models.

The predict route is the reference: its validation and error answers are what the fast path
(:mod:`ticketpack.serve.fastpath`) hands every request it does not find plainly valid to.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Path
from fastapi.responses import JSONResponse, Response

from ticketpack.core.errors import TicketpackError
from ticketpack.serve.api import (
    ErrorBody,
    Health,
    ModelList,
    PredictRequest,
    PredictResponse,
    Readiness,
)
from ticketpack.serve.config import ServeConfig
from ticketpack.serve.errors import ApiError, add_error_handlers
from ticketpack.serve.fastpath import App, FastPredict, predict_now
from ticketpack.serve.guard import Guard, body_limit
from ticketpack.serve.metrics import Metrics
from ticketpack.serve.models import ServedModel, usable_cpus
from ticketpack.serve.v2 import add_v2_routes
from ticketpack.version import __version__

_ERRORS = {
    404: {"model": ErrorBody, "description": "No model of that name."},
    413: {"model": ErrorBody, "description": "Batch, text or body over the server's limit."},
    422: {"model": ErrorBody, "description": "Malformed JSON, wrong types, an empty batch or an empty text."},
}


def create_app(config: ServeConfig, models: dict[str, ServedModel], fast_path: bool = True) -> FastAPI:
    """The ASGI app serving already loaded ``models`` (see :func:`ticketpack.serve.models.load_models`).

    ``fast_path=False``: every predict request goes through the FastAPI route (the reference), e.g. to measure
    what the fast path saves (bench/serve_bench.py does); the app's ``fast`` is then None."""
    metrics = Metrics(config.max_batch)
    state = {"ready": False, "executor": None}
    app = App(
        title="ticketpack",
        version=__version__,
        description="Predictions from exported ticketpack classifiers (ONNX Runtime). Every error answer has an "
        "`ErrorBody`: 404 unknown model, 413 batch/text/body over the limit, 422 malformed JSON, wrong types "
        "an empty batch or an empty text.",
        lifespan=_lifespan(state),
    )
    add_error_handlers(app)
    _add_health_routes(app, models, metrics, state)
    _add_predict_route(app, config, models, metrics, state)
    add_v2_routes(app, config, models, metrics, state, check_inputs)  # the Open Inference Protocol, beside /v1
    max_body = body_limit(config, models)
    app.add_middleware(Guard, metrics=metrics, names=set(models), max_body=max_body)
    if fast_path:
        app.fast = FastPredict(config, models, metrics, state, max_body)
    return app


def _lifespan(state: dict):
    """While the app runs: one pool for every model's inference, off the event loop (each model has one shared
    ORT session), and ``state["ready"]``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=max(usable_cpus(), 2), thread_name_prefix="ticketpack-infer")
        state["executor"] = executor
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            executor.shutdown(wait=True)

    return lifespan


def _add_health_routes(app: FastAPI, models: dict[str, ServedModel], metrics: Metrics, state: dict) -> None:
    """/healthz, /readyz, /v1/models and /metrics."""

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


def _add_predict_route(app: FastAPI, config: ServeConfig, models: dict[str, ServedModel], metrics: Metrics,
                       state: dict) -> None:
    """POST /v1/models/{name}/predict: checked inputs, inference in the pool, labels and probabilities."""

    async def served(name: Annotated[str, Path(description="Model name, as listed by /v1/models.")]) -> ServedModel:
        if name not in models:
            raise ApiError(404, "model_not_found", f"no model named {name!r}; serving: {', '.join(sorted(models))}")
        return models[name]

    @app.post("/v1/models/{name}/predict", response_model=PredictResponse, responses=_ERRORS, tags=["models"],
              summary="Predict labels and probabilities for a batch")
    async def predict(req: PredictRequest, model: Annotated[ServedModel, Depends(served)]) -> Response:
        inputs = req.inputs
        check_inputs(config, model, inputs)
        metrics.batch(model.name, len(inputs))
        loop = asyncio.get_running_loop()
        try:
            probs, beyond = await loop.run_in_executor(state["executor"], predict_now, model, inputs)
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


def check_inputs(config: ServeConfig, model: ServedModel, inputs: list) -> None:
    """Raise the :class:`ApiError` a validated request's ``inputs`` deserve from this server and ``model``: a batch
    or a text over the limit, the wrong kind of input, an empty text."""
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
