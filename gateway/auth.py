"""Authentication: bearer JWTs verified with the algorithms and keys from config only."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from aiohttp import web
from aiohttp.typedefs import Handler

from .appkeys import PRINCIPAL, VERIFIER
from .config import JWTConfig
from .errors import Unauthorized

__all__ = ["Principal", "TokenVerifier", "auth_middleware", "principal"]

_HMAC = frozenset({"HS256", "HS384", "HS512"})
# Paths under this prefix need a credential; health probes and the like do not.
PROTECTED_PREFIX = "/api/"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str


class TokenVerifier:
    """Checks tokens against config; the token's own header never picks the algorithm."""

    def __init__(self, config: JWTConfig) -> None:
        self._config = config
        self._algorithms = list(config.algorithms)
        if set(self._algorithms) <= _HMAC:
            self._key: str = config.secret
        elif config.public_key:
            self._key = config.public_key
        else:
            raise ValueError("jwt.public_key is required for non-HMAC algorithms")

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_seconds,
                options={"require": ["exp", "sub"], "verify_aud": bool(self._config.audience)},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("token has expired") from None
        except jwt.InvalidSignatureError:
            raise _invalid("token signature is invalid") from None
        except jwt.InvalidAlgorithmError:
            raise _invalid("token algorithm is not allowed") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"token lacks the required claim {exc.claim!r}") from None
        except jwt.InvalidAudienceError:
            raise _invalid("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise _invalid("token issuer is not accepted") from None
        except jwt.InvalidTokenError:
            raise _invalid("token is malformed") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _invalid("token subject must be a non-empty string")
        return Principal(subject)

    def issue(self, subject: str, ttl_seconds: int = 3600) -> str:
        """Sign a token with the configured HMAC secret (for demos and scripts)."""
        algorithm = self._algorithms[0]
        if algorithm not in _HMAC:
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


def _invalid(message: str) -> Unauthorized:
    return Unauthorized(message, token_given=True)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("missing bearer token", token_given=False)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'", token_given=False)
    return token.strip()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PROTECTED_PREFIX) and request.method != "OPTIONS":
        request[PRINCIPAL] = request.app[VERIFIER].verify(bearer_token(request))
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
