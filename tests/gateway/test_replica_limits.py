"""Limits across gateway replicas sharing one Redis (real ``python -m gateway`` processes): the
N+1th running scan or stream of a subject is 429 whichever replica gets it, starts racing on
two replicas never pass a limit, the bucket of starts is one per subject for the cluster, and
a replica killed outright gives back its places within a lease, one stopped at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import ClientResponse, ClientSession

from tests.gateway import test_replicas as cluster
from tests.gateway.test_replicas import LEASE, LONG_SCAN, MARGIN, Replica, open_stream, until
from tests.helpers import auth, error_shape

# The replica test's fixtures: gateway processes on the test's Redis, and a client.
replicas, http = cluster.replicas, cluster.http

BODY = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}
FAST_STARTS = {"scan_starts_per_second": 1000, "scan_start_burst": 1000}
ROUNDS = 4
RACERS = 8  # starts each replica gets at once, per round


async def post_scan(
    http: ClientSession, replica: Replica, sub: str = "alice", configurations: Any = LONG_SCAN
) -> ClientResponse:
    body = {**BODY, "configurations": configurations}
    async with http.post(f"{replica.scans}/?use_sse=true", json=body, headers=auth(sub)) as reply:
        await reply.read()
        return reply


async def started(http: ClientSession, replica: Replica, sub: str = "alice") -> str:
    reply = await post_scan(http, replica, sub)
    assert reply.status == 201, await reply.text()
    scan_id: str = (await reply.json())["data"]["scan_id"]
    return scan_id


async def refusal(reply: ClientResponse) -> dict[str, Any]:
    assert reply.status == 429, await reply.text()
    body: dict[str, Any] = await reply.json()
    error_shape(body)
    assert body["error"] == "limit_exceeded"
    return body


async def cancel(http: ClientSession, replica: Replica, scan_id: str) -> None:
    async with http.delete(f"{replica.scans}/{scan_id}", headers=auth()) as reply:
        assert reply.status == 200, await reply.text()


async def test_the_n_plus_first_running_scan_is_429_on_either_replica(replicas, http):
    limits = {"max_running_scans_per_subject": 2, "max_running_scans": 3, **FAST_STARTS}
    a, b = await replicas(2, limits={**limits, "retry_after_seconds": 7})
    first = await started(http, a)
    await started(http, b)
    for replica in (a, b):
        reply = await post_scan(http, replica)
        body = await refusal(reply)
        assert body["message"].startswith("you already run 2 scans, the maximum")
        assert reply.headers["Retry-After"] == "7"
    await started(http, b, "bob")  # three in all now
    for replica in (a, b):
        body = await refusal(await post_scan(http, replica, "carol"))
        assert body["message"] == "the gateway runs its maximum of 3 scans; try later"
    # Cancelled on the replica running it, its place is free at once, for either replica.
    await cancel(http, a, first)
    await started(http, b)


async def test_starts_racing_on_two_replicas_never_pass_the_limit(replicas, http):
    most = 3
    a, b = await replicas(2, limits={"max_running_scans_per_subject": most, **FAST_STARTS})
    for round_ in range(ROUNDS):
        racing = [a if i % 2 else b for i in range(2 * RACERS)]
        replies = await asyncio.gather(*(post_scan(http, replica) for replica in racing))
        assert sorted(reply.status for reply in replies) == [201] * most + [429] * (
            2 * RACERS - most
        ), f"round {round_}"
        for replica, reply in zip(racing, replies, strict=True):
            if reply.status == 201:
                await cancel(http, replica, (await reply.json())["data"]["scan_id"])


async def test_one_bucket_of_starts_per_subject_for_the_cluster(replicas, http):
    # A start every 5 s: the refusals below come well within it, however loaded the machine.
    a, b = await replicas(2, limits={"scan_starts_per_second": 0.2, "scan_start_burst": 2})
    quick = {"step_delay": 0, "steps": 2}
    assert (await post_scan(http, a, configurations=quick)).status == 201
    assert (await post_scan(http, b, configurations=quick)).status == 201
    for replica in (a, b):
        reply = await post_scan(http, replica, configurations=quick)
        body = await refusal(reply)
        assert body["message"].startswith("you start scans faster than the 0.2 per second")
        assert 1 <= int(reply.headers["Retry-After"]) <= 5
    assert (await post_scan(http, b, "bob", quick)).status == 201  # a bucket per subject

    async def refilled() -> bool:
        return (await post_scan(http, b, configurations=quick)).status == 201

    await until(refilled, "the bucket holds a start again")


async def test_open_streams_per_subject_count_on_every_replica(replicas, http):
    a, b = await replicas(2, limits={"max_streams_per_subject": 2, **FAST_STARTS})
    scan_id = await started(http, a)
    held = [await open_stream(http, a, scan_id), await open_stream(http, b, scan_id)]
    assert [response.status for response in held] == [200, 200]
    for replica in (a, b):
        async with await open_stream(http, replica, scan_id) as refused:
            body = await refusal(refused)
            assert body["message"] == "you already have 2 streams open, the maximum; close one"
    held[0].close()  # the client goes away: replica A notices and gives the place back

    async def b_opens() -> bool:
        response = await open_stream(http, b, scan_id)
        if response.status == 200:
            held.append(response)
            return True
        response.close()
        return False

    await until(b_opens, "a stream closed on A frees its place for B")
    for response in held:
        response.close()


async def test_a_killed_replica_gives_back_its_scans_and_streams_within_a_lease(replicas, http):
    limits = {"max_running_scans_per_subject": 2, "max_streams_per_subject": 2, **FAST_STARTS}
    dead, b = await replicas(2, limits=limits)
    scan_ids = [await started(http, dead), await started(http, dead)]
    streams = [await open_stream(http, dead, scan_id) for scan_id in scan_ids]
    assert [response.status for response in streams] == [200, 200]
    await refusal(await post_scan(http, b))
    async with await open_stream(http, b, scan_ids[0]) as refused:
        await refusal(refused)

    dead.process.kill()
    await dead.process.wait()
    killed = time.monotonic()
    for response in streams:
        response.close()
    survivors: list[str] = []
    held: list[ClientResponse] = []

    async def b_starts_two() -> bool:
        reply = await post_scan(http, b)
        if reply.status == 201:
            survivors.append((await reply.json())["data"]["scan_id"])
        return len(survivors) == 2

    async def b_streams_two() -> bool:
        response = await open_stream(http, b, survivors[0])
        if response.status != 200:
            response.close()
        else:
            held.append(response)
        return len(held) == 2

    try:
        await until(b_starts_two, "no running scan of the killed replica is counted")
        await until(b_streams_two, "no stream of the killed replica is counted")
        # Within a lease of the last renewal, itself at most a third of a lease before the
        # kill; with room for a loaded machine.
        assert time.monotonic() - killed < LEASE + MARGIN
        # B's own are counted, nothing less.
        await refusal(await post_scan(http, b))
        async with await open_stream(http, b, survivors[1]) as refused:
            await refusal(refused)
    finally:
        for response in held:
            response.close()


async def test_a_replica_stopped_gives_back_its_places_at_once(replicas, http):
    limits = {"max_running_scans_per_subject": 2, "max_streams_per_subject": 1, **FAST_STARTS}
    # Leases far longer than the test: a place not given back would still be counted.
    stopped, b = await replicas(2, limits=limits, redis={"lease_seconds": 60})
    scan_ids = [await started(http, stopped), await started(http, stopped)]
    stream = await open_stream(http, stopped, scan_ids[0])
    assert stream.status == 200
    stopped.process.terminate()  # SIGTERM: streams told to reconnect, scans interrupted
    assert await stopped.process.wait() == 0
    stream.close()
    # The first try, not after a lease: the stopping replica gave its places back.
    survivor = await started(http, b)
    async with await open_stream(http, b, survivor) as response:
        assert response.status == 200, await response.text()
