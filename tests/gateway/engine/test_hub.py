"""The channel hub: batched fan-out, direct writes, bounded buffers, release of everything."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.domain.models import Event
from gateway.engine.hub import Batch, EndOfStream, Hub, Written
from gateway.http.appkeys import BUS
from tests.helpers import auth, channels, start_scan, subscribers


def event(seq: int, terminal: bool = False, scan_id: str = "s") -> Event:
    return Event(scan_id, seq, json.dumps({"n": seq}), terminal)


class ListSink:
    """A client socket stand-in: records what the fan-out writes straight to it."""

    def __init__(self, *, ready: bool = True) -> None:
        self.writes: list[Batch] = []
        self.is_ready = ready
        self.gone = False
        self._written: asyncio.Future[None] | None = None

    def try_write(self, batch: Batch) -> Written:
        if self.gone:
            return Written.GONE
        if not self.is_ready:
            return Written.BEHIND
        self.writes.append(batch)
        if self._written is not None and not self._written.done():
            self._written.set_result(None)
        return Written.WROTE

    def heartbeat(self) -> bool:
        return not self.gone

    def seqs(self) -> list[int]:
        return [event.seq for batch in self.writes for event in batch.events]

    async def until(self, seq: int) -> None:
        """Wait until event ``seq`` was written here. The fan-out offers a batch to every
        subscriber of the channel in one pass, so the others have been offered it too."""
        async with asyncio.timeout(5):
            while seq not in self.seqs():
                self._written = asyncio.get_running_loop().create_future()
                await self._written


async def test_batch_is_made_once_and_shared_by_every_following_subscriber():
    hub = Hub(subscriber_buffer=10)
    async with hub.subscribe("s") as a, hub.subscribe("s") as b, hub.subscribe("other") as c:
        assert (channels(hub), subscribers(hub)) == (2, 3)
        sinks = [ListSink(), ListSink(), ListSink()]
        for sub, sink in zip((a, b, c), sinks, strict=True):
            assert sub.follow(sink)
        for seq in (1, 2, 3):
            hub.publish(event(seq))  # nothing yields in between: one batch
        await sinks[0].until(3)
        assert [list(batch.events) for batch in sinks[0].writes] == [[event(1), event(2), event(3)]]
        assert sinks[0].writes == sinks[1].writes
        assert sinks[0].writes[0] is sinks[1].writes[0], "one batch for all, not per subscriber"
        assert sinks[2].writes == []
        assert not a.pending, "nothing waited for the subscriber's own task"
        hub.publish(event(4, terminal=True))
        await sinks[0].until(4)
        assert sinks[0].seqs() == [1, 2, 3, 4]
        assert a.ended is b.ended is EndOfStream.TERMINAL
        assert channels(hub) == 1, "a channel closes with its terminal event"
    assert (channels(hub), subscribers(hub)) == (0, 0)
    await asyncio.wait_for(hub.wait_idle(), 1)


async def test_events_already_sent_from_the_log_are_skipped_and_a_gap_goes_to_the_task():
    hub = Hub(subscriber_buffer=10)
    async with hub.subscribe("s") as sub:
        sink = ListSink()
        sub.last = 2
        assert sub.follow(sink)
        hub.publish(event(2))
        hub.publish(event(3))
        await sink.until(3)
        assert sink.seqs() == [3], "seq 2 was sent from the log already"
        hub.publish(event(5))  # 4 is missing: only the log can fill it
        await asyncio.wait_for(sub.wait(), 1)
        assert sink.seqs() == [3]
        assert [e.seq for e in sub.take()] == [5]
        assert sub.sink is None, "while its task sends, live events queue"


async def test_subscriber_behind_its_high_water_mark_queues_then_is_cut_off():
    hub = Hub(subscriber_buffer=3)
    async with hub.subscribe("s") as slow, hub.subscribe("s") as fast:
        slow_sink, fast_sink = ListSink(ready=False), ListSink()
        assert slow.follow(slow_sink) and fast.follow(fast_sink)
        for seq in range(1, 4):
            hub.publish(event(seq))
            await fast_sink.until(seq)
        assert [e.seq for e in slow.pending] == [1, 2, 3]
        assert slow.ended is None
        assert not slow.follow(slow_sink), "it may follow live only once its queue is sent"
        hub.publish(event(4))
        await fast_sink.until(4)
        assert slow.ended is EndOfStream.SLOW
        assert hub.stats.slow_disconnects == 1
        assert subscribers(hub) == 1
        assert slow_sink.writes == []
        assert fast_sink.seqs() == [1, 2, 3, 4], "the others were not slowed"


async def test_a_client_gone_away_is_dropped_at_the_next_write():
    hub = Hub(subscriber_buffer=3)
    async with hub.subscribe("s") as sub:
        sink = ListSink()
        assert sub.follow(sink)
        sink.gone = True
        hub.publish(event(1))
        await asyncio.wait_for(sub.wait(), 1)
        assert sub.ended is EndOfStream.DISCONNECTED
        assert subscribers(hub) == 0


async def test_publish_without_subscribers_keeps_nothing():
    hub = Hub(subscriber_buffer=1)
    hub.publish(event(1))
    assert channels(hub) == 0


def test_buffer_must_be_positive():
    with pytest.raises(ValueError, match="subscriber_buffer"):
        Hub(subscriber_buffer=0)


async def test_stream_of_a_client_that_stops_reading_ends_with_a_comment(gateway):
    client = await gateway(
        stream={"subscriber_buffer": 5, "write_high_water_bytes": 1024},
        mock={"step_delay_seconds": 30},
    )
    scan_id = await start_scan(client)
    hub = client.app[BUS]
    payload = "x" * 65536
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        received = await response.content.readuntil(b"id: 2\n")
        await response.content.readuntil(b"\n\n")
        # The client reads nothing more: socket buffers fill, then its queue, then the cut.
        published = 2
        async with hub.subscribe(scan_id) as probe:  # offered each event when the stream is
            probe.last = published
            while not hub.stats.slow_disconnects and published < 2000:
                published += 1
                data = json.dumps({"seq": published, "p": payload})
                hub.publish(Event(scan_id, published, data, False))
                await asyncio.wait_for(probe.wait(), 5)
                assert [e.seq for e in probe.take()] == [published]
        assert hub.stats.slow_disconnects == 1
        received += await response.content.read()
    assert b"fell too far behind" in received
    ids = [int(line[4:]) for line in received.split(b"\n") if line.startswith(b"id: ")]
    assert ids == list(range(1, ids[-1] + 1)), "every event up to the cut, in order"
    assert ids[-1] < published
    assert subscribers(hub) == 0


async def test_an_event_published_twice_goes_out_once():
    """Two feeds overlapping (a Redis reader replaced by the next) must not duplicate."""
    hub = Hub(subscriber_buffer=10)
    async with hub.subscribe("s") as sub:
        sink = ListSink()
        assert sub.follow(sink)
        for seq in (1, 2, 2, 3, 1, 3, 4):
            hub.publish(event(seq))
        await sink.until(4)
        assert sink.seqs() == [1, 2, 3, 4]


async def test_channel_closes_when_its_last_subscriber_leaves_after_being_dropped():
    hub = Hub(subscriber_buffer=10)
    async with hub.subscribe("s") as sub:
        sink = ListSink()
        assert sub.follow(sink)
        sink.gone = True
        hub.publish(event(1))  # the fan-out finds the client gone and drops it
        await asyncio.wait_for(sub.wait(), 1)
        assert hub.subscriber_counts() == [0]
    assert channels(hub) == 0, "no channel (nor fan-out task) left without a terminal event"
    left = [t for t in asyncio.all_tasks() if t.get_name() == "fan-out s" and not t.done()]
    assert all(t.cancelling() for t in left), "its fan-out task is being stopped"
