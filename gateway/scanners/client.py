"""The upstream client: one POST to a scanner, its answer read as a stream of JSON messages.

Scanners answer with SSE (parsed by our own spec-exact parser), NDJSON, or one JSON body; the
response's content type chooses (see ``upstream_messages``). Every fault becomes an
``UpstreamError`` whose message is fit for the scan's ``error`` and for logs: URLs in it lose
their credentials and query values, and control characters are removed. The request is never
repeated once the scanner has answered: one POST, one scan. Redirects are not followed (a
scanner must not make the gateway request, or re-POST a scan to, any other address), and only
an unencoded body is read (no decompression: a small gzip body can inflate without bound).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError, PayloadEncodingError

from gateway.config import UpstreamConfig
from gateway.domain.errors import UpstreamFault
from gateway.domain.text import CONTROLS as _CONTROLS
from gateway.scanners.messages import BodyError, Malformed, read_messages

__all__ = [
    "REQUEST_HEADERS",
    "Malformed",
    "UpstreamError",
    "clean_text",
    "idle_error",
    "redact_url",
    "stream_scan",
]

REQUEST_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
_EXCERPT_BYTES = 300
_EXCERPT_CHARS = 200
_MAX_ERROR = 1000
# A URL as exception texts show one (aiohttp: ``url=URL('http://...')``).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without its userinfo and with every query value (and any fragment) hidden."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<url>"
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if pair else "" for pair in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def clean_text(text: str) -> str:
    """Text built from scanner data or aiohttp's exception texts, fit for an error or a log:
    URLs redacted, control characters removed, one line, bounded."""
    text = _URL.sub(lambda match: redact_url(match.group()), text)
    return " ".join(_CONTROLS.sub(" ", text).split())[:_MAX_ERROR]


class UpstreamError(Exception):
    """The scanner could not be used; ``kind`` names the fault for logs and metrics."""

    def __init__(self, kind: UpstreamFault, message: str) -> None:
        message = clean_text(message)
        super().__init__(message)
        self.kind = kind
        self.message = message


async def stream_scan(
    session: aiohttp.ClientSession,
    scanner: str,
    url: str,
    body: Mapping[str, Any],
    config: UpstreamConfig,
) -> AsyncGenerator[object, None]:
    """POST ``body`` to ``url`` and yield each decoded message (or ``Malformed``)."""
    try:
        async with session.post(
            url, json=body, headers=REQUEST_HEADERS, allow_redirects=False
        ) as response:
            await _check_status(scanner, response)
            _check_encoding(scanner, response)
            chunks = response.content.iter_any()
            async for item in read_messages(response.content_type, chunks, config):
                yield item
    except BodyError as exc:
        raise UpstreamError(exc.kind, f"{scanner} {exc.message}") from None
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamError(
            UpstreamFault.CONNECT, f"cannot connect to {scanner}: {exc.os_error}"
        ) from None
    except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError) as exc:
        if isinstance(exc, aiohttp.SocketTimeoutError):
            raise idle_error(scanner, config.idle_timeout_seconds) from None
        raise UpstreamError(UpstreamFault.CONNECT, f"timed out connecting to {scanner}") from None
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        cause = exc.__cause__
        if isinstance(cause, HttpProcessingError) and not isinstance(cause, PayloadEncodingError):
            # What the parser refused, noticed only as the connection closed (a trailer flood
            # read at end of file): the same fault as when it is noticed while reading.
            text = cause.message[:_EXCERPT_CHARS]
            raise UpstreamError(
                UpstreamFault.PROTOCOL, f"{scanner} sent an invalid HTTP answer: {text}"
            ) from None
        text = str(exc)[:_EXCERPT_CHARS]
        raise UpstreamError(
            UpstreamFault.DROPPED, f"connection to {scanner} was lost: {text}"
        ) from None
    except aiohttp.ClientResponseError as exc:
        # Also what aiohttp's parser refuses (a header too long, a bad chunk size); its text
        # may quote the offending bytes at length, and str(exc) would add the URL.
        text = exc.message[:_EXCERPT_CHARS]
        raise UpstreamError(
            UpstreamFault.PROTOCOL, f"{scanner} sent an invalid HTTP answer: {text}"
        ) from None
    except aiohttp.ClientError as exc:
        text = f"{type(exc).__name__}: {exc}"[:_EXCERPT_CHARS]
        raise UpstreamError(UpstreamFault.HTTP, f"request to {scanner} failed: {text}") from None


def idle_error(scanner: str, seconds: float) -> UpstreamError:
    return UpstreamError(UpstreamFault.IDLE_TIMEOUT, f"{scanner} sent no event for {seconds:g} s")


async def _check_status(scanner: str, response: aiohttp.ClientResponse) -> None:
    if 200 <= response.status < 300:
        return
    message = f"{scanner} answered HTTP {response.status}"
    if 300 <= response.status < 400:
        # Where it points is not said: a Location may carry credentials.
        raise UpstreamError(
            UpstreamFault.REDIRECT, f"{message}, a redirect; redirects are not followed"
        )
    raw = await response.content.read(_EXCERPT_BYTES)
    excerpt = clean_text(raw.decode("utf-8", "replace"))
    raise UpstreamError(UpstreamFault.HTTP_STATUS, f"{message}: {excerpt}" if excerpt else message)


def _check_encoding(scanner: str, response: aiohttp.ClientResponse) -> None:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UpstreamError(
            UpstreamFault.CONTENT_ENCODING,
            f"{scanner} answered with Content-Encoding {encoding[:40]!r}; "
            "the gateway asks for and reads only unencoded bodies",
        )
