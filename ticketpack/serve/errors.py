"""The serve API's error answers: :class:`ApiError` raised by the routes, and the exception handlers that word
every error (validation, HTTP, unexpected) as an :class:`~ticketpack.serve.api.ErrorBody`."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ticketpack.serve.api import ErrorBody

log = logging.getLogger("ticketpack.serve")

ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "content_too_large",
               415: "unsupported_media_type", 422: "invalid_request", 500: "internal_error", 503: "unavailable"}


class ApiError(Exception):
    """An error answer with a status, a code, a message and optionally the offending field."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, ErrorBody(error=error, message=message, field=field)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit:,} bytes")


def error_response(status: int, error: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, message=message, field=field).model_dump(), status_code=status)


def field_path(loc) -> str | None:
    """A pydantic error location as a dotted path, without 'body' and the union-member tags pydantic adds."""
    parts = [str(p) for p in loc if p != "body" and not (isinstance(p, str) and "[" in p)]
    return ".".join(parts) or None


def add_error_handlers(app: FastAPI) -> None:
    """Every error answer of ``app`` as an ``ErrorBody``: the API's own, validation, HTTP and unexpected errors."""

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
            return error_response(422, "malformed_json", msg)
        field = field_path(first["loc"])
        if field is None:  # no body, or not a JSON object (or not sent as application/json)
            return error_response(422, "invalid_request",
                          'the body must be a JSON object like {"inputs": [...]}, sent as content-type: application/json')
        empty = any(e.get("type") == "too_short" and field_path(e["loc"]) == "inputs" for e in errors)
        if empty:
            return error_response(422, "empty_batch", "inputs is empty: give at least one input", "inputs")
        msg = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
        return error_response(422, "invalid_request", f"{field or 'body'}: {msg}", field)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body json cannot decode (bad UTF-8, nesting too deep): malformed JSON to us
            return error_response(422, "malformed_json", "malformed JSON: the body cannot be decoded")
        return JSONResponse(
            ErrorBody(error=ERROR_CODES.get(exc.status_code, "error"), message=str(exc.detail)).model_dump(),
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error (logged on the server)")
