"""Draining replicas sharing one Redis (real ``python -m gateway`` processes): a replica told
SIGTERM sends its streams to the others at once, each with its own ``retry:`` in the spread,
starts nothing new, runs its scans to their end and exits; a client resumes elsewhere with
nothing lost and nothing twice. Killed outright while it drains, its scans are still ended by
the others, once."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass, field

import aiohttp
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.scanners.sse_parser import SSEParser
from tests.gateway import test_replicas as cluster
from tests.gateway.test_replicas import (
    DEADLINE,
    LEASE,
    MARGIN,
    REPLICA_LOST,
    RETRY_MS,
    SWEEP,
    Follower,
    Log,
    Replica,
    StartReplicas,
    gap_free,
    get_json,
    messages,
    open_stream,
    posts_received,
    start_scan,
    statuses,
    stored_log,
    terminal_count,
)
from tests.gateway.test_serving import FAREWELL, bench
from tests.helpers import auth

# The replica tests' fixtures: gateway processes on the test's Redis, a client, a Redis reader.
replicas, http, raw = cluster.replicas, cluster.http, cluster.raw
SPREAD_MS = 400  # stream.reconnect_spread_ms
FOLLOWERS = 20
BENCH = {"bench": True}  # the mock scanner's bench mode: the scan runs until the test ends it
ENDS = ("completed", "failed", "cancelled")


@dataclass
class RoundRobin:
    """A client that follows a scan as EventSource does (``Last-Event-ID``, the ``retry:`` the
    server asked for), each connection through the next replica, as a round-robin balancer
    would send it; a replica that refuses the connection is passed over."""

    http: ClientSession
    cluster: list[Replica]
    scan_id: str
    events: Log = field(default_factory=list)
    bodies: list[tuple[int, bytes]] = field(default_factory=list)  # (replica port, body)
    started: asyncio.Event = field(default_factory=asyncio.Event)  # it holds a few events
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # its first stream has ended

    async def run(self) -> None:
        turn = 0
        while not self.events or json.loads(self.events[-1][1])["status"] not in ENDS:
            replica = self.cluster[turn % len(self.cluster)]
            turn += 1
            parser = SSEParser()
            try:
                await self._read(replica, parser)
            except aiohttp.ClientConnectionError:
                continue  # the balancer tries the next one
            self.moved.set()
            assert parser.retry is not None
            await asyncio.sleep(parser.retry / 1000)  # EventSource's reconnection delay

    async def _read(self, replica: Replica, parser: SSEParser) -> None:
        last = self.events[-1][0] if self.events else 0
        body = b""
        async with await open_stream(self.http, replica, self.scan_id, last) as response:
            assert response.status == 200, await response.text()
            async for chunk in response.content.iter_any():
                body += chunk
                self.events += messages(parser.feed(chunk))
                if len(self.events) >= 3:
                    self.started.set()
            self.events += messages(parser.close())
        self.bodies.append((replica.port, body))


async def test_a_draining_replica_sends_its_streams_elsewhere_and_runs_its_scans_to_the_end(
    replicas: StartReplicas, http: ClientSession, raw: Redis, scanner: TestServer
) -> None:
    a, b = await replicas(
        2,
        stream={"reconnect_spread_ms": SPREAD_MS},
        limits={"max_streams_per_subject": 100, "retry_after_seconds": 3},
    )
    scan_id = await start_scan(http, a, BENCH)
    followers = [RoundRobin(http, [a, b], scan_id) for _ in range(FOLLOWERS)]
    following = [asyncio.create_task(follower.run()) for follower in followers]
    try:
        for follower in followers:
            await asyncio.wait_for(follower.started.wait(), DEADLINE)
        a.process.send_signal(signal.SIGTERM)
        for follower in followers:  # every stream on A is told to go, at once
            await asyncio.wait_for(follower.moved.wait(), DEADLINE)
        retries = []
        for follower in followers:
            port, body = follower.bodies[0]
            told = FAREWELL.search(body)
            assert port == a.port and told is not None, body[-200:]
            retries.append(int(told[1]))
        assert all(RETRY_MS <= retry <= RETRY_MS + SPREAD_MS for retry in retries), retries
        assert len(set(retries)) > FOLLOWERS // 2, f"not spread: {retries}"

        # A is out of rotation for new work; B takes it.
        assert (await get_json(http, f"{a.url}/readyz"))[0] == 503
        assert (await get_json(http, f"{b.url}/readyz"))[0] == 200
        new = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}
        async with http.post(f"{a.scans}/", json=new, headers=auth()) as refused:
            assert (refused.status, refused.headers["Retry-After"]) == (503, "3")
            assert (await refused.json())["error"] == "draining"
        async with http.post(f"{b.scans}/", json=new, headers=auth()) as taken:
            assert taken.status == 201
        # A stream that reaches A meanwhile gets what the log holds, then the same notice.
        async with await open_stream(http, a, scan_id, 1) as late:
            assert late.status == 200
            tail = await late.read()
        assert FAREWELL.search(tail) is not None, tail
        assert next(seq for seq, _ in messages(SSEParser().feed(tail))) == 2

        # The scan goes on on A, its events reach the followers through B.
        for step in range(1, 6):
            await bench(http, scanner, scan_id, "publish", progress_percent=10 * step)
        await bench(http, scanner, scan_id, "finish")
        await asyncio.wait_for(asyncio.gather(*following), DEADLINE)
        assert await asyncio.wait_for(a.process.wait(), DEADLINE) == 0
    finally:
        for task in following:
            task.cancel()

    stored = await stored_log(raw, scan_id)
    assert statuses(stored)[-1] == "completed"
    assert gap_free(stored) and terminal_count(stored) == 1
    for follower in followers:
        assert follower.events == stored, "each resumed exactly where it was"
        assert all(port == b.port for port, _ in follower.bodies[1:])
    assert a.log.index_of("draining: 1 running") < a.log.index_of("drained in")
    assert not any("Traceback" in line for r in (a, b) for line in r.log)


async def test_a_replica_killed_while_it_drains_has_its_scans_ended_by_the_others(
    replicas: StartReplicas, http: ClientSession, raw: Redis, scanner: TestServer
) -> None:
    a, b = await replicas(2)
    scan_id = await start_scan(http, a, BENCH)
    follower = Follower(http, b, scan_id)
    following = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.started.wait(), DEADLINE)
        a.process.send_signal(signal.SIGTERM)
        await a.log.line("draining: 1 running")
        a.process.kill()
        await a.process.wait()
        # The README: within lease_seconds plus one sweep_interval_seconds.
        await asyncio.wait_for(following, LEASE + SWEEP + MARGIN)
    finally:
        following.cancel()

    stored = await stored_log(raw, scan_id)
    final = json.loads(stored[-1][1])
    assert (final["status"], final["error"]) == ("failed", REPLICA_LOST)
    assert gap_free(stored) and terminal_count(stored) == 1
    assert follower.events == stored
    assert await posts_received(http, scanner, scan_id) == 1
