"""Slow clients: a body dripped a byte at a time, headers that never end."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from tests.helpers import error_shape, token
from tests.processes import free_port, gateway_process, write_config

BODY = b'{"repository_name": "acme/web", "scanner_name": "secret_scanner"}'


def post_head(path: str, length: int, authorization: bool = True) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if authorization:
        lines.append(f"Authorization: Bearer {token()}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def drip_until_answered(port: int, head: bytes, body: bytes) -> bytes:
    """Send the head, then the body a byte at a time (never all of it) until the server
    answers; the answer (head and the body its Content-Length announces).

    (The server closes the connection after aiohttp's lingering read, up to 10 s more in
    which it reads and drops what still comes, so that the client gets the answer.)"""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def drip() -> None:
        for byte in body[:-1]:  # the last byte never comes
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)  # the drip itself, not synchronisation

    dripping = asyncio.create_task(drip())
    try:
        writer.write(head)
        await writer.drain()
        head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        _, headers, _ = parse_answer(head_bytes)
        length = int(headers["content-length"])
        return head_bytes + await asyncio.wait_for(reader.readexactly(length), 30)
    finally:
        dripping.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await dripping
        writer.close()


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("path", ["/api/v1/scans/", "/api/v1/dev/token"])
async def test_a_dripped_body_gets_408_and_the_connection_closes(gateway, path):
    client = await gateway(server={"body_read_timeout_seconds": 0.5}, dev_mode=True)
    port = client.server.port
    assert port is not None
    raw = await drip_until_answered(port, post_head(path, len(BODY)), BODY)
    status, headers, body = parse_answer(raw)
    assert status == 408
    assert headers["connection"] == "close"
    answer = json.loads(body)
    error_shape(answer)
    assert answer["error"] == "request_timeout"
    assert "request body not received within 0.5 s" in answer["message"]
    listed = await client.get("/api/v1/scans/", headers={"Authorization": f"Bearer {token()}"})
    assert (await listed.json())["data"] == [], "nothing was started"


async def test_a_body_sent_in_time_is_read(gateway):
    client = await gateway(server={"body_read_timeout_seconds": 10})
    port = client.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post_head("/api/v1/scans/", len(BODY)))
    for start in range(0, len(BODY), 16):  # in pieces, each written once the last is sent
        writer.write(BODY[start : start + 16])
        await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 30)
    writer.close()
    assert line.split()[1] == b"201"


async def test_headers_that_never_end_are_cut_off(tmp_path):
    port = free_port()
    config_path = write_config(tmp_path, {"server": {"keepalive_timeout_seconds": 1}})
    async with gateway_process(config_path, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        await writer.drain()

        async def drip() -> None:  # a byte every 0.2 s (pacing), never the end of the headers
            with contextlib.suppress(ConnectionError):
                for _ in range(150):
                    writer.write(b"a")
                    await writer.drain()
                    await asyncio.sleep(0.2)

        dripping = asyncio.create_task(drip())
        try:
            # The server closes the connection however the bytes keep coming; past 30 s fails.
            assert await asyncio.wait_for(reader.read(), 30) == b""
        finally:
            dripping.cancel()
            await asyncio.gather(dripping, return_exceptions=True)
            writer.close()
