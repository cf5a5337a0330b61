"""Serving and stopping, with real ``python -m gateway`` processes and signals: SIGTERM drains
(not ready at once, no new scan, running scans end on their own, streams served to the end on
SQLite), the drain's deadline interrupts what still runs once, a second SIGTERM or SIGINT stops
at once, and a signal while the gateway starts. Replicas on Redis: test_serving_replicas.py."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from gateway.scanners.sse_parser import SSEParser
from tests.gateway.test_replicas import (
    Log,
    Replica,
    gap_free,
    get_json,
    messages,
    open_stream,
    read_rest,
    read_until,
    statuses,
    terminal_count,
)
from tests.helpers import auth, merge
from tests.processes import ProcessLog, free_port, gateway_process, write_config
from tests.redis_server import RedisServer, running_redis

DEADLINE = 30.0  # seconds: the bound on anything a test waits for
INTERRUPTED = "interrupted: gateway shutting down"
FAREWELL = re.compile(rb"retry: (\d+)\n: gateway shutting down; reconnect to resume\n\n\Z")
BENCH = {"bench": True}  # the mock scanner's bench mode: the scan runs until the test ends it


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


def gateway_config(tmp_path: Path, scanner: TestServer, **overrides: Any) -> Path:
    base = {
        "scanners": {"secret_scanner": str(scanner.make_url("/scanners/secret_scanner/scan"))},
        "stream": {"retry_ms": 2500, "reconnect_spread_ms": 1000},
        "limits": {"retry_after_seconds": 4},
    }
    return write_config(tmp_path, merge(base, overrides))


async def start_scan(http: ClientSession, gateway: Replica, configurations: dict[str, Any]) -> str:
    body = {
        "repository_name": "acme/web",
        "scanner_name": "secret_scanner",
        "configurations": configurations,
    }
    async with http.post(f"{gateway.scans}/?use_sse=true", json=body, headers=auth()) as response:
        assert response.status == 201, await response.text()
        scan_id: str = (await response.json())["data"]["scan_id"]
    return scan_id


async def bench(http: ClientSession, scanner: TestServer, scan_id: str, action: str, **body: Any):
    """Drive a bench-mode scan: ``publish`` an event, or ``finish`` it (completed)."""
    url = scanner.make_url(f"/bench/{scan_id}/{action}")
    async with http.post(url, json=body if action == "publish" else None) as response:
        assert response.status == 204, await response.text()


def stored(db: Path, scan_id: str) -> tuple[tuple[str, str | None], Log]:
    """The scan's (status, error) and its log, from the SQLite file of a stopped gateway."""
    with sqlite3.connect(db) as conn:
        record = conn.execute("SELECT status, error FROM scans WHERE scan_id = ?", (scan_id,))
        rows = conn.execute(
            "SELECT seq, data FROM scan_events WHERE scan_id = ? ORDER BY seq", (scan_id,)
        )
        return record.fetchone(), [(seq, data) for seq, data in rows.fetchall()]


async def test_sigterm_lets_a_running_scan_end_and_serves_its_streams_meanwhile(
    tmp_path: Path, scanner: TestServer, http: ClientSession
) -> None:
    port, log = free_port(), ProcessLog()
    config = gateway_config(tmp_path, scanner)
    async with gateway_process(config, port, log) as process:
        gateway = Replica(port, process, log)
        scan_id = await start_scan(http, gateway, BENCH)
        async with await open_stream(http, gateway, scan_id) as first:
            parser = SSEParser()
            seen = await read_until(first, parser, lambda got: "scanning" in statuses(got))
            process.send_signal(signal.SIGTERM)
            await log.line("draining: 1 running")

            status, ready = await get_json(http, f"{gateway.url}/readyz")
            assert (status, ready["error"], list(ready["data"]["checks"])) == (
                503,
                "not_ready",
                ["drain"],
            )
            body = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}
            async with http.post(f"{gateway.scans}/", json=body, headers=auth()) as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "4"
                assert (await refused.json())["error"] == "draining"

            # SQLite: nowhere else to go, so the open stream is served live, and a new one too.
            await bench(http, scanner, scan_id, "publish", progress_percent=50, message="half")
            seen += await read_until(first, parser, lambda got: len(got) == 1)
            assert json.loads(seen[-1][1])["progress_text"] == "half"
            async with await open_stream(http, gateway, scan_id, seen[1][0]) as second:
                later = SSEParser()
                rest = await read_until(second, later, lambda got: got[-1:] == seen[-1:])
                assert rest == seen[2:], "resumed exactly after the id it sent"

                await bench(http, scanner, scan_id, "finish")
                seen += await read_rest(first, parser)
                rest += await read_rest(second, later)
            assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
    assert statuses(seen)[-1] == "completed"
    assert rest == seen[2:]
    record, events = stored(tmp_path / "gateway.db", scan_id)
    assert record == ("completed", None)
    assert events == seen and gap_free(events) and terminal_count(events) == 1
    assert log.index_of("draining: 1 running") < log.index_of("drained in")
    assert not any("Traceback" in line for line in log), "".join(log)


async def test_a_drain_with_nothing_running_is_over_at_once(
    tmp_path: Path, scanner: TestServer
) -> None:
    port, log = free_port(), ProcessLog()
    async with gateway_process(gateway_config(tmp_path, scanner), port, log) as process:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert log.index_of("draining: 0 running") < log.index_of("drained in 0.0 s")


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {}
        return
    async with running_redis(tmp_path / "redis") as server:
        yield {"backend": "redis", "redis": {"url": server.url}}


async def stored_anywhere(
    backend: dict[str, Any], tmp_path: Path, scan_id: str
) -> tuple[tuple[str, str | None], Log]:
    if not backend:
        return stored(tmp_path / "gateway.db", scan_id)
    from redis.asyncio import Redis

    from tests.gateway.test_replicas import stored_log

    client = Redis.from_url(backend["redis"]["url"])
    try:
        events = await stored_log(client, scan_id)
    finally:
        await client.aclose()
    last = json.loads(events[-1][1])
    return (last["status"], last["error"]), events


async def test_at_the_drain_deadline_a_scan_that_never_ends_is_interrupted_once(
    tmp_path: Path, scanner: TestServer, http: ClientSession, backend: dict[str, Any]
) -> None:
    port, log = free_port(), ProcessLog()
    config = gateway_config(tmp_path, scanner, server={"drain_seconds": 1}, **backend)
    async with gateway_process(config, port, log) as process:
        gateway = Replica(port, process, log)
        scan_id = await start_scan(http, gateway, {"stall_at": 30, "heartbeat": 0.2})
        async with await open_stream(http, gateway, scan_id) as response:
            parser = SSEParser()
            seen = await read_until(response, parser, lambda got: len(got) >= 3)
            process.send_signal(signal.SIGTERM)
            tail = await response.content.read()
        assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
    # Told to reconnect: at once with Redis (another replica serves it), at the deadline with
    # SQLite; the spread retry either way. It then reads the interruption from the log.
    farewell = FAREWELL.search(tail)
    assert farewell is not None, tail
    assert 2500 <= int(farewell[1]) <= 3500
    seen += messages(parser.feed(tail[: farewell.start()]))
    drained = log[log.index_of("drain over after")]
    took = float(re.search(r"after (\d+\.\d) s", drained)[1])  # type: ignore[index]
    assert 1.0 <= took < 5.0, drained
    assert "1 still running end interrupted" in drained
    record, events = await stored_anywhere(backend, tmp_path, scan_id)
    assert record == ("failed", INTERRUPTED)
    assert gap_free(events) and terminal_count(events) == 1
    assert seen == events[: len(seen)], "what the stream sent is the stored log"
    assert not any("Traceback" in line for line in log), "".join(log)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_second_signal_stops_the_drain_at_once(
    tmp_path: Path, scanner: TestServer, http: ClientSession, second: signal.Signals
) -> None:
    port, log = free_port(), ProcessLog()
    config = gateway_config(tmp_path, scanner, server={"drain_seconds": 3600})
    async with gateway_process(config, port, log) as process:
        gateway = Replica(port, process, log)
        scan_id = await start_scan(http, gateway, BENCH)
        async with await open_stream(http, gateway, scan_id) as response:
            parser = SSEParser()
            await read_until(response, parser, lambda got: "scanning" in statuses(got))
            process.send_signal(signal.SIGTERM)
            await log.line("draining: 1 running")
            process.send_signal(second)
            await read_rest(response, parser)
            assert parser.retry is not None and 2500 <= parser.retry <= 3500
        assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
    assert log.index_of(f"{second.name}: stopping at once") > log.index_of("draining: 1")
    record, events = stored(tmp_path / "gateway.db", scan_id)
    assert record == ("failed", INTERRUPTED)
    assert gap_free(events) and terminal_count(events) == 1
    assert not any("drained in" in line or "drain over" in line for line in log)


class Gate:
    """A TCP proxy in front of Redis that holds every connection until ``open()``: a gateway
    on Redis cannot finish starting (its store's first PING) while the gate is shut."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.connected = asyncio.Event()  # a client is held
        self.dropped = asyncio.Event()  # a held client closed its connection
        self._open = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def open(self) -> None:
        self._open.set()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for handler in self._handlers:  # their gateway has exited: each ends on its own
            await asyncio.wait_for(handler, DEADLINE)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        self.connected.set()
        held = b""
        opened = asyncio.ensure_future(self._open.wait())
        while not opened.done():
            read = asyncio.ensure_future(reader.read(65536))
            await asyncio.wait([read, opened], return_when=asyncio.FIRST_COMPLETED)
            if not read.done():
                read.cancel()  # what arrives stays in the reader for the pipe below
                break
            if not read.result():
                self.dropped.set()
                opened.cancel()
                writer.close()
                return
            held += read.result()
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        upstream_writer.write(held)
        async with asyncio.TaskGroup() as pipes:
            pipes.create_task(_pipe(reader, upstream_writer))
            pipes.create_task(_pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def gate(redis_server: RedisServer) -> AsyncIterator[Gate]:
    gate = Gate(redis_server.port)
    await gate.start()
    yield gate
    await gate.close()


async def test_sigterm_while_starting_drains_once_the_gateway_listens(
    tmp_path: Path, scanner: TestServer, gate: Gate
) -> None:
    port, log = free_port(), ProcessLog()
    redis = {"backend": "redis", "redis": {"url": f"redis://127.0.0.1:{gate.port}/0"}}
    config = gateway_config(tmp_path, scanner, **redis)
    async with gateway_process(config, port, log, listening=False) as process:
        await asyncio.wait_for(gate.connected.wait(), DEADLINE)  # its store is opening
        process.send_signal(signal.SIGTERM)
        await log.line("SIGTERM: draining")
        gate.open()
        assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
    order = ["SIGTERM: draining", "Running on", "draining: 0 running", "drained in"]
    assert [log.index_of(text) for text in order] == sorted(log.index_of(t) for t in order)
    assert not any("Traceback" in line for line in log), "".join(log)


async def test_sigint_while_starting_stops_the_start(
    tmp_path: Path, scanner: TestServer, gate: Gate
) -> None:
    port, log = free_port(), ProcessLog()
    redis = {"backend": "redis", "redis": {"url": f"redis://127.0.0.1:{gate.port}/0"}}
    config = gateway_config(tmp_path, scanner, **redis)
    async with gateway_process(config, port, log, listening=False) as process:
        await asyncio.wait_for(gate.connected.wait(), DEADLINE)
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
        # It let go of its half-opened store, and never listened.
        await asyncio.wait_for(gate.dropped.wait(), DEADLINE)
    assert "SIGINT: stopping at once" in "".join(log)
    assert not any("Running on" in line or "Traceback" in line for line in log), "".join(log)
