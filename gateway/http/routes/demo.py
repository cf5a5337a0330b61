"""The demo page (``GET /`` and its assets under ``/static/``) and, in dev mode only, a token
endpoint for it.

The page is plain HTML, CSS and JavaScript from ``gateway/static``: no build step, nothing
fetched from elsewhere. It watches scans with a native ``EventSource`` opened with a stream
ticket, as the README recommends.

``POST /api/v1/dev/token`` signs a token with the configured secret for anyone who asks, so it
exists only when ``dev_mode`` is true. Routes are fixed when the app is built, so the route is
always registered; without ``dev_mode`` it answers exactly as a missing ``/api/`` route does
(401 without a credential, 404 with one), whatever the method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec
from aiohttp import web

from gateway.domain.errors import Conflict, MethodNotAllowed, NotFound, ValidationError
from gateway.http.appkeys import CONFIG, VERIFIER
from gateway.http.audit import audit
from gateway.http.auth import authenticate
from gateway.http.operations import enveloped, operation, text, undocumented
from gateway.http.responses import ok
from gateway.http.schemas import DEFAULT_SUBJECT, MAX_SUBJECT, DevToken, DevTokenRequest
from gateway.http.validation import read_body, read_json

__all__ = [
    "DEFAULT_SUBJECT",
    "DEV_TOKEN_PATH",
    "DEV_TOKEN_TTL_SECONDS",
    "MAX_SUBJECT",
    "STATIC_DIR",
    "routes",
]

STATIC_DIR: Final = Path(__file__).resolve().parents[2] / "static"
# The files the page may load, and the API docs page's (routes/openapi.py); nothing else from
# that folder.
ASSETS: Final = frozenset({"app.js", "style.css", "docs.js", "docs.css"})
DEV_TOKEN_PATH: Final = "/api/v1/dev/token"
DEV_TOKEN_TTL_SECONDS: Final = 3600

# Same-origin only, no inline code: the page needs nothing else.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


def _file(name: str) -> web.FileResponse:
    path = STATIC_DIR / name
    if not path.is_file():  # e.g. an install that left the static files out
        raise NotFound(f"demo page file {name!r} is not installed")
    return web.FileResponse(path, headers=PAGE_HEADERS)


@routes.get("/")
@operation(
    "demoPage",
    "The demo page",
    "pages",
    {200: text("text/html", "An HTML page that starts and watches a scan.")},
    errors=((404, "The page's files are not installed."),),
    description=(
        "Its script and stylesheet are served under `/static/` (not described here). In dev "
        "mode it gets its token from `POST /api/v1/dev/token`."
    ),
    auth="public",
)
async def index(request: web.Request) -> web.FileResponse:
    return _file("index.html")


@routes.get("/static/{name}")
@undocumented("the page's files, a file tree served by name (info.description says so)")
async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise NotFound(f"no route for {request.method} {request.path}")
    return _file(name)


def _not_a_route(request: web.Request) -> NotFound:
    """What any missing ``/api/`` route answers, once the caller has authenticated."""
    return NotFound(f"no route for {request.method} {request.path}")


async def _subject(request: web.Request) -> str:
    """``subject`` from an optional JSON body, a ``schemas.DevTokenRequest``; the default
    without one."""
    if not request.body_exists or not (await read_body(request)).strip():
        return DEFAULT_SUBJECT
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationError('request body must be a JSON object like {"subject": "demo"}')
    unknown = sorted(set(body) - set(DevTokenRequest.__struct_fields__))
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}")
    try:
        wanted = msgspec.convert(body, DevTokenRequest)
    except msgspec.ValidationError:
        subject = body["subject"]  # its only field
        if not isinstance(subject, str) or not subject.strip():
            raise ValidationError("field 'subject' must be a non-empty string") from None
        raise ValidationError(f"field 'subject' is longer than {MAX_SUBJECT} characters") from None
    return wanted.subject.strip()


@routes.post(DEV_TOKEN_PATH, name="dev-token")
@operation(
    "createDevToken",
    "Get a development token (dev mode only)",
    "development",
    {200: enveloped(DevToken, "A bearer token for the demo page.")},
    errors=(
        400,
        401,
        (
            404,
            "Not in dev mode: the route answers as a missing one does (404 with a credential, "
            "401 without).",
        ),
        408,
        (
            409,
            "The gateway verifies tokens of an identity provider (asymmetric `jwt.algorithms`), "
            "so it has no key to sign one with (`conflict`): get a token from the provider.",
        ),
        413,
        415,
        422,
    ),
    description=(
        "For the demo page at `/`. Signs a token for anyone who asks, so it works only when "
        "`dev_mode` is true (`XPLOYT_DEV_MODE=1`), never in production; without it the route "
        "answers exactly as a missing `/api/` route does. The body is optional; without one "
        "the subject is `demo`. Other methods are 405 in dev mode (404 otherwise). The token "
        "carries no permission claim: its subject's own scans, all rights."
    ),
    body=DevTokenRequest,
    body_required=False,
    auth="public",
)
async def dev_token(request: web.Request) -> web.Response:
    """A token for the demo page. Public (see ``auth.PUBLIC_ROUTES``) and dev mode only."""
    if not request.app[CONFIG].dev_mode:
        await authenticate(request)  # the route is public, so check what a missing one would
        raise _not_a_route(request)
    subject = await _subject(request)
    try:
        token = request.app[VERIFIER].issue(subject, DEV_TOKEN_TTL_SECONDS)
    except ValueError as exc:  # no shared secret: the identity provider signs tokens
        raise Conflict(
            f"no development token: {exc}; get a token from the identity provider"
        ) from None
    audit(request, "dev_token.issued", minted_for=subject)
    return ok(DevToken(token=token, subject=subject, expires_in=DEV_TOKEN_TTL_SECONDS))


@routes.route("*", DEV_TOKEN_PATH)
@undocumented("the other methods of a documented path: 405, or 404 outside dev mode")
async def dev_token_other_methods(request: web.Request) -> web.Response:
    """Other methods: 405 in dev mode, and without it what a missing route answers.

    Not a public route, so the auth middleware has already checked the credential.
    """
    if not request.app[CONFIG].dev_mode:
        raise _not_a_route(request)
    error = MethodNotAllowed(f"method {request.method} is not allowed on {request.path}")
    error.headers["Allow"] = "POST"
    raise error
