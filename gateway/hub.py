"""The channel hub: live fan-out of a scan's events to its subscribers.

A channel exists while a scan has subscribers. Each subscriber owns a bounded ``asyncio.Queue``
of events; the frame bytes inside an event are encoded once and shared. A subscriber whose queue
is full has fallen too far behind: it is cut off (it can reconnect and catch up from the log)
instead of slowing the others or growing without bound.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from .models import Event

__all__ = [
    "Bus",
    "BusStats",
    "EndOfStream",
    "Hub",
    "ShuttingDown",
    "SlowSubscriber",
    "Subscription",
]


class EndOfStream(enum.Enum):
    """What a subscription yields instead of an event when its live feed ends."""

    TERMINAL = "terminal"  # the scan's terminal event was published
    SLOW = "slow"  # the subscriber fell too far behind and was cut off
    SHUTDOWN = "shutdown"  # the gateway is shutting down


class SlowSubscriber(Exception):
    """The subscriber's buffer overflowed; it must resume from the log."""


class ShuttingDown(Exception):
    """The gateway is stopping; the subscriber should resume elsewhere."""


class Subscription:
    """One subscriber's view of a channel: an async iterator over live events."""

    def __init__(self, scan_id: str, buffer: int) -> None:
        self.scan_id = scan_id
        self.limit = buffer
        # One slot beyond the limit for the end marker, so it always fits.
        self.queue: asyncio.Queue[Event | EndOfStream] = asyncio.Queue(maxsize=buffer + 1)
        self.ended: EndOfStream | None = None

    def offer(self, event: Event) -> bool:
        """Queue an event; False (and the subscription ends) if the subscriber is too slow."""
        if self.ended is not None:
            return False
        if self.queue.qsize() >= self.limit:
            self.end(EndOfStream.SLOW)
            return False
        self.queue.put_nowait(event)
        if event.terminal:
            self.end(EndOfStream.TERMINAL)
        return True

    def end(self, reason: EndOfStream) -> None:
        if self.ended is None:
            self.ended = reason
            self.queue.put_nowait(reason)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            item = await self.queue.get()
            if item is EndOfStream.SLOW:
                raise SlowSubscriber(self.scan_id)
            if item is EndOfStream.SHUTDOWN:
                raise ShuttingDown(self.scan_id)
            if isinstance(item, EndOfStream):
                return
            yield item


@dataclass(slots=True)
class BusStats:
    """Running totals, read by the metrics collector at scrape time (nothing on the hot path
    but an integer add)."""

    published: int = 0  # events handed to the bus
    delivered: int = 0  # event copies queued for subscribers
    slow_disconnects: int = 0


class Bus(ABC):
    """Live event delivery. The embedded hub is in-process; a shared one comes later."""

    stats: BusStats

    @abstractmethod
    def subscriber_counts(self) -> list[int]:
        """The number of subscribers of each open channel."""

    @abstractmethod
    def publish(self, event: Event) -> None: ...

    @abstractmethod
    def subscribe(self, scan_id: str) -> AbstractContextManager[Subscription]:
        """Register for live events; leaving the block unregisters."""


class Hub(Bus):
    def __init__(self, *, subscriber_buffer: int) -> None:
        if subscriber_buffer < 1:
            raise ValueError("subscriber_buffer must be at least 1")
        self._buffer = subscriber_buffer
        self._channels: dict[str, set[Subscription]] = {}
        self._subscriptions = 0  # open ones, counted apart from channels: a terminal event
        # drops its channel while its subscribers are still sending their last frames
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = BusStats()

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._channels.values())

    def subscriber_counts(self) -> list[int]:
        return [len(subs) for subs in self._channels.values()]

    async def wait_idle(self) -> None:
        """Return once every subscriber has left."""
        await self._idle.wait()

    def publish(self, event: Event) -> None:
        self.stats.published += 1
        subscribers = self._channels.get(event.scan_id)
        if not subscribers:
            return
        for sub in list(subscribers):
            if sub.offer(event):
                self.stats.delivered += 1
            else:
                subscribers.discard(sub)
                self.stats.slow_disconnects += sub.ended is EndOfStream.SLOW
        if event.terminal:
            # Everyone got the end; the channel has nothing more to carry.
            del self._channels[event.scan_id]

    @contextmanager
    def subscribe(self, scan_id: str) -> Iterator[Subscription]:
        sub = Subscription(scan_id, self._buffer)
        self._channels.setdefault(scan_id, set()).add(sub)
        self._subscriptions += 1
        self._idle.clear()
        try:
            yield sub
        finally:
            subscribers = self._channels.get(scan_id)
            if subscribers is not None:
                subscribers.discard(sub)
                if not subscribers:
                    del self._channels[scan_id]
            self._subscriptions -= 1
            if not self._subscriptions:
                self._idle.set()
