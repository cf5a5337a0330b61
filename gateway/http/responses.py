"""The JSON envelope every response uses, and the middleware that turns errors into it."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.domain.errors import GatewayError
from gateway.domain.models import strict_json, utcnow
from gateway.http.schemas import Envelope, Error

__all__ = ["error_body", "error_middleware", "json_response", "ok"]

log = logging.getLogger(__name__)

# aiohttp's own HTTP exceptions (no route, wrong method, body too large) keep their status and
# get a code in our vocabulary.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "limit_exceeded",
}


def json_response(body: Any, *, status: int = 200) -> web.Response:
    """A JSON response that is JSON: a NaN or an infinity in ``body`` raises ValueError (a
    500 from the error middleware) instead of going out as ``NaN``/``Infinity``."""
    return web.json_response(body, status=status, dumps=strict_json)


def ok(data: Any, *, status: int = 200, message: str | None = None) -> web.Response:
    """The success envelope (``schemas.Envelope``) around ``data``: JSON values, or Structs of
    ``gateway.http.schemas``."""
    envelope = Envelope(success=True, data=data, message=message, timestamp=utcnow())
    return json_response(msgspec.to_builtins(envelope), status=status)


def error_body(code: str, message: str, detail: str | None = None) -> dict[str, Any]:
    """The error envelope (``schemas.Error``) as JSON values."""
    error = Error(
        success=False,
        data=None,
        error=code,
        message=message,
        detail=detail or message,
        timestamp=utcnow(),
    )
    body: dict[str, Any] = msgspec.to_builtins(error)
    return body


def _error_response(
    status: int, code: str, message: str, detail: str | None = None
) -> web.Response:
    return json_response(error_body(code, message, detail), status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        response = _error_response(exc.status, exc.code, exc.message, exc.detail)
        response.headers.update(exc.headers)
        if exc.close_connection:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = _error_response(exc.status, code, _http_message(request, exc))
        for name in ("Allow", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error_response(500, "internal_error", "internal server error")


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no route for {request.method} {request.path}"
    if exc.status == 405:
        return f"method {request.method} is not allowed on {request.path}"
    if exc.status == 413:
        return "request body is too large"
    return exc.reason
