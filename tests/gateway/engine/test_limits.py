"""What every ``Limits`` does, counted in the process (``LocalLimits``) or in a real Redis
(``RedisLimits``): running scans and streams per subject and in all, at the limit and past it,
batches all or none, releases that never take a count below zero, and the token bucket of
scan starts on a clock the test moves. The token bucket's arithmetic is checked on its own too.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.redis import RedisLimits
from gateway.config import config_from_dict
from gateway.domain.errors import LimitExceeded
from gateway.engine.limits import Bucket, Limits, retry_after, start_cost, take
from gateway.engine.local_limits import LocalLimits
from tests.helpers import Clock
from tests.redis_server import running_redis

MakeLimits = Callable[..., Awaitable[Limits]]


@pytest.fixture(params=["local", "redis"])
async def make_limits(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeLimits]:
    """Limits of the parameter's kind (``limits:`` config as keyword arguments), on ``clock``."""
    async with AsyncExitStack() as stack:
        url: str | None = None

        async def make(clock: Clock | None = None, **limits: Any) -> Limits:
            nonlocal url
            config = config_from_dict({"limits": limits}).limits
            clock = clock or Clock()
            if request.param == "local":
                return LocalLimits(config, clock=clock)
            if url is None:
                url = (await stack.enter_async_context(running_redis(tmp_path / "redis"))).url
            made = await RedisLimits.open(url, config, clock=clock)
            stack.push_async_callback(made.close)
            return made

        yield make


async def refused(admission: Awaitable[None]) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        await admission
    return info.value


async def test_running_scans_per_subject_and_in_all_at_the_limit_and_past_it(make_limits):
    limits = await make_limits(
        max_running_scans_per_subject=2, max_running_scans=3, retry_after_seconds=7
    )
    await limits.admit_scans("alice", ["a1"])
    await limits.admit_scans("alice", ["a2"])  # alice at her limit
    mine = await refused(limits.admit_scans("alice", ["a3"]))
    assert mine.status == 429
    assert mine.message == (
        "you already run 2 scans, the maximum; wait for one to end or cancel one"
    )
    assert mine.headers["Retry-After"] == "7"
    await limits.admit_scans("bob", ["b1"])  # the gateway at its limit
    full = await refused(limits.admit_scans("carol", ["c1"]))
    assert full.message == "the gateway runs its maximum of 3 scans; try later"
    await limits.release_scan("a1")
    await limits.admit_scans("alice", ["a3"])  # a place is free again, for alice too
    await refused(limits.admit_scans("carol", ["c1"]))


async def test_a_batch_is_admitted_all_or_none(make_limits):
    limits = await make_limits(max_running_scans_per_subject=3, max_running_scans=5)
    await limits.admit_scans("alice", ["a1", "a2"])
    mine = await refused(limits.admit_scans("alice", ["a3", "a4"]))
    assert mine.message == (
        "these 2 scans would take you past your maximum of 3 running scans; 1 more can start now"
    )
    await limits.admit_scans("bob", ["b1", "b2"])
    full = await refused(limits.admit_scans("carol", ["c1", "c2"]))
    assert full.message == (
        "the gateway runs near its maximum of 5 scans and 1 more can start now, not 2; try later"
    )
    # Nothing of the refused batches was counted: exactly one place is left, alice's or carol's.
    await limits.admit_scans("alice", ["a3"])
    await refused(limits.admit_scans("carol", ["c1"]))


async def test_releases_never_take_a_count_below_zero(make_limits):
    limits = await make_limits(max_running_scans_per_subject=1, max_running_scans=1)
    await limits.admit_scans("alice", ["a1"])
    await limits.release_scan("a1")
    await limits.release_scan("a1")  # twice
    await limits.release_scan("never-admitted")
    await limits.close_stream("never-opened")
    await limits.admit_scans("alice", ["a2"])
    # With a count at -1 or -2, these would pass.
    await refused(limits.admit_scans("alice", ["a3"]))
    await refused(limits.admit_scans("bob", ["b1"]))


async def test_an_id_admitted_again_is_counted_once(make_limits):
    limits = await make_limits(max_running_scans_per_subject=2)
    await limits.admit_scans("alice", ["a1", "a1"])
    await limits.admit_scans("alice", ["a1"])  # a retry of the same admission
    await limits.admit_scans("alice", ["a2"])
    await refused(limits.admit_scans("alice", ["a3"]))
    await limits.release_scan("a1")  # once is enough
    await limits.admit_scans("alice", ["a3"])


async def test_open_streams_per_subject_and_in_all(make_limits):
    limits = await make_limits(max_streams_per_subject=2, max_streams=3, retry_after_seconds=4)
    await limits.open_stream("alice", "s1")
    await limits.open_stream("alice", "s2")
    mine = await refused(limits.open_stream("alice", "s3"))
    assert mine.message == "you already have 2 streams open, the maximum; close one"
    assert mine.headers["Retry-After"] == "4"
    await limits.open_stream("bob", "s4")
    full = await refused(limits.open_stream("carol", "s5"))
    assert full.message == "the gateway serves its maximum of 3 streams; try later"
    await limits.close_stream("s1")
    await limits.open_stream("carol", "s5")
    # Streams and scans are counted apart.
    await limits.admit_scans("alice", ["a1"])


async def test_the_bucket_refuses_starts_past_the_burst_until_it_refills(make_limits):
    clock = Clock()
    limits = await make_limits(
        clock, scan_starts_per_second=0.5, scan_start_burst=2, retry_after_seconds=60
    )
    await limits.admit_scans("alice", ["a1"])
    await limits.admit_scans("alice", ["a2"])
    fast = await refused(limits.admit_scans("alice", ["a3"]))
    assert fast.status == 429
    assert fast.headers["Retry-After"] == "2"  # one start at 0.5 a second
    assert fast.message == (
        "you start scans faster than the 0.5 per second allowed (at most 2 at once); "
        "the next can start in 2 s"
    )
    await limits.admit_scans("bob", ["b1"])  # a bucket per subject
    clock.now += 1.5
    assert (await refused(limits.admit_scans("alice", ["a3"]))).headers["Retry-After"] == "1"
    clock.now += 0.25  # a quarter of a second short: still whole seconds, and never 0
    assert (await refused(limits.admit_scans("alice", ["a3"]))).headers["Retry-After"] == "1"
    clock.now += 0.25
    await limits.admit_scans("alice", ["a3"])
    await refused(limits.admit_scans("alice", ["a4"]))
    clock.now += 3600  # refills to the burst, not past it
    await limits.admit_scans("alice", ["a4"])
    await limits.admit_scans("alice", ["a5"])
    await refused(limits.admit_scans("alice", ["a6"]))


async def test_a_refusal_takes_no_token_and_holds_no_place(make_limits):
    clock = Clock()
    limits = await make_limits(
        clock, max_running_scans_per_subject=2, scan_starts_per_second=1, scan_start_burst=2
    )
    await limits.admit_scans("alice", ["a1", "a2"])  # the bucket is empty, alice at her limit
    clock.now += 1  # one token back
    await refused(limits.admit_scans("alice", ["a3"]))  # the running limit refuses...
    await limits.release_scan("a1")
    await limits.admit_scans("alice", ["a3"])  # ... and took no token: it is still there
    await limits.release_scan("a2")
    starts = await refused(limits.admit_scans("alice", ["a4"]))  # the bucket refuses...
    assert starts.message.startswith("you start scans faster")
    clock.now += 1
    await limits.admit_scans("alice", ["a5"])  # ... and a4 held no place
    await refused(limits.admit_scans("alice", ["a6"]))


async def test_a_batch_larger_than_the_burst_waits_for_a_full_bucket(make_limits):
    clock = Clock()
    limits = await make_limits(clock, scan_starts_per_second=1, scan_start_burst=2)
    await limits.admit_scans("alice", ["a1"])
    waiting = await refused(limits.admit_scans("alice", ["b1", "b2", "b3"]))
    assert waiting.headers["Retry-After"] == "1"
    clock.now += 1
    await limits.admit_scans("alice", ["b1", "b2", "b3"])  # a full bucket, not three tokens
    await refused(limits.admit_scans("alice", ["c1"]))


@pytest.mark.parametrize(
    ("bucket", "now", "cost", "after", "wait"),
    [
        (None, 10.0, 1, Bucket(1.0, 10.0), 0.0),  # none is full
        (Bucket(0.0, 10.0), 10.0, 1, Bucket(0.0, 10.0), 2.0),
        (Bucket(0.0, 10.0), 11.0, 1, Bucket(0.5, 11.0), 1.0),
        (Bucket(0.5, 10.0), 11.0, 1, Bucket(0.0, 11.0), 0.0),
        (Bucket(1.0, 10.0), 100.0, 2, Bucket(0.0, 100.0), 0.0),  # refilled to the burst only
        (Bucket(1.0, 10.0), 5.0, 1, Bucket(0.0, 10.0), 0.0),  # a clock that went back
        (Bucket(0.0, 10.0), 5.0, 1, Bucket(0.0, 10.0), 2.0),  # ... refills nothing
    ],
)
def test_take(bucket, now, cost, after, wait):
    assert take(bucket, now, rate=0.5, burst=2, cost=cost) == (after, wait)


def test_retry_after_is_whole_seconds_and_never_zero():
    assert [retry_after(s) for s in (0.0, 0.001, 1.0, 1.2, 59.99)] == [1, 1, 1, 2, 60]
    assert retry_after(1e9) == math.ceil(1e9)


def test_a_start_costs_a_token_up_to_a_full_bucket():
    assert [start_cost(n, 3) for n in (1, 2, 3, 4, 100)] == [1, 2, 3, 3, 3]
