"""Asking an identity provider: its OpenID discovery document and its key set, over bounded
GETs.

The provider is trusted with its keys, not with the gateway's resources: one fetch takes at
most ``jwt.jwks_timeout_seconds`` (redirects included), an answer at most ``jwt.jwks_max_bytes``
(its declared length is checked before reading, the bytes while reading), nothing encoded is
decompressed, response heads are bounded, and a redirect is followed only on the same origin
(at most ``MAX_REDIRECTS``): the gateway asks only addresses its config names, where the key
set discovery names must be on the issuer's origin too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
import msgspec
from yarl import URL

from gateway.config import JWTConfig
from gateway.config.checks import provider_url_problem

__all__ = [
    "DISCOVERY_PATH",
    "MAX_REDIRECTS",
    "Answer",
    "ProviderError",
    "discover",
    "fetch",
    "max_age",
    "provider_session",
]

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_HEAD_LINE: Final = 8190  # the status line and each header, as for scanners
_MAX_HEADERS: Final = 64
_MAX_AGE_DIGITS: Final = 10


class ProviderError(Exception):
    """The provider did not give a usable answer; the message says why (no credential, and
    no URL beyond its path)."""


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    max_age: float | None  # seconds the answer may be reused (Cache-Control), None: not said


class _Discovery(msgspec.Struct):
    issuer: str
    jwks_uri: str


def provider_session(config: JWTConfig) -> aiohttp.ClientSession:
    """The session the key set is fetched with (the app's cleanup context owns it)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=config.jwks_timeout_seconds),
        connector=aiohttp.TCPConnector(limit=4),
        raise_for_status=False,
        auto_decompress=False,  # no gzip bomb: an encoded answer is refused instead
        max_line_size=_MAX_HEAD_LINE,
        max_field_size=_MAX_HEAD_LINE,
        max_headers=_MAX_HEADERS,
        headers={"Accept-Encoding": "identity"},
    )


async def fetch(session: aiohttp.ClientSession, url: str, config: JWTConfig) -> Answer:
    """GET ``url``'s JSON answer within the bounds above; ProviderError if there is none."""
    try:
        async with asyncio.timeout(config.jwks_timeout_seconds):
            return await _follow(session, URL(url), config.jwks_max_bytes)
    except TimeoutError:
        raise ProviderError(
            f"{_shown(url)}: no answer within {config.jwks_timeout_seconds:g} s "
            "(jwt.jwks_timeout_seconds)"
        ) from None
    except aiohttp.ClientError as exc:
        raise ProviderError(f"{_shown(url)}: {type(exc).__name__}") from None


async def discover(session: aiohttp.ClientSession, config: JWTConfig) -> str:
    """The key set's URL, from the discovery document of ``jwt.oidc_issuer``."""
    issuer = config.oidc_issuer
    assert issuer is not None
    url = issuer.rstrip("/") + DISCOVERY_PATH  # OpenID Connect Discovery 1.0, section 4
    answer = await fetch(session, url, config)
    try:
        document = msgspec.json.decode(answer.body, type=_Discovery)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise ProviderError(
            f"{_shown(url)}: not a discovery document (a JSON object with 'issuer' and "
            "'jwks_uri' strings)"
        ) from None
    if document.issuer != issuer:  # section 4.3: it must be exactly the issuer asked
        raise ProviderError(
            f"{_shown(url)}: names the issuer {document.issuer[:200]!r}, not jwt.oidc_issuer"
        )
    problem = provider_url_problem(document.jwks_uri)
    if problem is None and not _same_origin(URL(document.jwks_uri), URL(issuer)):
        problem = "is not on the issuer's origin (set jwt.jwks_url to trust it)"
    if problem is not None:
        raise ProviderError(f"{_shown(url)}: its jwks_uri {problem}")
    return document.jwks_uri


async def _follow(session: aiohttp.ClientSession, url: URL, max_bytes: int) -> Answer:
    for _ in range(MAX_REDIRECTS + 1):
        async with session.get(
            url, allow_redirects=False, headers={"Accept": "application/json"}
        ) as response:
            if response.status in _REDIRECTS:
                url = _redirect(url, response.headers.get("Location", ""))
                continue
            if response.status != 200:
                raise ProviderError(f"{_shown(url)}: answered HTTP {response.status}")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding != "identity":
                raise ProviderError(f"{_shown(url)}: answered with Content-Encoding {encoding}")
            if "json" not in response.content_type:
                raise ProviderError(f"{_shown(url)}: answered {response.content_type[:100]}")
            body = await _read(response, max_bytes, url)
            return Answer(body, max_age(response.headers))
    raise ProviderError(f"{_shown(url)}: more than {MAX_REDIRECTS} redirects")


def _redirect(url: URL, location: str) -> URL:
    """Where a redirect leads, if it stays on ``url``'s origin (scheme, host and port)."""
    try:
        target = url.join(URL(location))
    except ValueError:
        target = URL()
    if not location or not _same_origin(target, url):
        raise ProviderError(
            f"{_shown(url)}: redirected to another origin; redirects are followed on the "
            "same origin only"
        )
    return target


async def _read(response: aiohttp.ClientResponse, max_bytes: int, url: URL) -> bytes:
    too_large = ProviderError(f"{_shown(url)}: answer over {max_bytes} bytes (jwt.jwks_max_bytes)")
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def max_age(headers: Mapping[str, str]) -> float | None:
    """How long an answer may be reused, from its ``Cache-Control`` (``max-age`` less its
    ``Age``; ``no-store``/``no-cache``: 0); None when it does not say."""
    directives = [part.strip().lower() for part in headers.get("Cache-Control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            seconds = _seconds(value.strip().strip('"'))
            if seconds is None:
                return None
            return max(0.0, seconds - (_seconds(headers.get("Age", "0").strip()) or 0))
    return None


def _seconds(text: str) -> float | None:
    """A delta-seconds value (RFC 9111 section 1.2.2), bounded in digits."""
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_AGE_DIGITS:
        return None
    return float(text)


def _same_origin(one: URL, other: URL) -> bool:
    return (one.scheme, one.host, one.port) == (other.scheme, other.host, other.port)


def _shown(url: str | URL) -> str:
    """A URL for a message: scheme, host, port and path (no query, no userinfo)."""
    shown = URL(url) if isinstance(url, str) else url
    try:
        return str(shown.with_query(None).with_fragment(None).with_user(None))[:300]
    except ValueError:  # a relative URL
        return shown.path[:300]
