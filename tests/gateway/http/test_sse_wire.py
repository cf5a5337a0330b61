"""The SSE wire module: its frames, its chunk framing pinned to the installed aiohttp's own
writer, and an access log that counts every byte a stream's client received."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib.metadata import version
from typing import Any

import pytest
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11
from aiohttp.http_writer import StreamWriter
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.domain.models import Event, compact_json
from gateway.engine.hub import Batch, Subscription
from gateway.http.appkeys import RUNNER
from gateway.http.sse_wire import (
    AIOHTTP_CHECKED,
    PING,
    EventStream,
    batch_encodings,
    comment,
    event_frame,
    events_body,
    http_chunk,
    named_frame,
    retry_field,
)
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import auth, start_scan

ACCESS_LINE = re.compile(r'"GET \S+ HTTP/1\.[01]" (\d{3}) (\d+) ')


def event(seq: int, data: dict[str, Any] | None = None) -> Event:
    return Event("s", seq, compact_json(data or {"n": seq}), False)


def test_installed_aiohttp_is_a_version_the_module_was_checked_against():
    """An aiohttp upgrade fails here: re-check the pins below, then widen AIOHTTP_CHECKED."""
    installed = tuple(int(part) for part in version("aiohttp").split(".")[:2])
    low, high = AIOHTTP_CHECKED
    assert low <= installed < high, f"aiohttp {version('aiohttp')} not in {AIOHTTP_CHECKED}"


def test_frames():
    assert event_frame(event(7, {"a": "é"})) == 'id: 7\ndata: {"a":"é"}\n\n'.encode()
    events = [event(1), event(2), event(3)]
    assert events_body(events) == b"".join(event_frame(e) for e in events)
    assert named_frame("reset", 4, {"x": 1}) == b'event: reset\nid: 4\ndata: {"x":1}\n\n'
    assert named_frame("auth_expired", None, {}) == b"event: auth_expired\ndata: {}\n\n"
    assert comment("bye") == b": bye\n\n"
    assert retry_field(3000) == b"retry: 3000\n"
    assert PING == b": ping\n\n"
    assert list(SSEParser().feed(events_body(events)))[2].id == "3"


class _ClientTransport:
    """A client's socket as the fan-out sees it: keeps up, and keeps every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def _open_stream(version: HttpVersion) -> tuple[EventStream, _ClientTransport]:
    transport = _ClientTransport()
    request = make_mocked_request("GET", "/stream", version=version, transport=transport)
    response = EventStream(send_timeout=5, high_water=65536)
    await response.open(request, retry_field(3000) + b"\n")  # through aiohttp's writer
    return response, transport


async def test_a_batch_is_encoded_once_and_written_once_to_each_subscriber():
    """However many subscribers, and whichever framing their connections have (HTTP/1.1
    chunks, or an HTTP/1.0 body that runs to the connection's end), a batch is encoded once per
    framing and each subscriber's transport gets it in one write."""
    streams = [await _open_stream(version) for version in (HttpVersion11, HttpVersion10) * 3]
    batch = Batch([event(1), event(2)])
    for response, _ in streams:
        subscription = Subscription("s", limit=10)
        assert subscription.follow(response)
        assert subscription.offer(batch)
        assert subscription.last == 2
    body = events_body(batch.events)
    assert batch_encodings(batch) == (body, http_chunk(body))
    for chunked, expected in ((True, http_chunk(body)), (False, body)):
        writes = [sent.writes for response, sent in streams if response.chunked is chunked]
        assert len(writes) == 3
        assert all(len(written) == 1 for written in writes), "one write per subscriber"
        first = writes[0][0]
        assert first == expected
        assert all(written[0] is first for written in writes), "encoded once, shared by all"


class _Transport:
    """What aiohttp's writer hands to the socket."""

    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.sent += chunk

    def is_closing(self) -> bool:
        return False


class _Protocol:
    def __init__(self) -> None:
        self.transport = _Transport()


@pytest.mark.parametrize("size", [1, 150, 4096, 70_000])
async def test_direct_chunks_are_framed_as_aiohttp_frames_its_own_writes(size):
    """What a direct write puts on the wire is what aiohttp's writer would have, its
    ``output_size`` (the access log's body_length) counts every byte, and its headers go out
    with the first write, so a direct write after it never comes before them."""
    protocol = _Protocol()
    writer = StreamWriter(protocol, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.enable_chunking()
    await writer.write_headers("HTTP/1.1 200 OK", CIMultiDict({"Content-Type": "x"}))
    first = retry_field(3000) + b"\n"
    await writer.write(first, drain=False)
    head, blank, body = bytes(protocol.transport.sent).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and blank, "headers sent with the first write"
    assert body == http_chunk(first)
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    before = len(protocol.transport.sent)
    await writer.write(payload, drain=False)
    assert bytes(protocol.transport.sent[before:]) == http_chunk(payload)
    assert writer.output_size == len(protocol.transport.sent)

    plain = _Protocol()  # HTTP/1.0: no chunk framing, the bytes as they are
    writer = StreamWriter(plain, asyncio.get_running_loop())  # type: ignore[arg-type]
    await writer.write_headers("HTTP/1.0 200 OK", CIMultiDict())
    await writer.write(first, drain=False)
    before = len(plain.transport.sent)
    await writer.write(payload, drain=False)
    assert bytes(plain.transport.sent[before:]) == payload
    assert writer.output_size == len(plain.transport.sent)


async def _read_stream(client: Any, scan_id: str, http: str) -> bytes:
    """A raw client's stream of ``scan_id``: every byte it receives up to the server's close.
    Once a heartbeat (written straight to the transport) arrived, the scan is cancelled, so
    its end goes out live too."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    headers = "".join(f"{k}: {v}\r\n" for k, v in {"Host": "127.0.0.1", **auth()}.items())
    request = f"GET /api/v1/scans/{scan_id}/stream HTTP/{http}\r\n{headers}Connection: close\r\n"
    writer.write(f"{request}\r\n".encode())
    received = b""
    try:
        async with asyncio.timeout(30):
            while b": ping" not in received:
                chunk = await reader.read(65536)
                assert chunk, received
                received += chunk
            await client.app[RUNNER].cancel(scan_id)
            received += await reader.read()  # up to the server's close
    finally:
        writer.close()
        await writer.wait_closed()
    return received


@pytest.mark.parametrize("http", ["1.1", "1.0"])
async def test_access_log_counts_every_byte_a_stream_sent(gateway, caplog, http):
    client = await gateway(stream={"heartbeat_seconds": 0.05}, mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    received = await _read_stream(client, scan_id, http)
    head, _, body = received.partition(b"\r\n\r\n")
    assert (b"transfer-encoding: chunked" in head.lower()) is (http == "1.1")
    assert b'"status":"cancelled"' in body and b": ping" in body
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    lengths = [
        m.groups() for line in lines if (m := ACCESS_LINE.search(line)) and "/stream" in line
    ]
    assert lengths == [("200", str(len(received)))], lines
