"""The stream registry's credential expiry: one deadline heap and one timer for all streams."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import uvloop

from gateway.config import LimitsConfig
from gateway.engine.hub import EndOfStream, Subscription
from gateway.engine.local_limits import LocalLimits
from gateway.http.streams import StreamRegistry


def registry() -> StreamRegistry:
    return StreamRegistry(LocalLimits(LimitsConfig(max_streams_per_subject=1000)), retry_ms=3000)


def subscription(scan_id: str = "scan") -> Subscription:
    return Subscription(scan_id, limit=100)


@pytest.fixture
async def timers(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.TimerHandle]:
    """Every timer the registry arms on the running loop (watched through ``call_at``)."""
    loop = asyncio.get_running_loop()
    armed: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def watched(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        handle = call_at(when, callback, *args, **kwargs)
        if isinstance(getattr(callback, "__self__", None), StreamRegistry):
            armed.append(handle)
        return handle

    monkeypatch.setattr(loop, "call_at", watched)
    return armed


def pending(timers: list[asyncio.TimerHandle]) -> list[asyncio.TimerHandle]:
    now = asyncio.get_running_loop().time()
    return [handle for handle in timers if not handle.cancelled() and handle.when() > now]


async def test_many_expiring_streams_share_one_timer(timers):
    streams = registry()
    subs = [subscription() for _ in range(50)]
    for index, sub in enumerate(subs):  # later deadlines, then earlier ones
        await streams.add("alice", sub, time.time() + 600 + (index % 7) - index)
    assert streams.deadlines == 50
    assert len(pending(timers)) == 1, "one timer for all streams, not one per stream"
    assert pending(timers)[0].when() == pytest.approx(
        asyncio.get_running_loop().time() + 600 - 49 + 49 % 7, abs=1
    )
    for sub in subs:
        await streams.remove(sub)
    assert streams.deadlines == 0
    assert pending(timers) == [], "no timer once no stream expires"


async def test_the_heap_ends_each_stream_when_its_credential_expires():
    streams = registry()
    soon, later, never = subscription(), subscription(), subscription()
    await streams.add("alice", later, time.time() + 0.2)
    await streams.add("alice", soon, time.time() + 0.05)
    await streams.add("bob", never)
    assert streams.deadlines == 2
    await asyncio.wait_for(soon.wait(), 5)
    assert soon.ended is EndOfStream.EXPIRED
    assert later.ended is None
    await asyncio.wait_for(later.wait(), 5)
    assert later.ended is EndOfStream.EXPIRED
    assert never.ended is None
    assert streams.deadlines == 0


async def test_a_removed_stream_leaves_the_heap_and_is_not_ended(timers):
    streams = registry()
    first, second = subscription(), subscription()
    await streams.add("alice", first, time.time() + 0.05)
    await streams.add("alice", second, time.time() + 600)
    await streams.remove(first)
    assert streams.deadlines == 1, "the removed stream's deadline went with it"
    assert [handle.when() for handle in pending(timers)] == [
        pytest.approx(asyncio.get_running_loop().time() + 600, abs=1)
    ], "the timer moved on to the next stream's deadline"
    await asyncio.sleep(0.1)  # past the removed stream's deadline: nothing fires for it
    assert first.ended is None


async def test_removed_streams_deep_in_the_heap_do_not_pile_up():
    streams = registry()
    keep = subscription()
    await streams.add("alice", keep, time.time() + 60)  # the top stays, so removals are deeper
    for _ in range(10):
        batch = [subscription() for _ in range(100)]
        for sub in batch:
            await streams.add("alice", sub, time.time() + 3600)
        for sub in batch:
            await streams.remove(sub)
    assert streams.deadlines <= 2 * len(streams) + 16


async def test_an_already_expired_credential_ends_the_stream_at_once():
    streams = registry()
    late = subscription()
    await streams.add("alice", late, time.time() - 1)
    await asyncio.wait_for(late.wait(), 5)
    assert late.ended is EndOfStream.EXPIRED


# uvloop, the loop the gateway serves on (server.uvloop), arms a deadline already due as a
# plain Handle, which has no when(); the suite's other tests run on asyncio's own loop.


def test_on_uvloop_a_deadline_already_due_then_another_stream():
    limits = LocalLimits(LimitsConfig(max_streams_per_subject=2))

    async def main() -> None:
        streams = StreamRegistry(limits, retry_ms=3000)
        late, other = subscription(), subscription()
        await streams.add("alice", late, time.time() - 1)
        await streams.add("alice", other, time.time() + 60)
        await streams.remove(late)
        await streams.remove(other)
        assert len(streams) == 0
        assert streams.deadlines == 0

    uvloop.run(main())


def test_on_uvloop_streams_of_one_token_expire_and_give_their_places_back():
    """Streams opened with one token have deadlines a fraction of a millisecond apart: the
    first expiry arms the timer for the next, due at once, and the first stream is removed
    before that timer runs."""
    limits = LocalLimits(LimitsConfig(max_streams_per_subject=20))

    async def main() -> None:
        streams = StreamRegistry(limits, retry_ms=3000)
        expires_at = time.time() + 0.05
        subs = [subscription() for _ in range(20)]
        for index, sub in enumerate(subs):
            await streams.add("alice", sub, expires_at + index * 0.0003)

        async def serve(sub: Subscription) -> EndOfStream | None:  # as serve_log does
            try:
                await sub.wait()
                return sub.ended
            finally:
                await streams.remove(sub)

        ended = await asyncio.gather(*(serve(sub) for sub in subs))
        assert ended == [EndOfStream.EXPIRED] * 20
        assert len(streams) == 0
        for _ in range(20):  # every place was given back
            await streams.add("alice", subscription())

    uvloop.run(main())
