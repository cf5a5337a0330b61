"""Cookie sessions, for browsers whose EventSource cannot send an Authorization header."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.domain.errors import Unauthorized
from gateway.http.appkeys import CONFIG
from gateway.http.audit import audit
from gateway.http.auth import bearer_token, principal
from gateway.http.operations import enveloped, operation
from gateway.http.responses import ok
from gateway.http.schemas import Session

__all__ = ["SESSION_PATH", "routes"]

SESSION_PATH = "/api/v1/auth/session"
COOKIE_PATH = "/api/"

routes = web.RouteTableDef()

# Browsers keep a cookie at most 400 days (RFC 6265bis); a token valid longer gets that.
MAX_COOKIE_SECONDS = 400 * 24 * 3600


@routes.post(SESSION_PATH)
@operation(
    "openSession",
    "Set the session cookie",
    "auth",
    {
        200: enveloped(
            Session,
            "The cookie is set: HttpOnly, path `/api/`, expiring with the token.",
            {"Set-Cookie": "`{config.auth.cookie_name}=<the token>; HttpOnly; Path=/api/; ...`"},
        )
    },
    errors=(401, 403, 503),
    description=(
        "Puts the caller's bearer token in a cookie that the stream and the whole API accept, "
        "with the token's own permissions. Needs the `Authorization` header itself (a cookie "
        "alone is 401). No request body."
    ),
    auth="bearer",
    permission="none",
)
async def open_session(request: web.Request) -> web.Response:
    """Put the caller's bearer token in an HttpOnly cookie that the API accepts too."""
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("opening a session needs a bearer token", token_given=False)
    token = bearer_token(header)
    who = principal(request)
    config = request.app[CONFIG].auth
    remaining = (who.expires_at or time.time()) - time.time()
    max_age = int(min(MAX_COOKIE_SECONDS, max(0.0, remaining)))
    response = ok(Session(subject=who.subject, expires_in=max_age), message="session opened")
    response.set_cookie(
        config.cookie_name,
        token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        secure=config.cookie_secure,
        samesite=config.cookie_samesite,
    )
    audit(request, "session.opened", expires_in=max_age)
    return response


@routes.delete(SESSION_PATH, name="session-delete")
@operation(
    "closeSession",
    "Clear the session cookie",
    "auth",
    {200: enveloped(None, "The cookie is cleared.", {"Set-Cookie": "The cookie, expired."})},
    description="Needs no credential.",
    auth="public",
)
async def close_session(request: web.Request) -> web.Response:
    config = request.app[CONFIG].auth
    response = ok(None, message="session closed")
    response.del_cookie(
        config.cookie_name,
        path=COOKIE_PATH,
        secure=config.cookie_secure,
        httponly=True,
        samesite=config.cookie_samesite,
    )
    return response
