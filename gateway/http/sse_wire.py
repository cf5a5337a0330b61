"""The SSE wire format: every byte the gateway sends on an event stream is encoded here.

It owns the frames (an event's ``id``/``data``, named events such as ``reset``, the ``retry``
hint, comments and heartbeats), the HTTP/1.1 chunk framing of the bytes the fan-out writes
straight to a client's transport, and the response that carries both: aiohttp writes the
headers and whatever a stream's own task sends, and the fan-out writes live batches past it,
framed as aiohttp frames its own writes, and counted where aiohttp counts its own, so the
access log's ``body_length`` is every byte the client was sent.

The domain (events, the hub) knows nothing of this: a batch of events is encoded here once,
on its first write, and the bytes are shared by every subscriber it goes to.

Checked against the aiohttp versions in ``AIOHTTP_CHECKED`` (tests/gateway/http/test_sse_wire.py
compares the direct framing with aiohttp's own writer and fails on any other version).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11

from gateway.domain.models import Event, compact_json
from gateway.engine.hub import Batch, Written

__all__ = [
    "AIOHTTP_CHECKED",
    "PING",
    "EventStream",
    "batch_encodings",
    "comment",
    "event_frame",
    "events_body",
    "http_chunk",
    "named_frame",
    "retry_field",
]

# The aiohttp versions, [from, to), whose writer this module was checked against: its chunk
# framing, the headers going out with the first write, and ``output_size`` as body_length.
AIOHTTP_CHECKED = ((3, 14), (3, 15))

PING = b": ping\n\n"
# Linux: abort the connection once written data stays unacknowledged this long.
_TCP_USER_TIMEOUT: int | None = getattr(socket, "TCP_USER_TIMEOUT", None)

WROTE, BEHIND, GONE = Written.WROTE, Written.BEHIND, Written.GONE


def event_frame(event: Event) -> bytes:
    """One log event as an SSE message: its sequence number is the id. ``data`` is compact
    JSON, so it holds no line break and fits one ``data:`` line."""
    return f"id: {event.seq}\ndata: {event.data}\n\n".encode()


def events_body(events: Sequence[Event]) -> bytes:
    """Events as the SSE body carries them, one frame after another."""
    return "".join([f"id: {e.seq}\ndata: {e.data}\n\n" for e in events]).encode()


def named_frame(name: str, seq: int | None, data: dict[str, object]) -> bytes:
    """A named event (``reset``, ``auth_expired``) that EventSource's onmessage ignores."""
    head = f"event: {name}\n" + (f"id: {seq}\n" if seq is not None else "")
    return f"{head}data: {compact_json(data)}\n\n".encode()


def comment(text: str) -> bytes:
    """An SSE comment (a line the client ignores), ending its message."""
    return f": {text}\n\n".encode()


def retry_field(retry_ms: int) -> bytes:
    """The ``retry`` field: how long EventSource waits before it reconnects."""
    return b"retry: %d\n" % retry_ms


def http_chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk, as aiohttp's writer frames a write of it."""
    return b"%x\r\n%b\r\n" % (len(data), data)


# Where each framing's bytes sit in a batch's encodings (and in _PINGS).
_PLAIN, _CHUNKED = 0, 1
_PINGS = (PING, http_chunk(PING))


def batch_encodings(batch: Batch) -> tuple[bytes, ...]:
    """The batch's events as a body carries them, plain and as one HTTP/1.1 chunk: encoded on
    the batch's first write and kept on it for every other subscriber it goes to, whichever
    framing their connections use."""
    encoded = batch.encoded
    if encoded is None:
        body = events_body(batch.events)
        encoded = batch.encoded = (body, http_chunk(body))
    return encoded


class EventStream(web.StreamResponse):
    """A ``text/event-stream`` response that the fan-out may also write to directly.

    ``open`` sends the headers (through aiohttp, with the first bytes) before anything is
    written past it. While the client's socket buffer is below ``high_water``, ``try_write``
    and ``heartbeat`` (the hub's sink) write to the transport without waking the stream's
    task; ``send`` goes through aiohttp, with the send timeout.
    """

    def __init__(self, *, send_timeout: float, high_water: int) -> None:
        super().__init__()
        headers = self.headers
        headers["Content-Type"] = "text/event-stream"
        headers["Cache-Control"] = "no-cache"
        headers["Connection"] = "keep-alive"
        headers["X-Accel-Buffering"] = "no"  # nginx: pass each write on at once
        self.send_timeout = send_timeout
        self.high_water = high_water
        self.transport: asyncio.Transport | None = None  # set once the headers are out
        self._writer: AbstractStreamWriter | None = None
        self._direct = 0  # bytes written straight to the transport
        self._framing = _PLAIN  # _CHUNKED once aiohttp frames this response's body as chunks
        self._sock: socket.socket | None = None
        self._saved_user_timeout: int | None = None

    async def open(self, request: web.Request, first: bytes) -> None:
        """Send the headers and ``first``; from then on the fan-out may write directly."""
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ("GET",))
        self._set_user_timeout(request)
        if request.version >= HttpVersion11:
            self.enable_chunked_encoding()  # else the body simply runs to the connection's end
        self._writer = await self.prepare(request)
        self._framing = _CHUNKED if self.chunked else _PLAIN
        # Through aiohttp: the headers go out with (or before) these bytes.
        await self.send(first)
        self.transport = request.transport

    async def send(self, data: bytes) -> None:
        """Write through aiohttp: it waits while the client's buffer is full, up to the send
        timeout (TimeoutError)."""
        async with asyncio.timeout(self.send_timeout):
            await self.write(data)

    async def send_events(self, events: Sequence[Event]) -> None:
        await self.send(events_body(events))

    def try_write(self, batch: Batch) -> Written:
        """The hub's sink: write the whole batch now if the client keeps up."""
        transport = self.transport  # called per subscriber per batch: kept lean
        if transport is None or transport.is_closing():
            return GONE
        if transport.get_write_buffer_size() >= self.high_water:
            return BEHIND
        data = (batch.encoded or batch_encodings(batch))[self._framing]
        transport.write(data)
        self._direct += len(data)
        return WROTE

    def heartbeat(self) -> bool:
        """The hub's sink: a ping comment unless the client is behind; False once it has gone
        away."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() < self.high_water:
            data = _PINGS[self._framing]
            transport.write(data)
            self._direct += len(data)
        return True

    @property
    def body_length(self) -> int:
        """Every byte handed to the transport: headers, aiohttp's writes and its chunk framing,
        and the direct writes."""
        if self._writer is None:
            return super().body_length
        return self._writer.output_size + self._direct

    async def write_eof(self, data: bytes = b"") -> None:
        try:
            await super().write_eof(data)
        finally:
            self._restore_user_timeout()

    def _set_user_timeout(self, request: web.Request) -> None:
        """Let the kernel abort the connection once written data stays unacknowledged for the
        send timeout: a hung peer is noticed at the next heartbeat, however little the stream
        writes."""
        transport = request.transport
        if _TCP_USER_TIMEOUT is None or transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        self._saved_user_timeout = sock.getsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT)
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, int(self.send_timeout * 1000))

    def _restore_user_timeout(self) -> None:
        """The connection may carry other requests after this one: their usual timeout."""
        sock, saved = self._sock, self._saved_user_timeout
        self._sock = self._saved_user_timeout = None
        if sock is None or saved is None or _TCP_USER_TIMEOUT is None:
            return
        if sock.fileno() >= 0:  # not once the socket is closed
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, saved)
