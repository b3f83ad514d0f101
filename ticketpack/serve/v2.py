"""The Open Inference Protocol (KServe v2) REST endpoints, beside the server's own ``/v1`` API: health, server and
model metadata, readiness and ``infer``, for the same loaded models, through the same inference pool and the same
input checks (--max-batch, --max-text-chars) as ``/v1/models/{name}/predict``.

Each model has one input (``text``: BYTES; ``image``: FP32, UINT8 or FP64 in (N, H, W, C) layout; ``input``:
FP32 or FP64 (N, features) for tables) and three outputs: ``label`` (BYTES, N), ``probabilities`` (FP32, N×C) and
``logits`` (FP32, N×C, only when asked for). Inputs and outputs may be JSON or binary (the binary tensor data
extension, as ``tritonclient`` sends and asks for by default). Every error answer of these routes is the
protocol's ``{"error": message}``, 4xx for any request: 400 bad input, 404 unknown model or version, 413 over a
limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

import numpy as np
from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from ticketpack.core.errors import TicketpackError
from ticketpack.runtime.predictor import softmax
from ticketpack.serve.config import ServeConfig
from ticketpack.serve.errors import ApiError, field_path
from ticketpack.serve.fastpath import predict_now
from ticketpack.serve.metrics import Metrics
from ticketpack.serve.models import ServedModel
from ticketpack.serve.v2_api import (
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
    TensorMetadata,
    V2ErrorBody,
)
from ticketpack.serve.v2_tensors import (
    OUTPUTS,
    Signature,
    V2Error,
    binary_parts,
    decode,
    encode,
    wanted_outputs,
)
from ticketpack.version import __version__

VERSION = "1"  # every served file is its model's one version
PLATFORM = "onnxruntime_onnx"  # Triton's name for an ONNX model run by ONNX Runtime
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "inference-header-content-length"  # the binary extension: bytes of JSON before the binary part

_NOT_FOUND = {
    404: {"model": V2ErrorBody, "description": "No model of that name, or no such version."},
    "4XX": {"model": V2ErrorBody, "description": "Any other refusal (such as 405), with an `error` message too."},
}
_INFER_ERRORS = {
    400: {"model": V2ErrorBody, "description": "Bad input: malformed JSON, a wrong datatype, name or shape, data "
          "that does not fill the shape, no input or more than one, an unknown output, an empty text."},
    **_NOT_FOUND,
    413: {"model": V2ErrorBody, "description": "Batch, text or body over the server's limit."},
}
_BINARY_ANSWER = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}, "description":
                  "The JSON answer, then the binary data (its length in the Inference-Header-Content-Length header)."}}

Check = Callable[[ServeConfig, ServedModel, list], None]


def add_v2_routes(app: FastAPI, config: ServeConfig, models: dict[str, ServedModel], metrics: Metrics, state: dict,
                  check_inputs: Check) -> None:
    """Add the protocol's routes to ``app``. ``check_inputs``: the v1 route's checks of a batch (limits, kind)."""
    router = APIRouter(route_class=_V2Route, tags=["open inference protocol (v2)"])
    signatures = {name: Signature.of(m) for name, m in models.items()}
    _add_health(router, models, state)
    _add_metadata(router, models, signatures)
    _add_infer(router, config, models, metrics, state, signatures, check_inputs)
    app.include_router(router)


def _served(models: dict[str, ServedModel], name: str, version: str | None) -> ServedModel:
    if name not in models:
        raise V2Error(404, f"no model named {name!r}; serving: {', '.join(sorted(models))}")
    if version is not None and version != VERSION:
        raise V2Error(404, f"model {name!r} has no version {version!r}; its versions: {VERSION}")
    return models[name]


def _ready(models: dict[str, ServedModel], state: dict) -> bool:
    return bool(state["ready"]) and all(m.smoke == "ok" for m in models.values())


ModelName = Annotated[str, Path(description="Model name, as listed by /v1/models.")]
Version = Annotated[str, Path(description="Model version; every served model has one, '1'.")]


def _add_health(router: APIRouter, models: dict[str, ServedModel], state: dict) -> None:
    """/v2/health/live, /v2/health/ready, /v2/models/{name}[/versions/{v}]/ready (4xx: not ready, as the protocol
    says)."""

    @router.get("/v2/health/live", response_model=ServerLive, summary="The process is up")
    async def live() -> ServerLive:
        return ServerLive(live=True)

    @router.get("/v2/health/ready", response_model=ServerReady, responses={400: {"model": ServerReady}},
                summary="Every model is loaded and passed its smoke inference")
    async def ready():
        ok = _ready(models, state)
        return ServerReady(ready=True) if ok else JSONResponse({"ready": False}, status_code=400)

    async def model_ready(name: str, version: str | None):
        model = _served(models, name, version)
        ok = bool(state["ready"]) and model.smoke == "ok"
        return ModelReady(name=name, ready=True) if ok else JSONResponse({"name": name, "ready": False}, 400)

    responses = {400: {"model": ModelReady}, **_NOT_FOUND}

    @router.get("/v2/models/{name}/ready", response_model=ModelReady, responses=responses, summary="The model is ready")
    async def ready_model(name: ModelName):
        return await model_ready(name, None)

    @router.get("/v2/models/{name}/versions/{version}/ready", response_model=ModelReady, responses=responses,
                summary="The model version is ready")
    async def ready_version(name: ModelName, version: Version):
        return await model_ready(name, version)


def _add_metadata(router: APIRouter, models: dict[str, ServedModel], signatures: dict[str, Signature]) -> None:
    """/v2 and /v2/models/{name}[/versions/{v}]."""

    @router.get("/v2", response_model=ServerMetadata, summary="Server metadata")
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name="ticketpack", version=__version__, extensions=EXTENSIONS)

    def metadata(name: str, version: str | None) -> ModelMetadata:
        model, sig = _served(models, name, version), signatures[name]
        classes = len(model.predictor.labels)
        return ModelMetadata(
            name=name, versions=[VERSION], platform=PLATFORM,
            inputs=[TensorMetadata(name=sig.name, datatype=sig.datatypes[0], shape=list(sig.shape))],
            outputs=[TensorMetadata(name="label", datatype="BYTES", shape=[-1]),
                     *(TensorMetadata(name=n, datatype="FP32", shape=[-1, classes]) for n in OUTPUTS[1:])],
        )

    @router.get("/v2/models/{name}", response_model=ModelMetadata, responses=_NOT_FOUND, summary="Model metadata")
    async def model_metadata(name: ModelName) -> ModelMetadata:
        return metadata(name, None)

    @router.get("/v2/models/{name}/versions/{version}", response_model=ModelMetadata, responses=_NOT_FOUND,
                summary="Model version metadata")
    async def version_metadata(name: ModelName, version: Version) -> ModelMetadata:
        return metadata(name, version)


def _add_infer(router: APIRouter, config: ServeConfig, models: dict[str, ServedModel], metrics: Metrics,
               state: dict, signatures: dict[str, Signature], check_inputs: Check) -> None:
    """POST /v2/models/{name}[/versions/{v}]/infer."""

    async def infer(name: str, version: str | None, req: InferRequest, request: Request) -> Response:
        model = _served(models, name, version)
        sig = signatures[name]
        if len(req.inputs) != 1:
            raise V2Error(400, f"{len(req.inputs)} inputs; model {name!r} takes one, {sig.name!r} "
                          f"({sig.datatype_words}, shape {list(sig.shape)})")
        parts = binary_parts(req, getattr(request, "binary", b""))
        inputs = decode(req.inputs[0], parts.get(0), name, sig)
        wanted = wanted_outputs(req, name)
        check_inputs(config, model, inputs)
        metrics.batch(name, len(inputs))
        args, executor = (model, inputs, any(n == "logits" for n, _ in wanted)), state["executor"]
        probs, logits, beyond = _run(*args) if executor is None else (  # None: outside the app's lifespan
            await asyncio.get_running_loop().run_in_executor(executor, _run, *args))
        labels = model.predictor.labels
        tensors = {"label": [labels[k] for k in probs.argmax(axis=1).tolist()], "probabilities": probs,
                   "logits": logits}
        outputs, binary = encode(wanted, tensors)
        body = {"model_name": name, "model_version": VERSION, "outputs": outputs}
        if req.id is not None:
            body["id"] = req.id
        if beyond is not None:
            body["parameters"] = {"warning": beyond.message(model.predictor.card.preprocessing.noun)}
        header = InferResponse.model_validate(body).model_dump_json(exclude_none=True).encode()
        if not binary:
            return Response(header, media_type="application/json")
        return Response(header + binary, media_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(len(header))})

    responses = {**_INFER_ERRORS, 200: {"content": _BINARY_ANSWER}}

    @router.post("/v2/models/{name}/infer", response_model=InferResponse, responses=responses, summary="Infer")
    async def infer_model(name: ModelName, req: InferRequest, request: Request) -> Response:
        return await infer(name, None, req, request)

    @router.post("/v2/models/{name}/versions/{version}/infer", response_model=InferResponse, responses=responses,
                 summary="Infer with a model version")
    async def infer_version(name: ModelName, version: Version, req: InferRequest, request: Request) -> Response:
        return await infer(name, version, req, request)


def _run(model: ServedModel, inputs, with_logits: bool) -> tuple[np.ndarray, np.ndarray | None, object]:
    """(probabilities float32, logits or None, inputs beyond the training range or None), in the inference pool."""
    try:
        if not with_logits:
            probs, beyond = predict_now(model, inputs)  # what the v1 route runs
            return probs.astype(np.float32), None, beyond
        x, beyond = model.prepare_checked(inputs)  # as ServedModel.probabilities runs x, keeping the logits
        logits = model.logits(x)
        return softmax(logits.astype(np.float64)).astype(np.float32), logits, beyond
    except TicketpackError as exc:
        raise V2Error(400, str(exc)) from None


class _V2Request(Request):
    """A request whose body is the JSON header only; the binary part after it (the binary tensor data extension)
    is ``binary``."""

    binary: bytes = b""

    async def body(self) -> bytes:
        if not hasattr(self, "_v2_json"):
            whole = await super().body()
            length = self.headers.get(HEADER_LENGTH)
            if length is None:
                self._v2_json = whole
            elif not length.isdigit() or int(length) > len(whole):
                raise V2Error(400, f"Inference-Header-Content-Length {length!r} is not a length within the "
                              f"body's {len(whole)} bytes")
            else:
                self._v2_json, self.binary = whole[:int(length)], whole[int(length):]
        return self._v2_json


def _json_scope(scope: dict) -> dict:
    """The request's scope, its body declared JSON whatever its content type says (as Triton reads it): tritonclient
    sends none, curl -d sends a form's, and with the binary extension the JSON header comes first."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _V2Route(APIRoute):
    """A route answering every error in the protocol's format, ``{"error": message}``."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(_V2Request(_json_scope(request.scope), request.receive))
            except V2Error as exc:
                return _error(exc.status_code, exc.message)
            except ApiError as exc:  # the v1 checks: 413 over a limit; any other refusal is bad input here
                return _error(413 if exc.status == 413 else 400, exc.body.message)
            except RequestValidationError as exc:
                return _error(400, _validation_message(exc))
            except HTTPException as exc:  # the body over the limit (413), or a body that cannot be decoded (400)
                return _error(exc.status_code if 400 <= exc.status_code < 500 else 400, str(exc.detail))

        return route


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('ctx', {}).get('error', 'cannot parse the body')}"
    field = field_path(first.get("loc", ()))
    if field is None:
        return 'the body must be a JSON object like {"inputs": [{"name": ..., "shape": ..., "datatype": ..., ' \
               '"data": ...}]}'
    return f"{field}: {first.get('msg', 'invalid')}"
