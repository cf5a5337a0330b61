"""The channel hub: live fan-out of a scan's events to its subscribers.

A channel exists while a scan has subscribers. Publishing puts the event on the channel's
``asyncio.Queue``; one fan-out task per channel takes whatever has queued up as one batch and
hands it to every subscriber. A subscriber that is following live has a sink (its client's
socket): while the socket's buffer is below its high-water mark the batch is written there at
once, encoded once per batch (by the first sink that writes it) and shared by all
subscribers, with no task woken per subscriber. Otherwise the events wait in the subscriber's
bounded pending list for its own task to send; one that falls more than ``subscriber_buffer``
events behind is cut off (it can reconnect and catch up from the log) instead of slowing the
others or growing without bound.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from gateway.domain.models import Event

__all__ = [
    "Batch",
    "Bus",
    "BusStats",
    "EndOfStream",
    "FeedUnavailable",
    "Hub",
    "ShuttingDown",
    "Sink",
    "SlowSubscriber",
    "Subscription",
    "Written",
]

log = logging.getLogger(__name__)


class EndOfStream(enum.Enum):
    """Why a subscription's live feed ended."""

    TERMINAL = "terminal"  # the scan's terminal event was sent
    SLOW = "slow"  # the subscriber fell too far behind and was cut off
    SHUTDOWN = "shutdown"  # the gateway is shutting down (or asks the client to reconnect)
    DISCONNECTED = "disconnected"  # the client went away
    UNAVAILABLE = "unavailable"  # the live feed was lost (the shared store does not answer)
    EXPIRED = "expired"  # the subscriber's credential expired


class SlowSubscriber(Exception):
    """The subscriber's buffer overflowed; it must resume from the log."""


class ShuttingDown(Exception):
    """The gateway is stopping; the subscriber should resume elsewhere."""


class FeedUnavailable(Exception):
    """The live feed was lost; the subscriber should reconnect and resume."""


class Batch:
    """Events published together, handed to every subscriber as one object."""

    __slots__ = ("encoded", "events")

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        # The events as the subscribers' connections carry them (the wire layer's encodings,
        # one per framing): made by the first sink that writes the batch and reused by the
        # others. The hub never reads it.
        self.encoded: tuple[bytes, ...] | None = None


class Written(enum.Enum):
    WROTE = "wrote"
    BEHIND = "behind"  # the client's socket buffer is above its high-water mark
    GONE = "gone"  # the client went away


WROTE, BEHIND, GONE = Written.WROTE, Written.BEHIND, Written.GONE


class Sink(Protocol):
    """Where a following subscriber's events go without waking its task."""

    def try_write(self, batch: Batch) -> Written:
        """Write the whole batch now if the client keeps up."""

    def heartbeat(self) -> bool:
        """Write a keep-alive unless the client is behind; False if it has gone away."""


class Subscription:
    """One subscriber: its sink while it follows live, its pending events otherwise."""

    __slots__ = ("_sink", "_waiter", "ended", "last", "limit", "pending", "scan_id")

    def __init__(self, scan_id: str, limit: int) -> None:
        self.scan_id = scan_id
        self.limit = limit
        self.pending: list[Event] = []
        self.ended: EndOfStream | None = None
        self.last = 0  # the highest sequence number the client was sent
        self._sink: Sink | None = None
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, batch: Batch) -> bool:
        """Take a published batch; False once the subscription has ended."""
        if self.ended is not None:
            return False
        events = batch.events
        sink = self._sink
        if sink is not None and not self.pending:
            if events[0].seq <= self.last:  # sent from the log just before following live
                events = [event for event in events if event.seq > self.last]
                if not events:
                    return True
                batch = Batch(events)
            if events[0].seq == self.last + 1:  # else a gap: the log must fill it
                written = sink.try_write(batch)
                if written is WROTE:
                    self.last = events[-1].seq
                    if events[-1].terminal:
                        self.end(EndOfStream.TERMINAL)
                    return True
                if written is GONE:
                    self.end(EndOfStream.DISCONNECTED)
                    return False
        # The client is behind (or a gap needs filling): its own task sends these.
        if len(self.pending) + len(events) > self.limit:
            self.end(EndOfStream.SLOW)  # what is pending is still sent, then the cut
            return False
        self.pending.extend(events)
        self._wake()
        return True

    def follow(self, sink: Sink) -> bool:
        """Send live events straight to ``sink`` from now on; False if some are pending."""
        if self.pending or self.ended is not None:
            return False
        self._sink = sink
        return True

    def take(self) -> list[Event]:
        """The pending events, for the subscriber's task to send; live events queue meanwhile."""
        self._sink = None
        pending, self.pending = self.pending, []
        return pending

    def wait(self) -> asyncio.Future[None]:
        """What to await until there is something pending or the subscription has ended: a
        future rather than a coroutine, so that an idle stream keeps no frame for it."""
        waiter = asyncio.get_running_loop().create_future()
        if self.pending or self.ended is not None:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter

    def end(self, reason: EndOfStream) -> None:
        if self.ended is None:
            self.ended = reason
            self._sink = None
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():  # done: its waiter was cancelled
            waiter.set_result(None)

    @property
    def sink(self) -> Sink | None:
        return self._sink


@dataclass(slots=True)
class BusStats:
    """Running totals, read by the metrics collector at scrape time (nothing on the hot path
    but an integer add)."""

    published: int = 0  # events handed to the bus
    delivered: int = 0  # event copies handed to subscribers
    slow_disconnects: int = 0


class Bus(ABC):
    """Live event delivery to this process's subscribers."""

    stats: BusStats

    @abstractmethod
    def subscriber_counts(self) -> list[int]:
        """The number of subscribers of each open channel."""

    @abstractmethod
    def publish(self, event: Event) -> None: ...

    @abstractmethod
    def subscribe(self, scan_id: str) -> AbstractAsyncContextManager[Subscription]:
        """Register for live events; leaving the block unregisters. Every event appended
        after the block is entered is delivered (or the subscription ends)."""

    @abstractmethod
    async def wait_idle(self) -> None:
        """Return once every subscriber has left."""


class _Channel:
    __slots__ = ("last", "queue", "subscribers", "task")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.subscribers: set[Subscription] = set()
        self.task: asyncio.Task[None] | None = None
        self.last = 0  # the highest sequence number handed out


class Hub(Bus):
    def __init__(self, *, subscriber_buffer: int) -> None:
        if subscriber_buffer < 1:
            raise ValueError("subscriber_buffer must be at least 1")
        self._buffer = subscriber_buffer
        self._channels: dict[str, _Channel] = {}
        self._subscriptions = 0  # open ones, counted apart from channels: a terminal event
        # drops its channel while its subscribers are still sending their last frames
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = BusStats()

    def subscriber_counts(self) -> list[int]:
        return [len(channel.subscribers) for channel in self._channels.values()]

    async def wait_idle(self) -> None:
        """Return once every subscriber has left."""
        await self._idle.wait()

    def publish(self, event: Event) -> None:
        self.stats.published += 1
        channel = self._channels.get(event.scan_id)
        if channel is not None:
            channel.queue.put_nowait(event)

    async def _fan_out(self, scan_id: str, channel: _Channel) -> None:
        queue = channel.queue
        while True:
            received = [await queue.get()]
            while not queue.empty():
                received.append(queue.get_nowait())
            # A log's events come in order; one seen twice (two feeds overlapping) goes once.
            events = []
            for event in received:
                if event.seq > channel.last:
                    events.append(event)
                    channel.last = event.seq
            try:
                if events:
                    self._deliver(channel, Batch(events))
            except Exception:  # a bug here must not silence the channel for good
                log.exception("fan-out of scan %s failed", scan_id)
            for _ in received:
                queue.task_done()
            if events and events[-1].terminal:
                # Everyone got the end; the channel has nothing more to carry.
                if self._channels.get(scan_id) is channel:
                    del self._channels[scan_id]
                return

    def _deliver(self, channel: _Channel, batch: Batch) -> None:
        subscribers = channel.subscribers
        for sub in list(subscribers):
            if sub.offer(batch):
                self.stats.delivered += len(batch.events)
            else:
                subscribers.discard(sub)
                self.stats.slow_disconnects += sub.ended is EndOfStream.SLOW

    def end_channel(self, scan_id: str, reason: EndOfStream) -> None:
        """End every subscription of a scan (its subscribers reconnect and resume)."""
        channel = self._channels.get(scan_id)
        if channel is not None:
            for sub in channel.subscribers:
                sub.end(reason)

    def subscribe(self, scan_id: str) -> _Subscribing:
        return _Subscribing(self, scan_id)

    def _join(self, scan_id: str) -> Subscription:
        sub = Subscription(scan_id, self._buffer)
        channel = self._channels.get(scan_id)
        if channel is None:
            channel = self._channels[scan_id] = _Channel()
            channel.task = asyncio.get_running_loop().create_task(
                self._fan_out(scan_id, channel), name=f"fan-out {scan_id}"
            )
        channel.subscribers.add(sub)
        self._subscriptions += 1
        self._idle.clear()
        return sub

    def _leave(self, sub: Subscription) -> None:
        sub.end(EndOfStream.DISCONNECTED)
        channel = self._channels.get(sub.scan_id)
        if channel is not None:
            # The fan-out may have dropped it already (cut off, or gone): the channel still
            # closes with its last subscriber.
            channel.subscribers.discard(sub)
            if not channel.subscribers:
                del self._channels[sub.scan_id]
                if channel.task is not None:
                    channel.task.cancel()
        self._subscriptions -= 1
        if not self._subscriptions:
            self._idle.set()


class _Subscribing:
    """``async with hub.subscribe(scan_id) as sub``: a plain object rather than a generator,
    since every open stream holds one."""

    __slots__ = ("_hub", "_scan_id", "_sub")

    def __init__(self, hub: Hub, scan_id: str) -> None:
        self._hub = hub
        self._scan_id = scan_id
        self._sub: Subscription | None = None

    async def __aenter__(self) -> Subscription:
        self._sub = self._hub._join(self._scan_id)
        return self._sub

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sub is not None:
            self._hub._leave(self._sub)
