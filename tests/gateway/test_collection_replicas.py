"""Collections on replicas sharing one Redis (real ``python -m gateway`` processes): any
replica streams, resumes and cancels a collection aggregated on another; a replica killed
outright mid-collection is taken over by a survivor, which ends the collection from its
stored cursors, with one terminal event and no gap."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, cast

from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.scanners.sse_parser import SSEParser
from tests.gateway import test_replicas as cluster
from tests.gateway.test_replicas import (
    LEASE,
    MARGIN,
    REPLICA_LOST,
    SWEEP,
    Log,
    Replica,
    StartReplicas,
    gap_free,
    messages,
    read_rest,
    read_until,
)
from tests.helpers import COLLECTIONS_API, auth

# The replica test's fixtures: gateway processes on the test's Redis, a client, a Redis reader.
replicas, http, raw = cluster.replicas, cluster.http, cluster.raw
TWO = ["secret_scanner", "sast_scanner"]
LONG = {"step_delay": 0.05, "steps": 400}  # runs ~20 s: ends only when a test ends it


def scanners(scanner: TestServer) -> dict[str, Any]:
    return {"scanners": {name: str(scanner.make_url(f"/scanners/{name}/scan")) for name in TWO}}


async def start(http: ClientSession, replica: Replica, configurations: dict[str, Any]) -> str:
    body = {"repository_name": "acme/web", "scanners": TWO, "configurations": configurations}
    url = f"{replica.url}{COLLECTIONS_API}/?use_sse=true"
    async with http.post(url, json=body, headers=auth()) as response:
        assert response.status == 201, await response.text()
        cid: str = (await response.json())["data"]["collection_id"]
    return cid


async def open_stream(
    http: ClientSession, replica: Replica, cid: str, last: int = 0
) -> ClientResponse:
    headers = {**auth(), "Accept": "text/event-stream"}
    if last:
        headers["Last-Event-ID"] = str(last)
    return await http.get(f"{replica.url}{COLLECTIONS_API}/{cid}/stream", headers=headers)


async def stored(raw: Redis, cid: str) -> Log:
    entries = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]", await raw.xrange(f"xployt:log:collection:{cid}")
    )
    return [(int(entry_id.split(b"-")[0]), fields[b"d"].decode()) for entry_id, fields in entries]


def failures(log: Log) -> list[str]:
    """Why the scans of a collection's log failed, for an assertion's message."""
    scans = (json.loads(data)["scan"] for _, data in log)
    return [
        f"{scan['scanner_name']}: {scan['error']}" for scan in scans if scan["status"] == "failed"
    ]


def terminal(log: Log) -> list[str]:
    return [
        state["status"]
        for state in (json.loads(data)["collection"] for _, data in log)
        if state["status"] in ("completed", "failed", "cancelled")
    ]


async def test_a_killed_replica_s_collection_is_ended_by_a_survivor(
    replicas: StartReplicas, http: ClientSession, raw: Redis, scanner: TestServer
) -> None:
    owner, b = await replicas(2, **scanners(scanner))
    cid = await start(http, owner, LONG)
    async with await open_stream(http, b, cid) as response:
        parser = SSEParser()
        seen = await read_until(response, parser, lambda log: len(log) >= 6)
        owner.process.kill()
        await owner.process.wait()
        # The scans end within a lease and a sweep; the collection, a lease and a sweep later.
        async with asyncio.timeout(2 * (LEASE + SWEEP) + MARGIN):
            seen += await read_rest(response, parser)
    log = await stored(raw, cid)
    assert seen == log
    assert gap_free(log)
    assert terminal(log) == ["failed"]
    final = json.loads(log[-1][1])
    ended = [json.loads(data)["scan"] for _, data in log]
    assert {s["error"] for s in ended if s["status"] == "failed"} == {REPLICA_LOST}
    assert final["summary"] == {"total": 0, "by_severity": final["summary"]["by_severity"]}
    assert not await raw.sismember("xployt:collections:running", cid)
    assert not await raw.exists(f"xployt:lease:collection:{cid}")
    async with http.get(f"{b.url}{COLLECTIONS_API}/{cid}/results", headers=auth()) as answer:
        assert answer.status == 200
        assert (await answer.json())["data"]["status"] == "failed"


async def test_another_replica_cancels_the_collection(
    replicas: StartReplicas, http: ClientSession, raw: Redis, scanner: TestServer
) -> None:
    a, b = await replicas(2, **scanners(scanner))
    cid = await start(http, a, LONG)
    async with http.delete(f"{b.url}{COLLECTIONS_API}/{cid}", headers=auth()) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["data"]["status"] == "cancelled"
    log = await stored(raw, cid)
    assert gap_free(log) and terminal(log) == ["cancelled"]


CLIENTS = 8


async def test_random_reconnects_across_replicas_reassemble_the_log(
    replicas: StartReplicas, http: ClientSession, raw: Redis, scanner: TestServer
) -> None:
    # Leases long enough that a replica starved of CPU on a loaded machine keeps its scans:
    # this test is about reassembling the log, not about taking over (the first test is).
    three = await replicas(
        3,
        limits={"max_streams_per_subject": 1000},
        redis={"lease_seconds": 5},
        **scanners(scanner),
    )
    cids = [
        await start(http, three[0], {"step_delay": 0.03, "steps": 60}),
        await start(http, three[1], {"step_delay": 0.03, "steps": 60}),
    ]
    rng = random.Random(20261202)
    connections = [0, 0, 0]

    async def follow(cid: str, seed: int) -> Log:
        own = random.Random(seed)
        received: Log = []
        most = 900
        while True:
            index = own.randrange(len(three))
            connections[index] += 1
            before = len(received)
            last = received[-1][0] if received else 0
            budget = own.randint(1, most)
            async with await open_stream(http, three[index], cid, last) as response:
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
            most = most * 2 if len(received) == before else 900  # an event larger than most

    async with asyncio.timeout(120):  # ~4 s alone; over 40 s seen on a loaded 2-core machine
        results = await asyncio.gather(
            *(follow(cids[i % 2], rng.randrange(2**32)) for i in range(CLIENTS))
        )
    assert sum(connections) >= 200 and min(connections) > 0, connections
    for index, received in enumerate(results):
        log = await stored(raw, cids[index % 2])
        assert terminal(log) == ["completed"], failures(log)
        assert gap_free(log)
        assert received == log
