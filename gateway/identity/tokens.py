"""API tokens and stream tickets: verifying them, and signing the ones the gateway issues.
Algorithms and keys come from config only, never from the token.

An API token is checked with the shared secret (HS*), the configured public key, or the key
its ``kid`` names in the identity provider's key set (``keyset``): its ``alg`` must be a
configured one and fit that key's kind, its ``typ`` (when it has one) must say an access token
(``JWT``, ``at+jwt``), and ``iss``/``aud`` must be the configured ones when set. What it may
do comes from its permission claims (``principal``).

A *stream ticket* is signed with a key of its own and bound to one scan and one subject, so a
ticket never passes as an API token nor the reverse (``auth`` says which routes take one); it
carries ``scans:read`` on that scan and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time

import jwt

from gateway.config import AuthConfig, Config, JWTConfig
from gateway.config.jwt_keys import HMAC_ALGORITHMS, VerificationKey, verification_key
from gateway.domain.errors import KeysUnavailable, Unauthorized
from gateway.identity.jwks import MAX_KID
from gateway.identity.keyset import KeySet
from gateway.identity.principal import Permission, Principal, permissions_from

__all__ = ["Principal", "TicketIssuer", "TokenVerifier"]

log = logging.getLogger(__name__)

_TICKET_AUDIENCE = "xployt-stream-ticket"
_TICKET_RIGHTS = frozenset({Permission.READ})
# The token types an access token may declare (RFC 9068 section 2.1; JWT, RFC 7519 5.1). An
# identity provider signs other JWTs with the same keys (logout tokens, DPoP proofs), typed
# otherwise; compared case-insensitively, as media types are.
ACCESS_TOKEN_TYPES = frozenset({"jwt", "application/jwt", "at+jwt", "application/at+jwt"})
# jti and azp are kept for the audit log only: longer or other values are left out.
_MAX_AUDIT_CLAIM = 255


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


def _audit_claim(claims: dict[str, object], *names: str) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and 0 < len(value) <= _MAX_AUDIT_CLAIM and _is_text(value):
            return value
    return None


class TokenVerifier:
    """Checks API tokens against config; the token's own header never picks the algorithm
    nor, beyond naming it by kid in the configured key set, the key."""

    def __init__(self, config: JWTConfig, auth: AuthConfig | None = None) -> None:
        self._config = config
        self._auth = auth or AuthConfig()
        self._algorithms = list(config.algorithms)
        # Loaded once; ValueError (naming the config key) if the algorithms cannot use it.
        self._key = verification_key(
            config.algorithms, config.secret, config.public_key, config.key_set_source
        )
        # The provider's keys, fetched by KeySet.run (the app's cleanup context starts it).
        self.key_set = KeySet(config) if config.key_set_source is not None else None

    async def verify(self, token: str, *, via: str = "bearer") -> Principal:
        compact = _compact(token, "token")
        if isinstance(self._key, bytes):  # HMAC: the secret, for every configured algorithm
            key: VerificationKey = self._key
            algorithms = self._algorithms
        else:
            key, algorithm = await self._asymmetric_key(compact)
            algorithms = [algorithm]
        try:
            claims = jwt.decode(
                compact,
                key,
                algorithms=algorithms,
                audience=self._config.audience,
                issuer=self._config.expected_issuer,
                leeway=self._config.leeway_seconds,
                options={"require": ["exp", "sub"], "verify_aud": bool(self._config.audience)},
            )
        except jwt.PyJWTError as exc:  # InvalidTokenError, and InvalidKeyError for a key
            raise _decode_error(exc, "token") from None
        return self._principal(claims, via)

    def _principal(self, claims: dict[str, object], via: str) -> Principal:
        _check_numeric_dates(claims, "token")
        if claims.get("aud") == _TICKET_AUDIENCE:
            raise _invalid("a stream ticket is not an API token")
        expires_at = _expiry(claims)
        if expires_at is not None:  # what the leeway accepts, the stream accepts too
            expires_at += self._config.leeway_seconds
        try:
            permissions = permissions_from(claims, self._auth.permission_claims)
        except ValueError as exc:
            raise _invalid(f"token {exc}") from None
        if permissions is None and self._auth.require_permissions:
            permissions = frozenset()  # authenticated, allowed nothing: 403 on every route
        return Principal(
            _subject(claims, "token"),
            expires_at,
            via,
            permissions=permissions,
            token_id=_audit_claim(claims, "jti"),
            client_id=_audit_claim(claims, "azp", "client_id"),
        )

    async def _asymmetric_key(self, token: str) -> tuple[VerificationKey, str]:
        """The key and algorithm the token's header asks for, if config allows them."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _decode_error(exc, "token") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise _invalid("token algorithm is not allowed")
        kind = header.get("typ")
        if kind is not None and str(kind).lower() not in ACCESS_TOKEN_TYPES:
            raise _invalid("token type (typ) is not an access token's (JWT or at+jwt)")
        if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID):
            raise _invalid(f"token key id (kid) must be a string of 1 to {MAX_KID} characters")
        if self.key_set is None:
            assert self._key is not None  # the configured public key, of the algorithms' kind
            return self._key, algorithm
        return await self._key_set_key(self.key_set, kid, algorithm), algorithm

    async def _key_set_key(self, keys: KeySet, kid: str | None, algorithm: str) -> VerificationKey:
        if not keys.loaded:
            await keys.refetch()  # wait for the fetch under way, or one it is time for
        if not keys.loaded:
            raise KeysUnavailable(
                "the identity provider's keys are not loaded yet; try again shortly",
                retry_after=math.ceil(self._config.jwks_min_interval_seconds),
            )
        key = keys.find(kid, algorithm)
        if key is None and kid is not None and await keys.refetch():
            key = keys.find(kid, algorithm)  # a key the provider has just published
        if key is None:
            raise _invalid(
                "token names no key (kid), and the key set holds no single key for it"
                if kid is None
                else f"token key id {kid[:64]!r} is not in the identity provider's key set"
            )
        if algorithm not in key.algorithms:
            raise _invalid(f"token algorithm {algorithm} does not fit its key's kind")
        return key.key

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

    def status(self) -> str:
        """For readiness: ``ok`` when tokens can be verified (a key set, once loaded)."""
        return "ok" if self.key_set is None else self.key_set.status()


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
            "scope": Permission.READ.value,  # what it allows, whoever asked for it
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
        return Principal(
            _subject(claims, "stream ticket"),
            _expiry(claims),
            "ticket",
            permissions=_TICKET_RIGHTS,
            scan_id=scan_id,
        )
