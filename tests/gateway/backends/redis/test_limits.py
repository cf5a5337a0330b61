"""What only the limits counted in Redis do: several replicas share one count, racing
admissions never pass a limit, places lapse unless renewed, and Redis going away refuses
admissions while releases still end.

Every test has a redis-server of its own; the ``RedisLimits`` in a test play the replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.backends.redis import RedisLimits
from gateway.backends.redis.limits import RELEASE_SECONDS
from gateway.config import config_from_dict
from gateway.domain.errors import LimitExceeded, StoreUnavailable
from tests.redis_server import RedisServer

LEASE = 0.3  # seconds: renewed every 0.1 s
WAIT_SECONDS = 5.0  # for a condition to come true
ROUNDS = 5
RACERS = 20  # admissions each replica sends at once, per round

OpenReplica = Callable[..., Awaitable[RedisLimits]]


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def replica(redis_server: RedisServer) -> AsyncIterator[OpenReplica]:
    """Open limits (a replica's) on the test's server, ``limits:`` config as keyword
    arguments; all are closed at the end."""
    opened: list[RedisLimits] = []

    async def open_replica(lease: float = LEASE, **limits: Any) -> RedisLimits:
        config = config_from_dict({"limits": {"scan_start_burst": 10_000, **limits}}).limits
        made = await RedisLimits.open(redis_server.url, config, lease_seconds=lease)
        opened.append(made)
        return made

    yield open_replica
    for made in opened:
        await made.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def admitted(limits: RedisLimits, subject: str, scan_id: str) -> bool:
    try:
        await limits.admit_scans(subject, [scan_id])
    except LimitExceeded:
        return False
    return True


async def opened(limits: RedisLimits, subject: str, stream_id: str) -> bool:
    try:
        await limits.open_stream(subject, stream_id)
    except LimitExceeded:
        return False
    return True


async def test_replicas_share_one_count_of_scans_and_streams(replica):
    a = await replica(max_running_scans_per_subject=2, max_streams_per_subject=1)
    b = await replica(max_running_scans_per_subject=2, max_streams_per_subject=1)
    await a.admit_scans("alice", ["a1"])
    await b.admit_scans("alice", ["b1"])
    assert not await admitted(a, "alice", "a2")
    assert not await admitted(b, "alice", "b2")
    await a.open_stream("alice", "s1")
    assert not await opened(b, "alice", "s2")
    await a.release_scan("a1")  # given back at once, whichever replica asks next
    await a.close_stream("s1")
    assert await admitted(b, "alice", "b2")
    assert await opened(b, "alice", "s2")


async def test_racing_admissions_on_two_replicas_never_pass_a_limit(replica):
    most = 3
    a = await replica(max_running_scans_per_subject=most, max_running_scans=most + 2)
    b = await replica(max_running_scans_per_subject=most, max_running_scans=most + 2)
    for round_ in range(ROUNDS):
        ids = [f"r{round_}-{i}" for i in range(2 * RACERS)]
        answers = await asyncio.gather(
            *(admitted(a if i % 2 else b, "alice", scan_id) for i, scan_id in enumerate(ids))
        )
        winners = [scan_id for scan_id, ok in zip(ids, answers, strict=True) if ok]
        assert len(winners) == most, f"round {round_}: {winners}"
        # In all: the others race for the two places left.
        others = await asyncio.gather(
            *(admitted(a if i % 2 else b, f"s{i}", f"o{round_}-{i}") for i in range(RACERS))
        )
        assert sum(others) == 2, f"round {round_}"
        for i, ok in enumerate(others):
            if ok:
                await (a if i % 2 else b).release_scan(f"o{round_}-{i}")
        for scan_id in winners:
            await a.release_scan(scan_id)  # held by one of the two: the other does nothing
            await b.release_scan(scan_id)


async def test_places_held_are_renewed_and_those_nobody_renews_lapse(replica, raw):
    a = await replica(max_running_scans_per_subject=2)
    b = await replica(max_running_scans_per_subject=2)
    await a.admit_scans("alice", ["a1"])
    # A place a replica left when it died, as the layout stores it: lapsing within a lease.
    (now, micros) = await raw.time()
    lapses = now * 1000 + micros // 1000 + round(LEASE * 1000)
    await raw.zadd("xployt:limits:scans", {"dead1": lapses})
    await raw.zadd("xployt:limits:scans:alice", {"dead1": lapses})
    assert not await admitted(b, "alice", "b1")
    started = time.monotonic()

    async def b_admits() -> bool:
        return await admitted(b, "alice", "b1")

    await until(b_admits, "the dead replica's place lapses")
    assert time.monotonic() - started < LEASE + 1.0
    # Three leases later, a1 is still counted: its replica renews it.
    await asyncio.sleep(3 * LEASE)  # the duration is the point
    assert not await admitted(b, "alice", "b2")
    assert await raw.zscore("xployt:limits:scans:alice", "a1") is not None


async def test_without_redis_admissions_are_refused_and_releases_still_end(
    replica, raw, redis_server
):
    a = await replica(max_running_scans_per_subject=2)
    b = await replica(max_running_scans_per_subject=2)
    await a.admit_scans("alice", ["kept", "given-back"])
    await redis_server.stop()
    with pytest.raises(StoreUnavailable):
        await a.admit_scans("bob", ["b1"])  # fail closed: never admitted uncounted
    with pytest.raises(StoreUnavailable):
        await b.open_stream("bob", "s1")
    started = time.monotonic()
    await a.release_scan("given-back")  # no error, and no waiting for Redis
    assert time.monotonic() - started < RELEASE_SECONDS + 1.0
    await asyncio.sleep(2 * LEASE)  # an outage longer than a lease: every place lapses
    await redis_server.start()

    async def kept_is_renewed() -> bool:
        (now, micros) = await raw.time()
        score = await raw.zscore("xployt:limits:scans:alice", "kept")
        return score is not None and score > now * 1000 + micros // 1000

    await until(kept_is_renewed, "the replica counts again what it still holds")
    assert await admitted(b, "alice", "b1")  # given-back is not counted ...
    assert not await admitted(b, "alice", "b2")  # ... kept is


async def test_a_closing_replica_gives_its_places_back(replica):
    a = await replica(max_running_scans_per_subject=1, max_streams_per_subject=1)
    b = await replica(max_running_scans_per_subject=1, max_streams_per_subject=1)
    await a.admit_scans("alice", ["a1"])
    await a.open_stream("alice", "s1")
    await a.close()
    assert await admitted(b, "alice", "b1")  # at once, not after a lease
    assert await opened(b, "alice", "s2")
    with pytest.raises(StoreUnavailable):
        await a.admit_scans("bob", ["a2"])


SURGE = 5000  # streams opening on one replica at once


async def test_a_surge_of_streams_opening_at_once_is_counted_not_refused(replica):
    """They wait their turn for a connection; none is refused as if Redis were down, and the
    places already held are renewed meanwhile (a lease longer than the surge takes)."""
    a = await replica(5.0, max_streams=SURGE, max_streams_per_subject=SURGE)
    ids = [f"s{i}" for i in range(SURGE)]
    async with asyncio.timeout(60):
        await asyncio.gather(*(a.open_stream(f"u{n % 100}", i) for n, i in enumerate(ids)))
        assert not await opened(a, "u0", "one-more")
        await asyncio.gather(*(a.close_stream(i) for i in ids))
    assert await opened(a, "u0", "one-more")
