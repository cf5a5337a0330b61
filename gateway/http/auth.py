"""Authentication: who is calling, from a bearer JWT, a session cookie, a query token or a
stream ticket (each checked by ``tokens``), and the middleware that requires one.

Native ``EventSource`` cannot send an ``Authorization`` header, so the stream endpoint also
takes a short-lived *stream ticket* (signed with a key of its own, bound to one scan, one
subject and that one route), a cookie set by ``POST /api/v1/auth/session``, or, for clients
that already do so, ``?token=``/``?access_token=``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.config import AuthConfig, Config
from gateway.domain.collections import log_id
from gateway.domain.errors import Forbidden, Unauthorized
from gateway.http.appkeys import CONFIG, PRINCIPAL, TICKETS, VERIFIER
from gateway.http.streams import COLLECTION_STREAM_ROUTE, STREAM_ROUTE
from gateway.identity.tokens import Principal, TicketIssuer, TokenVerifier

# Principal, TicketIssuer and TokenVerifier live in .tokens (below the app's state, which
# holds them); they are named here too, as what authentication hands out and works with. The
# routes that accept stream tickets are named where streams are (``streams``).
__all__ = [
    "COLLECTION_STREAM_ROUTE",
    "STREAM_ROUTE",
    "Principal",
    "TicketIssuer",
    "TokenVerifier",
    "auth_middleware",
    "principal",
]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths under this prefix need a credential; health probes and the like do not.
PROTECTED_PREFIX = "/api/"
# Routes under the prefix that need no credential: clearing a session cookie, the API
# description, and the dev-only token endpoint (absent unless dev_mode).
PUBLIC_ROUTES = frozenset({"session-delete", "openapi-json", "openapi-docs", "dev-token"})
QUERY_TOKEN_PARAMS = ("token", "access_token")
TICKET_PARAM = "ticket"


def bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'", token_given=False)
    return token.strip()


def _query_token(request: web.Request, config: AuthConfig) -> str | None:
    # Reads only: a token in a URL travels in links, history and logs, so it must not be
    # enough to start or cancel anything.
    if not config.query_tokens or request.method not in _SAFE_METHODS:
        return None
    for name in QUERY_TOKEN_PARAMS:
        if request.query.get(name):
            return request.query[name]
    return None


def _ticket_binding(request: web.Request) -> str | None:
    """The log a ticket must be bound to on this route; None where tickets are not taken."""
    name = request.match_info.route.name
    if name == STREAM_ROUTE:
        return request.match_info["scan_id"]
    if name == COLLECTION_STREAM_ROUTE:
        return log_id(request.match_info["collection_id"])
    return None


async def authenticate(request: web.Request) -> Principal:
    """The caller, from the first credential present: header, ticket, query token, cookie."""
    app = request.app
    config = app[CONFIG]
    header = request.headers.get("Authorization")
    if header:
        return await app[VERIFIER].verify(bearer_token(header))
    ticket = request.query.get(TICKET_PARAM)
    bound_to = _ticket_binding(request) if ticket else None
    if ticket and bound_to is not None:
        return app[TICKETS].verify(ticket, bound_to)
    query_token = _query_token(request, config.auth)
    if query_token:
        return await app[VERIFIER].verify(query_token, via="query")
    cookie = request.cookies.get(config.auth.cookie_name)
    if cookie:
        principal = await app[VERIFIER].verify(cookie, via="cookie")
        _check_cookie_origin(request, config)
        return principal
    raise Unauthorized("missing bearer token", token_given=False)


def _check_cookie_origin(request: web.Request, config: Config) -> None:
    """A cookie rides along on cross-site requests, so a change made with it (CSRF) needs
    proof that a page of this origin sent it: ``Sec-Fetch-Site: same-origin``, or an
    ``Origin`` equal to the request's own (scheme, host and port) or listed in
    ``cors.allowed_origins``. Browsers send both on every POST and DELETE ``fetch``."""
    if request.method in _SAFE_METHODS:
        return
    if request.headers.get("Sec-Fetch-Site") == "same-origin":
        return
    origin = request.headers.get("Origin")
    if origin is None:
        raise Forbidden(
            f"cookie-authenticated {request.method} needs an Origin header; "
            "send the token as 'Authorization: Bearer' instead"
        )
    trusted = {_origin_key(allowed) for allowed in config.cors.allowed_origins}
    trusted.add(_own_origin(request, config))
    if _origin_key(origin) not in trusted:
        raise Forbidden(
            f"cookie-authenticated {request.method} from origin {origin[:200]!r} refused"
        )


_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_ORIGIN = ("", "", 0)  # what an origin that does not parse compares as: nothing


def _origin_key(origin: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an origin, default ports filled in, for comparison."""
    try:
        parts = urlsplit(origin.strip())
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return _NO_ORIGIN
        return scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number, or out of range
        return _NO_ORIGIN


def _own_origin(request: web.Request, config: Config) -> tuple[str, str, int]:
    """The request's own origin: its Host header, and the scheme of the connection; behind a
    proxy that ends TLS, ``X-Forwarded-Proto`` only if ``server.trust_forwarded_proto``."""
    scheme = request.scheme
    if config.server.trust_forwarded_proto:
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if forwarded in _DEFAULT_PORTS:
            scheme = forwarded
    own = _origin_key(f"{scheme}://{request.host}")
    return own if own != _NO_ORIGIN else ("", "", -1)  # never equal to a refused origin


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    public = request.match_info.route.name in PUBLIC_ROUTES
    if request.path.startswith(PROTECTED_PREFIX) and request.method != "OPTIONS" and not public:
        request[PRINCIPAL] = await authenticate(request)
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
