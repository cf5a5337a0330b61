"""Authentication: who is calling, from a bearer JWT, a session cookie, a query token or a
stream ticket. Algorithms and keys come from config only, never from the token.

Native ``EventSource`` cannot send an ``Authorization`` header, so the stream endpoint also
takes a short-lived *stream ticket* (signed with a key of its own, bound to one scan, one
subject and that one route), a cookie set by ``POST /api/v1/auth/session``, or, for clients
that already do so, ``?token=``/``?access_token=``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from aiohttp.typedefs import Handler

from .appkeys import CONFIG, PRINCIPAL, TICKETS, VERIFIER
from .config import AuthConfig, Config, JWTConfig
from .errors import Forbidden, Unauthorized
from .jwt_keys import HMAC_ALGORITHMS, verification_key

__all__ = [
    "STREAM_ROUTE",
    "Principal",
    "TicketIssuer",
    "TokenVerifier",
    "auth_middleware",
    "principal",
]

log = logging.getLogger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths under this prefix need a credential; health probes and the like do not.
PROTECTED_PREFIX = "/api/"
# The one route that accepts stream tickets.
STREAM_ROUTE = "scan-stream"
# Routes under the prefix that need no credential: clearing a session cookie, the API
# description, and the dev-only token endpoint (absent unless dev_mode).
PUBLIC_ROUTES = frozenset({"session-delete", "openapi-json", "openapi-docs", "dev-token"})
QUERY_TOKEN_PARAMS = ("token", "access_token")
TICKET_PARAM = "ticket"
_TICKET_AUDIENCE = "xployt-stream-ticket"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    expires_at: float | None = None  # epoch seconds; open streams end when it passes
    via: str = "bearer"  # bearer, cookie, query or ticket


def _decode_error(exc: jwt.PyJWTError, what: str) -> Unauthorized:
    reasons: list[tuple[type[Exception], str]] = [
        (jwt.ExpiredSignatureError, "has expired"),
        (jwt.InvalidSignatureError, "signature is invalid"),
        (jwt.InvalidAlgorithmError, "algorithm is not allowed"),
        (jwt.InvalidAudienceError, "audience is not accepted"),
        (jwt.InvalidIssuerError, "issuer is not accepted"),
        (jwt.exceptions.InvalidSubjectError, "subject must be a non-empty string"),
        (jwt.InvalidKeyError, "cannot be verified with the configured key"),
    ]
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return _invalid(f"{what} lacks the required claim {exc.claim!r}")
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return _invalid(f"{what} {reason}")
    return _invalid(f"{what} is malformed")


def _invalid(message: str) -> Unauthorized:
    return Unauthorized(message, token_given=True)


# The longest subject accepted: identity providers' are ids of a few dozen characters.
MAX_SUBJECT = 255


def _subject(claims: dict[str, object], what: str) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid(f"{what} subject must be a non-empty string")
    if len(subject) > MAX_SUBJECT or not _is_text(subject):
        raise _invalid(f"{what} subject must be text of at most {MAX_SUBJECT} characters")
    return subject


def _is_text(value: str) -> bool:
    """Whether ``value`` can be stored and sent as UTF-8 (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _compact(token: str, what: str) -> str:
    """A JWT's compact form is ASCII (base64url and dots); anything else is refused here, as
    the decoder would fail on it with errors of its own (a header's undecodable bytes)."""
    if not token.isascii():
        raise _invalid(f"{what} is malformed")
    return token


# pyjwt takes anything int() takes for these (a numeric string, true); RFC 7519 section 2
# says NumericDate, a JSON number. A string exp would pass pyjwt yet never end a stream.
_NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")


def _numeric_date(value: object) -> float | None:
    """The claim as epoch seconds, or None if it is not a JSON number a float can hold."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return seconds if math.isfinite(seconds) else None


def _check_numeric_dates(claims: dict[str, object], what: str) -> None:
    for name in _NUMERIC_DATE_CLAIMS:
        if name in claims and _numeric_date(claims[name]) is None:
            raise _invalid(f"{what} claim {name!r} must be a number of seconds since the epoch")


def _expiry(claims: dict[str, object]) -> float | None:
    return _numeric_date(claims.get("exp"))


class TokenVerifier:
    """Checks API tokens against config; the token's own header never picks the algorithm."""

    def __init__(self, config: JWTConfig) -> None:
        self._config = config
        self._algorithms = list(config.algorithms)
        # Loaded once; ValueError (naming the config key) if the algorithms cannot use it.
        self._key = verification_key(config.algorithms, config.secret, config.public_key)

    def verify(self, token: str, *, via: str = "bearer") -> Principal:
        try:
            claims = jwt.decode(
                _compact(token, "token"),
                self._key,
                algorithms=self._algorithms,
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_seconds,
                options={"require": ["exp", "sub"], "verify_aud": bool(self._config.audience)},
            )
        except jwt.PyJWTError as exc:  # InvalidTokenError, and InvalidKeyError for a key
            raise _decode_error(exc, "token") from None
        _check_numeric_dates(claims, "token")
        if claims.get("aud") == _TICKET_AUDIENCE:
            raise _invalid("a stream ticket is not an API token")
        expires_at = _expiry(claims)
        if expires_at is not None:  # what the leeway accepts, the stream accepts too
            expires_at += self._config.leeway_seconds
        return Principal(_subject(claims, "token"), expires_at, via)

    def issue(self, subject: str, ttl_seconds: int = 3600) -> str:
        """Sign a token with the configured HMAC secret (for demos and scripts)."""
        algorithm = self._algorithms[0]
        if not isinstance(self._key, bytes):
            raise ValueError(f"cannot issue {algorithm} tokens: no private key is configured")
        if not subject:
            raise ValueError("subject must not be empty")
        if ttl_seconds <= 0:
            raise ValueError("ttl must be positive")
        now = int(time.time())
        claims: dict[str, object] = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
        if self._config.audience:
            claims["aud"] = self._config.audience
        if self._config.issuer:
            claims["iss"] = self._config.issuer
        return jwt.encode(claims, self._key, algorithm=algorithm)


class TicketIssuer:
    """Stream tickets: HS256 tokens under a key no API token is signed with."""

    def __init__(self, config: Config) -> None:
        if config.auth.ticket_secret:
            self._key = config.auth.ticket_secret.encode()
        elif set(config.jwt.algorithms) <= HMAC_ALGORITHMS:
            # A key of its own, so a ticket never passes as an API token nor the reverse.
            self._key = hmac.new(
                config.jwt.secret.encode(), b"xployt stream ticket", hashlib.sha256
            ).digest()
        else:
            log.warning(
                "auth.ticket_secret is not set: stream tickets are signed with a random key "
                "and do not survive a restart"
            )
            self._key = secrets.token_bytes(32)

    def issue(self, subject: str, scan_id: str, ttl_seconds: float) -> str:
        now = time.time()
        claims = {
            "sub": subject,
            "scan": scan_id,
            "aud": _TICKET_AUDIENCE,
            "iat": int(now),
            # Rounded up: a ticket never expires before the expires_in it was announced with.
            "exp": math.ceil(now + max(1.0, ttl_seconds)),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, ticket: str, scan_id: str) -> Principal:
        try:
            claims = jwt.decode(
                _compact(ticket, "stream ticket"),
                self._key,
                algorithms=["HS256"],
                audience=_TICKET_AUDIENCE,
                options={"require": ["exp", "sub", "scan", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise _decode_error(exc, "stream ticket") from None
        _check_numeric_dates(claims, "stream ticket")
        if claims.get("scan") != scan_id:
            raise _invalid("stream ticket is not valid for this scan")
        return Principal(_subject(claims, "stream ticket"), _expiry(claims), "ticket")


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


def _is_stream_route(request: web.Request) -> bool:
    route = request.match_info.route
    return route.name == STREAM_ROUTE


def authenticate(request: web.Request) -> Principal:
    """The caller, from the first credential present: header, ticket, query token, cookie."""
    app = request.app
    config = app[CONFIG]
    header = request.headers.get("Authorization")
    if header:
        return app[VERIFIER].verify(bearer_token(header))
    ticket = request.query.get(TICKET_PARAM)
    if ticket and _is_stream_route(request):
        return app[TICKETS].verify(ticket, request.match_info["scan_id"])
    query_token = _query_token(request, config.auth)
    if query_token:
        return app[VERIFIER].verify(query_token, via="query")
    cookie = request.cookies.get(config.auth.cookie_name)
    if cookie:
        principal = app[VERIFIER].verify(cookie, via="cookie")
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
        request[PRINCIPAL] = authenticate(request)
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
