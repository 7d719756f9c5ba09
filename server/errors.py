"""Errors in OpenAI's envelope, ``{"error": {"message", "type", "param", "code"}}``, with the status clients expect.

Why one exception type: every refusal (bad JSON, unknown model, queue full, model loading) is raised as an
:class:`APIError` wherever it is found and rendered in one place, so no route can leak FastAPI's ``{"detail": ...}``
shape (which breaks the official SDKs) or a traceback. Validation errors are 400, never 422.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_log = logging.getLogger("outcore.server")

INVALID = "invalid_request_error"
AUTH = "authentication_error"
NOT_FOUND = "not_found_error"
TOO_LARGE = "request_too_large"
RATE = "rate_limit_error"
UNAVAILABLE = "unavailable_error"
SERVER = "server_error"
CONTEXT = "exceed_context_size_error"


class APIError(Exception):
    """A request that cannot be served; ``message`` is written for the person who sent it."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = INVALID,  # noqa: A002 - the envelope's own field name
        *,
        param: str | None = None,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        err.update(self.extra)
        return {"error": err}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, INVALID, param=param, code=code)


def error_response(err: APIError, run_id: str | None = None) -> JSONResponse:
    headers = dict(err.headers)
    if run_id:
        headers["X-Outcore-Run-Id"] = run_id
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def log_error(
    request: Request | None, err: APIError, run_id: str | None = None, scope: dict[str, Any] | None = None
) -> None:
    fields = {
        "status": err.status,
        "type": err.type,
        "code": err.code,
        "param": err.param,
        "error": err.message,
        "run": run_id or (getattr(request.state, "run_id", None) if request is not None else None),
        "path": request.url.path if request is not None else (scope or {}).get("path"),
        "method": request.method if request is not None else (scope or {}).get("method"),
    }
    level = logging.ERROR if err.status >= 500 and err.status != 503 else logging.WARNING
    if err.status == 503 and request is not None and request.url.path == "/health":
        level = logging.DEBUG  # readiness probes poll while the models load
    _log.log(level, "request failed", extra={"fields": fields})


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errs = exc.errors()
    if not errs:
        return "invalid request", None
    e = errs[0]
    loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
    param = ".".join(loc) or None
    msg = str(e.get("msg", "invalid value"))
    if e.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    return (f"{param}: {msg}" if param else msg), param


def install(app: FastAPI) -> None:
    """Render every failure in the envelope; unknown exceptions become a 500 without details (logged in full)."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        log_error(request, exc)
        return error_response(exc, getattr(request.state, "run_id", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        msg, param = _validation_message(exc)
        err = bad_request(msg, param)
        log_error(request, err)
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err = APIError(404, f"no route {request.method} {request.url.path}", NOT_FOUND, code="not_found")
        elif exc.status_code == 405:
            err = APIError(405, f"method {request.method} is not allowed on {request.url.path}", INVALID)
        else:
            err = APIError(exc.status_code, str(exc.detail), INVALID if exc.status_code < 500 else SERVER)
        log_error(request, err)
        return error_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        run_id = getattr(request.state, "run_id", None)
        _log.error(
            "internal error",
            exc_info=exc,
            extra={"fields": {"run": run_id, "path": request.url.path, "status": 500}},
        )
        err = APIError(500, "internal server error (logged on the server)", SERVER)
        return error_response(err, run_id)
