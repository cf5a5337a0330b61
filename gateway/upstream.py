"""The upstream client: one POST to a scanner, its answer read as a stream of JSON messages.

Scanners answer with SSE (parsed by our own spec-exact parser), NDJSON, or one JSON body; the
response's content type chooses. Every fault becomes an ``UpstreamError`` whose message is fit
for the scan's ``error``. The request is never repeated once the scanner has answered: one
POST, one scan.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .config import UpstreamConfig
from .sse_parser import SSELineTooLong, iter_sse

__all__ = ["Malformed", "UpstreamError", "idle_error", "stream_scan"]

_NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
        "application/json-lines",
    }
)
_EXCERPT_BYTES = 300


class UpstreamError(Exception):
    """The scanner could not be used; ``kind`` names the fault for logs and metrics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message that was not valid JSON: counted and skipped, never fatal."""

    text: str


def _decode(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return Malformed(text[:200])


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
            url, json=body, headers={"Accept": "text/event-stream"}
        ) as response:
            await _check_status(scanner, response)
            async for item in _messages(scanner, response, config):
                yield item
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamError("connect", f"cannot connect to {scanner}: {exc.os_error}") from None
    except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError) as exc:
        if isinstance(exc, aiohttp.SocketTimeoutError):
            raise idle_error(scanner, config.idle_timeout_seconds) from None
        raise UpstreamError("connect", f"timed out connecting to {scanner}") from None
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise UpstreamError("dropped", f"connection to {scanner} was lost: {exc}") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError("http", f"request to {scanner} failed: {exc}") from None


def idle_error(scanner: str, seconds: float) -> UpstreamError:
    return UpstreamError("idle_timeout", f"{scanner} sent no event for {seconds:g} s")


async def _check_status(scanner: str, response: aiohttp.ClientResponse) -> None:
    if 200 <= response.status < 300:
        return
    raw = await response.content.read(_EXCERPT_BYTES)
    excerpt = " ".join(raw.decode("utf-8", "replace").split())
    message = f"{scanner} answered HTTP {response.status}"
    raise UpstreamError("http_status", f"{message}: {excerpt}" if excerpt else message)


def _messages(
    scanner: str, response: aiohttp.ClientResponse, config: UpstreamConfig
) -> AsyncIterator[object]:
    content_type = response.content_type.lower()
    if content_type == "text/event-stream":
        return _sse_messages(scanner, response, config)
    if content_type in _NDJSON_TYPES:
        return _ndjson_messages(scanner, response, config)
    if content_type == "application/json" or content_type.endswith("+json"):
        return _json_messages(scanner, response, config)
    raise UpstreamError(
        "content_type",
        f"{scanner} answered with unsupported content type {content_type!r} "
        "(expected text/event-stream, NDJSON or JSON)",
    )


async def _sse_messages(
    scanner: str, response: aiohttp.ClientResponse, config: UpstreamConfig
) -> AsyncIterator[object]:
    try:
        async for event in iter_sse(
            response.content.iter_any(), max_line_length=config.max_line_length
        ):
            message = _decode(event.data)
            if event.type == "error" and isinstance(message, Malformed):
                message = {"status": "failed", "error": event.data}
            yield message
    except SSELineTooLong as exc:
        raise UpstreamError("line_too_long", f"{scanner} sent {exc}") from None


async def _ndjson_messages(
    scanner: str, response: aiohttp.ClientResponse, config: UpstreamConfig
) -> AsyncIterator[object]:
    limit = config.max_line_length
    pending = b""
    async for chunk in response.content.iter_any():
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        if max(len(pending), *map(len, lines)) > limit:
            raise UpstreamError(
                "line_too_long", f"{scanner} sent an NDJSON line longer than {limit} bytes"
            )
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text:
                yield _decode(text)
    # A last line without its newline is still a complete JSON document.
    text = pending.decode("utf-8", "replace").strip()
    if text:
        yield _decode(text)


async def _json_messages(
    scanner: str, response: aiohttp.ClientResponse, config: UpstreamConfig
) -> AsyncIterator[object]:
    limit = config.max_body_bytes
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise UpstreamError("too_large", f"{scanner} answered with a body over {limit} bytes")
    message = _decode(body.decode("utf-8", "replace"))
    if isinstance(message, list):
        for item in message:
            yield item
    else:
        yield message
