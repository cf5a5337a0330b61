"""CORS for the configured origins, always with credentials (so never ``*``)."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.http.appkeys import CONFIG

__all__ = ["add_cors_headers", "preflight_middleware"]

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Request-ID"
EXPOSED_HEADERS = "Location, Retry-After, WWW-Authenticate"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is not None and origin in request.app[CONFIG].cors.allowed_origins:
        return origin
    return None


@web.middleware
def preflight_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Answer preflights before routing and auth: a preflight carries no credentials. Not a
    coroutine: each open stream would keep its frame."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return handler(request)
    return _preflight(request)


async def _preflight(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    if _allowed_origin(request) is not None:
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(request.app[CONFIG].cors.max_age_seconds)
    return response


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, streams and errors too, before headers go."""
    response.headers["Vary"] = "Origin"
    origin = _allowed_origin(request)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
