"""API tokens and stream tickets: verifying them, and signing the ones the gateway issues.
Algorithms and keys come from config only, never from the token.

A *stream ticket* is signed with a key of its own and bound to one scan and one subject, so a
ticket never passes as an API token nor the reverse (``auth`` says which routes take one).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass

import jwt

from gateway.config import Config, JWTConfig
from gateway.config.jwt_keys import HMAC_ALGORITHMS, verification_key
from gateway.domain.errors import Unauthorized

__all__ = ["Principal", "TicketIssuer", "TokenVerifier"]

log = logging.getLogger(__name__)

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
