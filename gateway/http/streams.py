"""The registry of open event streams: counted in the limits, heartbeats, the shutdown notice.

A stream told to reconnect (its process drains or stops) is sent a ``retry:`` delay of
``retry_ms`` plus a random share of ``spread_ms``: thousands of clients closed at one instant
then come back spread over that window instead of in the same millisecond.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

from gateway.engine.hub import EndOfStream, Subscription
from gateway.engine.limits import Limits

__all__ = ["StreamRegistry"]

log = logging.getLogger(__name__)


class StreamRegistry:
    def __init__(self, limits: Limits, *, retry_ms: int, spread_ms: int = 0) -> None:
        if retry_ms < 0 or spread_ms < 0:
            raise ValueError("retry_ms and spread_ms must not be negative")
        self._limits = limits
        self._retry_ms = retry_ms
        self._spread_ms = spread_ms
        self._open: dict[Subscription, str] = {}  # subscription -> its id in the limits
        self.closing = False
        self.replayed = 0  # events sent from the log rather than live

    def __len__(self) -> int:
        return len(self._open)

    async def add(self, subject: str, subscription: Subscription) -> None:
        """Count a stream for ``subject`` until ``remove``, or refuse it (429; 503 when a
        shared store cannot count it)."""
        stream_id = uuid.uuid4().hex
        await self._limits.open_stream(subject, stream_id)
        if self.closing:
            subscription.end(EndOfStream.SHUTDOWN)
        self._open[subscription] = stream_id

    async def remove(self, subscription: Subscription) -> None:
        await self._limits.close_stream(self._open.pop(subscription))

    async def heartbeat(self, interval: float) -> None:
        """Every ``interval``, a heartbeat to each stream following live, so that proxies keep
        idle streams open and a client that went away is noticed: one task for all streams."""
        while True:
            await asyncio.sleep(interval)
            for subscription in list(self._open):
                sink = subscription.sink
                try:
                    if sink is not None and not sink.heartbeat():
                        subscription.end(EndOfStream.DISCONNECTED)
                except Exception:  # one broken connection must not stop the heartbeat
                    log.exception("heartbeat to a stream of scan %s failed", subscription.scan_id)
                    subscription.end(EndOfStream.DISCONNECTED)

    def count_replayed(self, events: int) -> None:
        self.replayed += events

    def reconnect_ms(self) -> int:
        """The ``retry:`` delay for one stream told to reconnect: spread over the window."""
        return self._retry_ms + random.randint(0, self._spread_ms)

    def shutdown(self) -> None:
        """Tell every open stream to wind up (each sends a reconnect hint, ``reconnect_ms``, and
        closes), and every stream opened from now on once it has replayed the log."""
        if not self.closing:
            log.info("telling %d open stream(s) to reconnect", len(self._open))
        self.closing = True
        for subscription in list(self._open):
            subscription.end(EndOfStream.SHUTDOWN)
