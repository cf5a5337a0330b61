"""What the config's types cannot say: one key against another, URLs, keys and addresses.

One function per section (or per rule across sections), each raising ``ConfigError`` with the
key it is about; ``root.Config`` runs them in order when it is built.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from gateway.config.errors import ConfigError
from gateway.config.jwt_keys import HMAC_ALGORITHMS, HMAC_MIN_SECRET_BYTES, verification_key
from gateway.config.sections import (
    AuthConfig,
    CorsConfig,
    DatabaseConfig,
    FindingsConfig,
    JWTConfig,
    RedisConfig,
    ServerConfig,
)

__all__ = [
    "check_auth",
    "check_backend",
    "check_cors",
    "check_dev_mode",
    "check_findings",
    "check_jwt",
    "check_redis",
    "check_scanners",
    "check_server",
    "is_loopback",
    "provider_url_problem",
]

# auth.permission_claims: a few names, each a JSON member name a token would use.
MAX_PERMISSION_CLAIMS = 8
MAX_CLAIM_NAME = 64


def check_server(server: ServerConfig) -> None:
    if server.host != server.host.strip():
        raise ConfigError(f"server.host: {server.host!r} has spaces around it")


def check_scanners(scanners: Mapping[str, str]) -> None:
    for name, url in scanners.items():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"scanners.{name}: {url!r} is not an http(s) URL")


def check_jwt(jwt: JWTConfig) -> None:
    """The algorithms need one kind of key, and the configured key is that kind (loaded here
    once, so that a key pyjwt cannot use fails at startup, not on each request); a key set's
    URL is one the gateway may fetch, and its cache bounds are in order."""
    if jwt.jwks_url is not None and jwt.oidc_issuer is not None:
        raise ConfigError(
            "jwt.jwks_url: set together with jwt.oidc_issuer; set one (the issuer's discovery "
            "document names its key set; with jwt.jwks_url, jwt.issuer checks iss)"
        )
    for key, url in (("jwt.jwks_url", jwt.jwks_url), ("jwt.oidc_issuer", jwt.oidc_issuer)):
        problem = None if url is None else provider_url_problem(url)
        if problem is not None:
            raise ConfigError(f"{key}: {problem}")
    if jwt.oidc_issuer is not None and jwt.issuer not in (None, jwt.oidc_issuer):
        raise ConfigError(
            "jwt.issuer: differs from jwt.oidc_issuer; an OpenID provider's tokens carry its "
            "issuer (leave jwt.issuer out)"
        )
    if not jwt.jwks_min_interval_seconds <= jwt.jwks_cache_seconds <= jwt.jwks_max_cache_seconds:
        raise ConfigError(
            "jwt.jwks_cache_seconds: must be between jwt.jwks_min_interval_seconds and "
            "jwt.jwks_max_cache_seconds"
        )
    try:
        verification_key(jwt.algorithms, jwt.secret, jwt.public_key, jwt.key_set_source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def provider_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as an identity provider's address, or None: https (http
    only to this machine's loopback), no credentials in it, no fragment. The URL itself is
    never echoed (it could hold a password)."""
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port
    except ValueError:  # a bad port or bracket
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not hostname:
        return "is not an https URL"
    if parts.scheme == "http" and not is_loopback(hostname):
        return "must be https (plain http only to 127.0.0.1 or localhost)"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials"
    if parts.fragment:
        return "must not have a fragment"
    return None


def check_auth(auth: AuthConfig, jwt: JWTConfig) -> None:
    if auth.cookie_samesite == "None" and not auth.cookie_secure:
        raise ConfigError("auth.cookie_samesite: None needs auth.cookie_secure: true")
    if len(auth.permission_claims) > MAX_PERMISSION_CLAIMS:
        raise ConfigError(f"auth.permission_claims: at most {MAX_PERMISSION_CLAIMS} claims")
    for claim in auth.permission_claims:
        if not claim or len(claim) > MAX_CLAIM_NAME or not claim.isprintable() or " " in claim:
            raise ConfigError(
                f"auth.permission_claims: {claim[:MAX_CLAIM_NAME]!r} is not a claim name "
                f"(1 to {MAX_CLAIM_NAME} printable characters, no spaces)"
            )
    if auth.require_permissions and not auth.permission_claims:
        raise ConfigError("auth.require_permissions: needs at least one auth.permission_claims")
    if auth.ticket_secret is not None:
        if auth.ticket_secret == jwt.secret:
            raise ConfigError("auth.ticket_secret: must differ from jwt.secret")
        ticket_bytes = HMAC_MIN_SECRET_BYTES["HS256"]  # stream tickets are HS256
        if len(auth.ticket_secret.encode()) < ticket_bytes:
            raise ConfigError(f"auth.ticket_secret: must be at least {ticket_bytes} bytes")


def check_cors(cors: CorsConfig) -> None:
    for origin in cors.allowed_origins:
        parts = urlsplit(origin)
        if origin == "*" or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"cors.allowed_origins: {origin!r} is not an origin like https://app.example "
                "('*' is never allowed: CORS here always allows credentials)"
            )
        if parts.path or parts.query:
            raise ConfigError(f"cors.allowed_origins: {origin!r} must not have a path")


def check_findings(findings: FindingsConfig) -> None:
    if findings.page_size > findings.max_page_size:
        raise ConfigError("findings.page_size: must not exceed findings.max_page_size")


def check_backend(backend: str, database: DatabaseConfig, auth: AuthConfig, jwt: JWTConfig) -> None:
    if backend == "sqlite" and database.path in ("", ":memory:"):
        # SQLite gives each connection its own private database for these, and the store's
        # writer and readers are separate connections: the readers would see no tables.
        raise ConfigError(
            f"database.path: {database.path!r} is not supported: the store needs a file "
            "its writer and readers share (for a throwaway database, a file on a tmpfs)"
        )
    if backend == "redis" and not auth.ticket_secret and not set(jwt.algorithms) <= HMAC_ALGORITHMS:
        raise ConfigError(
            "auth.ticket_secret: required with backend redis and asymmetric JWT algorithms, "
            "so that every replica accepts the stream tickets of the others"
        )


def check_redis(redis: RedisConfig) -> None:
    if redis.sweep_interval_seconds > redis.lease_seconds:
        # Else Redis could be away longer than a lease yet between two sweeps, unnoticed.
        raise ConfigError("redis.sweep_interval_seconds: must not exceed redis.lease_seconds")
    if redis.record_retention_seconds < redis.retention_seconds:
        raise ConfigError("redis.record_retention_seconds: must be at least retention_seconds")
    if urlsplit(redis.url).scheme not in ("redis", "rediss", "unix"):
        # The URL itself may hold a password: never echo it.
        raise ConfigError("redis.url: must be a redis://, rediss:// or unix:// URL")


def check_dev_mode(dev_mode: bool, allow_remote: bool, server: ServerConfig) -> None:
    if dev_mode and not allow_remote and not is_loopback(server.host):
        raise ConfigError(
            f"dev_mode: refused on server.host {server.host!r}, which is not a loopback "
            "address: with dev_mode anyone who can reach the gateway can mint a token for any "
            "subject. Listen on 127.0.0.1, turn dev_mode off, or set dev_mode_allow_remote: true"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) reaches this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a name other than localhost, or "" (every interface)
        return False
