"""The channel hub: fan-out, bounded buffers, release of everything a channel held."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.appkeys import BUS
from gateway.hub import EndOfStream, Hub, SlowSubscriber
from gateway.models import Event
from tests.conftest import auth, start_scan


def event(seq: int, terminal: bool = False, scan_id: str = "s") -> Event:
    return Event(scan_id, seq, json.dumps({"n": seq}), terminal)


async def collect(sub):
    return [e.seq async for e in sub]


async def test_fan_out_shares_one_frame_and_ends_on_terminal():
    hub = Hub(subscriber_buffer=10)
    with hub.subscribe("s") as a, hub.subscribe("s") as b, hub.subscribe("other") as c:
        assert (hub.channel_count, hub.subscriber_count) == (2, 3)
        first = event(1)
        hub.publish(first)
        hub.publish(event(2, terminal=True))
        assert hub.channel_count == 1, "a channel closes with its terminal event"
        assert await collect(a) == [1, 2]
        assert await collect(b) == [1, 2]
        assert c.queue.empty()
    assert (hub.channel_count, hub.subscriber_count) == (0, 0)
    await asyncio.wait_for(hub.wait_idle(), 1)


async def test_slow_subscriber_is_cut_off_without_slowing_others():
    hub = Hub(subscriber_buffer=3)
    with hub.subscribe("s") as slow, hub.subscribe("s") as fast:
        for seq in range(1, 4):
            hub.publish(event(seq))
            assert fast.queue.get_nowait() == event(seq)  # keeps up
        hub.publish(event(4))
        assert slow.ended is EndOfStream.SLOW
        assert hub.stats.slow_disconnects == 1
        assert hub.subscriber_count == 1
        assert slow.queue.qsize() == 4, "bounded: the buffer plus the end marker"
        received: list[int] = []

        async def drain() -> None:
            async for item in slow:
                received.append(item.seq)

        with pytest.raises(SlowSubscriber):
            await drain()
        assert received == [1, 2, 3], "what was queued is still delivered, in order"
        hub.publish(event(5, terminal=True))
        assert fast.queue.get_nowait() == event(4)
        assert await collect(fast) == [5]


def test_publish_without_subscribers_keeps_nothing():
    hub = Hub(subscriber_buffer=1)
    hub.publish(event(1))
    assert hub.channel_count == 0


def test_buffer_must_be_positive():
    with pytest.raises(ValueError, match="subscriber_buffer"):
        Hub(subscriber_buffer=0)


async def test_stream_of_a_slow_subscriber_ends_with_a_comment(gateway):
    client = await gateway(stream={"subscriber_buffer": 5}, mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    hub = client.app[BUS]
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        received = await response.content.readuntil(b"id: 2\n")
        await response.content.readuntil(b"\n\n")
        # Publish faster than the handler can run: nothing yields between these calls.
        for seq in range(3, 20):
            hub.publish(Event(scan_id, seq, json.dumps({"seq": seq}), False))
        received += await response.content.read()
    assert b"fell too far behind" in received
    ids = [int(line[4:]) for line in received.split(b"\n") if line.startswith(b"id: ")]
    assert ids == list(range(1, 8)), "the five queued events are delivered, then the cut"
    assert hub.subscriber_count == 0
