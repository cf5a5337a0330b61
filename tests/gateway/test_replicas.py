"""Gateway replicas sharing one Redis, each a real ``python -m gateway`` process: any replica
streams, resumes, reads and cancels any scan with the same ids; a replica killed outright or a
Redis restart leaves every log whole, with exactly one terminal event."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.scanners.sse_parser import SSEEvent, SSEParser
from mock_scanner.app import scan_finished
from tests.helpers import auth, merge
from tests.processes import ProcessLog, free_port, gateway_process, write_config
from tests.redis_server import RedisServer

LEASE = 1.0  # redis.lease_seconds
SWEEP = 0.2  # redis.sweep_interval_seconds
STORE_RETRY = 15.0  # redis.store_retry_seconds: far longer than any outage below
RETRY_MS = 50  # stream.retry_ms: how soon a client told to reconnect does
MARGIN = 5.0  # seconds on top of what the README promises, for a loaded 2-core machine
DEADLINE = 20.0  # seconds: the bound on anything a test waits for
LONG_SCAN = {"step_delay": 0.05, "steps": 400}  # runs ~20 s: ends only when a test ends it
REPLICA_LOST = "interrupted: replica lost"
UNAVAILABLE = b": the event store does not answer"

Log = list[tuple[int, str]]  # (id, data) of each event, in order


@dataclass
class Replica:
    port: int
    process: asyncio.subprocess.Process
    log: ProcessLog  # its stderr lines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def scans(self) -> str:
        return f"{self.url}/api/v1/scans"


StartReplicas = Callable[..., Awaitable[list[Replica]]]


@pytest.fixture
async def replicas(
    tmp_path: Path, scanner: TestServer, redis_server: RedisServer
) -> AsyncIterator[StartReplicas]:
    """Start ``count`` replicas on the test's Redis (config overrides as keyword arguments);
    all are killed at the end."""
    async with AsyncExitStack() as stack:
        calls = 0

        async def start(count: int, **overrides: Any) -> list[Replica]:
            nonlocal calls
            calls += 1
            directory = tmp_path / f"replicas{calls}"
            directory.mkdir()
            base = {
                "backend": "redis",
                "redis": {
                    "url": redis_server.url,
                    "lease_seconds": LEASE,
                    "sweep_interval_seconds": SWEEP,
                    "store_retry_seconds": STORE_RETRY,
                },
                "scanners": {
                    "secret_scanner": str(scanner.make_url("/scanners/secret_scanner/scan"))
                },
                "stream": {"retry_ms": RETRY_MS},
            }
            config = write_config(directory, merge(base, overrides))

            async def one() -> Replica:
                port, log = free_port(), ProcessLog()
                process = await stack.enter_async_context(gateway_process(config, port, log))
                return Replica(port, process, log)

            async with asyncio.TaskGroup() as group:
                started = [group.create_task(one()) for _ in range(count)]
            return [task.result() for task in started]

        yield start


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain Redis client, to read what the replicas stored."""
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


async def stored_log(raw: Redis, scan_id: str) -> Log:
    """The scan's log as Redis holds it (the stream ``log:{id}``, entry ids ``{seq}-0``)."""
    entries = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]", await raw.xrange(f"xployt:log:{scan_id}")
    )
    return [(int(entry_id.split(b"-")[0]), fields[b"d"].decode()) for entry_id, fields in entries]


def statuses(log: Log) -> list[str]:
    return [json.loads(data)["status"] for _, data in log]


def terminal_count(log: Log) -> int:
    return sum(status in ("completed", "failed", "cancelled") for status in statuses(log))


def gap_free(log: Log) -> bool:
    return [seq for seq, _ in log] == list(range(1, len(log) + 1))


async def start_scan(http: ClientSession, replica: Replica, configurations: dict[str, Any]) -> str:
    body = {
        "repository_name": "acme/web",
        "scanner_name": "secret_scanner",
        "configurations": configurations,
    }
    async with http.post(f"{replica.scans}/?use_sse=true", json=body, headers=auth()) as response:
        assert response.status == 201, await response.text()
        scan_id: str = (await response.json())["data"]["scan_id"]
    return scan_id


async def get_json(http: ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url, headers=auth()) as response:
        return response.status, await response.json()


async def open_stream(
    http: ClientSession, replica: Replica, scan_id: str, last: int = 0
) -> ClientResponse:
    """A stream request as EventSource sends it (``Last-Event-ID`` once it holds an id)."""
    headers = {**auth(), "Accept": "text/event-stream"}
    if last:
        headers["Last-Event-ID"] = str(last)
    return await http.get(f"{replica.scans}/{scan_id}/stream", headers=headers)


def messages(events: list[SSEEvent]) -> Log:
    assert all(event.type == "message" for event in events), [e.type for e in events]
    return [(int(event.id), event.data) for event in events]


async def read_until(
    response: ClientResponse, parser: SSEParser, done: Callable[[Log], bool]
) -> Log:
    """Read events until ``done(events so far)``; the stream must not end before."""
    events: Log = []
    while not done(events):
        chunk = await response.content.readany()
        assert chunk, f"the stream ended after {events}"
        events += messages(parser.feed(chunk))
    return events


async def read_rest(response: ClientResponse, parser: SSEParser) -> Log:
    """Every event until the server ends the response."""
    events: Log = []
    async for chunk in response.content.iter_any():
        events += messages(parser.feed(chunk))
    return events + messages(parser.close())


async def read_whole(http: ClientSession, replica: Replica, scan_id: str) -> Log:
    async with await open_stream(http, replica, scan_id) as response:
        assert response.status == 200
        return await read_rest(response, SSEParser())


async def posts_received(http: ClientSession, scanner: TestServer, scan_id: str) -> int:
    async with http.get(scanner.make_url("/requests")) as response:
        return sum(entry["scan_id"] == scan_id for entry in await response.json())


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` (for what cannot be awaited, such as another process's state)."""
    deadline = time.monotonic() + DEADLINE
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


async def running_scans(http: ClientSession, replica: Replica) -> int:
    async with http.get(f"{replica.url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("xployt_running_scans "):
                return int(float(line.split()[1]))
    raise AssertionError("no xployt_running_scans in /metrics")


async def test_any_replica_streams_reads_and_cancels_a_scan_running_on_another(
    replicas: StartReplicas, http: ClientSession, raw: Redis, scanner: TestServer
) -> None:
    a, b, c = await replicas(3)
    scan_id = await start_scan(http, a, {"step_delay": 0.05, "steps": 40})

    # B streams it while it runs on A: C sees it running meanwhile.
    async with await open_stream(http, b, scan_id) as response:
        assert response.status == 200
        parser = SSEParser()
        live = await read_until(response, parser, lambda log: "scanning" in statuses(log))
        status, body = await get_json(http, f"{c.scans}/{scan_id}")
        assert status == 200
        assert body["data"]["status"] == "scanning"
        live += await read_rest(response, parser)

    stored = await stored_log(raw, scan_id)
    assert gap_free(stored)
    assert statuses(stored)[-1] == "completed"
    assert terminal_count(stored) == 1
    assert live == stored
    for replica in (a, b, c):
        assert await read_whole(http, replica, scan_id) == stored

    views = [await get_json(http, f"{replica.scans}/{scan_id}") for replica in (a, b, c)]
    assert all(status == 200 for status, _ in views)
    assert views[0][1]["data"] == views[1][1]["data"] == views[2][1]["data"]
    assert views[0][1]["data"]["last_event_id"] == len(stored)
    results = [await get_json(http, f"{replica.scans}/{scan_id}/results") for replica in (a, b, c)]
    assert all(status == 200 for status, _ in results)
    assert results[0][1]["data"] == results[1][1]["data"] == results[2][1]["data"]
    assert results[0][1]["data"]["vulnerabilities"]

    # A DELETE on C ends a scan running on A; A closes its upstream request and stops.
    running = await start_scan(http, a, LONG_SCAN)
    async with await open_stream(http, b, running) as response:
        parser = SSEParser()
        seen = await read_until(response, parser, lambda log: "scanning" in statuses(log))
        async with http.delete(f"{c.scans}/{running}", headers=auth()) as deleted:
            assert deleted.status == 200, await deleted.text()
            assert (await deleted.json())["data"]["status"] == "cancelled"
        seen += await read_rest(response, parser)
    await asyncio.wait_for(scan_finished(scanner.app, running).wait(), DEADLINE)

    async def a_runs_nothing() -> bool:
        return await running_scans(http, a) == 0

    await until(a_runs_nothing, "A's scan task has ended")
    stored = await stored_log(raw, running)
    assert gap_free(stored)
    assert statuses(stored)[-1] == "cancelled"
    assert terminal_count(stored) == 1
    assert seen == stored
    assert await posts_received(http, scanner, running) == 1
    status, body = await get_json(http, f"{a.scans}/{running}")
    assert (status, body["data"]["status"]) == (200, "cancelled")
    assert not any("Traceback" in line for r in (a, b, c) for line in r.log)


async def test_a_killed_replica_s_scan_is_failed_once_by_the_survivors(
    replicas: StartReplicas, http: ClientSession, raw: Redis, scanner: TestServer
) -> None:
    owner, b, c = await replicas(3)
    scan_id = await start_scan(http, owner, LONG_SCAN)
    async with await open_stream(http, b, scan_id) as response:
        parser = SSEParser()
        seen = await read_until(response, parser, lambda log: "scanning" in statuses(log))
        owner.process.kill()
        await owner.process.wait()
        # The README: within lease_seconds plus one sweep_interval_seconds.
        async with asyncio.timeout(LEASE + SWEEP + MARGIN):
            seen += await read_rest(response, parser)

    final = json.loads(seen[-1][1])
    assert final["status"] == "failed"
    assert final["error"] == REPLICA_LOST
    stored = await stored_log(raw, scan_id)
    assert gap_free(stored)
    assert terminal_count(stored) == 1
    assert seen == stored
    # Nothing left for a later sweep to end again, and the scan was never started again.
    assert not await raw.sismember("xployt:running", scan_id)
    assert not await raw.exists(f"xployt:lease:{scan_id}")
    assert await posts_received(http, scanner, scan_id) == 1
    for survivor in (b, c):
        _, body = await get_json(http, f"{survivor.scans}/{scan_id}")
        assert (body["data"]["status"], body["data"]["error"]) == ("failed", REPLICA_LOST)
        assert await read_whole(http, survivor, scan_id) == stored

    def sweeps() -> list[str]:
        return [line for r in (b, c) for line in r.log if REPLICA_LOST in line]

    async def logged() -> bool:
        return bool(sweeps())

    await until(logged, "a survivor logs its sweep")
    assert len(sweeps()) == 1, sweeps()


@dataclass
class Follower:
    """A client following a scan as EventSource does: it reconnects with ``Last-Event-ID``
    whenever its stream ends, after the ``retry:`` delay the server asked for, until 204."""

    http: ClientSession
    replica: Replica
    scan_id: str
    events: Log = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # each response's whole body
    started: asyncio.Event = field(default_factory=asyncio.Event)  # it holds a few events
    # Set once a response said the store does not answer.
    told_unavailable: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        last = 0
        while True:
            async with await open_stream(self.http, self.replica, self.scan_id, last) as response:
                if response.status == 204:
                    return
                assert response.status == 200, await response.text()
                parser, body = SSEParser(), b""
                async for chunk in response.content.iter_any():
                    body += chunk
                    self.events += messages(parser.feed(chunk))
                    if len(self.events) >= 3:
                        self.started.set()
                self.events += messages(parser.close())
            self.bodies.append(body)
            if self.events:
                last = self.events[-1][0]
            if UNAVAILABLE in body:
                self.told_unavailable.set()
            assert parser.retry is not None
            await asyncio.sleep(parser.retry / 1000)  # EventSource's reconnection delay


async def test_a_redis_restart_mid_scan_loses_nothing(
    replicas: StartReplicas,
    http: ClientSession,
    raw: Redis,
    scanner: TestServer,
    redis_server: RedisServer,
) -> None:
    # Leases outlast this outage (the next test has one that outlasts them).
    owner, b = await replicas(2, redis={"lease_seconds": 5})
    scan_id = await start_scan(http, owner, {"step_delay": 0.05, "steps": 60})
    follower = Follower(http, b, scan_id)
    following = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.started.wait(), DEADLINE)
        await redis_server.stop()

        for replica in (owner, b):
            status, ready = await get_json(http, f"{replica.url}/readyz")
            assert status == 503
            assert ready["error"] == "not_ready"
            assert ready["data"]["checks"]["store"].startswith("the store (Redis) does not answer")
        body_json = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}
        async with http.post(f"{b.scans}/?use_sse=true", json=body_json, headers=auth()) as post:
            assert post.status == 503
            assert (await post.json())["error"] == "store_unavailable"
        async with await open_stream(http, b, scan_id, 1) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            told = await response.read()
        told_to_reconnect = (
            f"retry: {RETRY_MS}\n".encode() + UNAVAILABLE + b"; reconnect to resume\n\n"
        )
        assert told == told_to_reconnect
        # A client that is not an EventSource gets the plain error.
        status, refused = await get_json(http, f"{b.scans}/{scan_id}/stream")
        assert (status, refused["error"]) == (503, "store_unavailable")
        # The follower's stream, open since the start, was told to reconnect and ended.
        await asyncio.wait_for(follower.told_unavailable.wait(), DEADLINE)
        assert follower.bodies[0].endswith(told_to_reconnect)

        await redis_server.start()
        await asyncio.wait_for(following, DEADLINE)
    finally:
        following.cancel()

    await completed_whole(http, raw, scanner, follower)
    for replica in (owner, b):
        status, _ = await get_json(http, f"{replica.url}/readyz")
        assert status == 200


async def test_a_redis_outage_longer_than_the_lease_still_lets_the_scan_finish(
    replicas: StartReplicas,
    http: ClientSession,
    raw: Redis,
    scanner: TestServer,
    redis_server: RedisServer,
) -> None:
    """The README: a running scan holds its next event for up to store_retry_seconds, and if
    Redis is back by then it carries on. The owner's lease lapses while Redis is down; once
    Redis is back, another replica's sweep must not end the scan as a lost replica's."""
    lease = 1.5
    owner, b = await replicas(2, redis={"lease_seconds": lease, "sweep_interval_seconds": 0.1})
    scan_id = await start_scan(http, owner, {"step_delay": 0.05, "steps": 60})
    follower = Follower(http, b, scan_id)
    following = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.started.wait(), DEADLINE)
        await redis_server.stop()
        await asyncio.wait_for(follower.told_unavailable.wait(), DEADLINE)
        # The outage itself: two leases long, far within store_retry_seconds. Nothing to
        # await here: the duration is the point.
        await asyncio.sleep(2 * lease)
        await redis_server.start()
        await asyncio.wait_for(following, DEADLINE)
    finally:
        following.cancel()

    await completed_whole(http, raw, scanner, follower)


async def completed_whole(
    http: ClientSession, raw: Redis, scanner: TestServer, follower: Follower
) -> None:
    """The scan completed, and the follower assembled its stored log exactly."""
    stored = await stored_log(raw, follower.scan_id)
    final = json.loads(stored[-1][1])
    assert (final["status"], final["error"]) == ("completed", None)
    assert gap_free(stored)
    assert terminal_count(stored) == 1
    assert follower.events == stored
    # No event was written twice by a retried append.
    states = [json.loads(data) for _, data in stored]
    keys = [(s["status"], s["progress_percent"], s["progress_text"]) for s in states]
    assert all(x != y for x, y in itertools.pairwise(keys))
    assert await posts_received(http, scanner, follower.scan_id) == 1


CLIENTS = 12
MIN_RECONNECTS = 1000
MAX_RECONNECTS = 20_000


async def test_random_reconnects_across_three_replicas_reassemble_the_log(
    replicas: StartReplicas, http: ClientSession, raw: Redis
) -> None:
    # Leases of 5 s: on a loaded machine a replica's renewal of a 1 s lease can come late, and
    # another replica then ends its scan "replica lost" (not what this test is about).
    cluster = await replicas(
        3, limits={"max_streams_per_subject": 1000}, redis={"lease_seconds": 5}
    )
    scan_ids = [
        await start_scan(http, cluster[0], {"step_delay": 0.03, "steps": 150}),
        await start_scan(http, cluster[1], {"step_delay": 0.03, "steps": 150}),
    ]
    rng = random.Random(20261125)
    connections = [0, 0, 0]  # per replica

    async def follow(scan_id: str, seed: int) -> Log:
        own = random.Random(seed)
        received: Log = []
        while True:
            index = own.randrange(len(cluster))
            connections[index] += 1
            assert sum(connections) <= MAX_RECONNECTS
            last = received[-1][0] if received else 0
            budget = own.randint(1, 700)  # bytes to read before dropping the connection
            async with await open_stream(http, cluster[index], scan_id, last) as response:
                if response.status == 204:
                    return received
                assert response.status == 200, await response.text()
                parser = SSEParser()
                while budget > 0:
                    chunk = await response.content.read(min(budget, 97))
                    if not chunk:
                        break
                    budget -= len(chunk)
                    received += messages(parser.feed(chunk))

    async with asyncio.timeout(120):  # ~5 s alone; over 45 s seen on a loaded 2-core machine
        results = await asyncio.gather(
            *(follow(scan_ids[i % 2], rng.randrange(2**32)) for i in range(CLIENTS))
        )
    assert sum(connections) >= MIN_RECONNECTS, connections
    assert min(connections) > 0
    for index, received in enumerate(results):
        stored = await stored_log(raw, scan_ids[index % 2])
        assert statuses(stored)[-1] == "completed"
        assert gap_free(stored)
        ids = [seq for seq, _ in received]
        assert ids == sorted(set(ids)), f"client {index} got ids twice: {repeated(ids)}"
        assert received == stored


def repeated(ids: list[int]) -> list[int]:
    return sorted(seq for seq, times in Counter(ids).items() if times > 1)
