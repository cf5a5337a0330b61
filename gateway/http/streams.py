"""The registry of open event streams: counted in the limits, heartbeats, the shutdown notice."""

from __future__ import annotations

import asyncio
import logging
import uuid

from gateway.engine.hub import EndOfStream, Subscription
from gateway.engine.limits import Limits

__all__ = ["StreamRegistry"]

log = logging.getLogger(__name__)


class StreamRegistry:
    def __init__(self, limits: Limits) -> None:
        self._open: dict[Subscription, str] = {}  # subscription -> its id in the limits
        self._limits = limits
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

    def shutdown(self) -> None:
        """Tell every open stream to wind up: each sends a reconnect hint and closes."""
        self.closing = True
        for subscription in list(self._open):
            subscription.end(EndOfStream.SHUTDOWN)
