"""The registry of open event streams: counted in the limits, heartbeats, credential expiry,
the shutdown notice.

A stream whose credential expires is ended (``EndOfStream.EXPIRED``) when it does: the
deadlines of all streams are kept in one heap with one timer for the earliest, rather than a
timer per stream (half a kilobyte each, for each of thousands of idle streams).

A stream told to reconnect (its process drains or stops) is sent a ``retry:`` delay of
``retry_ms`` plus a random share of ``spread_ms``: thousands of clients closed at one instant
then come back spread over that window instead of in the same millisecond.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
import uuid

from gateway.engine.hub import EndOfStream, Subscription
from gateway.engine.limits import Limits

__all__ = ["COLLECTION_STREAM_ROUTE", "STREAM_ROUTE", "STREAM_ROUTES", "StreamRegistry"]

# The routes that serve streams: a scan's, a collection's (tickets open them, metrics leave
# them out).
STREAM_ROUTE = "scan-stream"
COLLECTION_STREAM_ROUTE = "collection-stream"
STREAM_ROUTES = frozenset({STREAM_ROUTE, COLLECTION_STREAM_ROUTE})

log = logging.getLogger(__name__)


class StreamRegistry:
    def __init__(self, limits: Limits, *, retry_ms: int, spread_ms: int = 0) -> None:
        if retry_ms < 0 or spread_ms < 0:
            raise ValueError("retry_ms and spread_ms must not be negative")
        self._limits = limits
        self._retry_ms = retry_ms
        self._spread_ms = spread_ms
        self._open: dict[Subscription, str] = {}  # subscription -> its id in the limits
        # (loop time its credential expires, order added, subscription), earliest first. A
        # removed stream's entry goes when it reaches the top, or when such entries are half.
        self._deadlines: list[tuple[float, int, Subscription]] = []
        self._order = itertools.count()
        # uvloop arms a deadline already due as a plain Handle, which has no when(): the
        # deadline the timer is armed for is kept here.
        self._timer: asyncio.Handle | None = None
        self._timer_at: float | None = None
        self.closing = False
        self.replayed = 0  # events sent from the log rather than live

    def __len__(self) -> int:
        return len(self._open)

    async def add(
        self, subject: str, subscription: Subscription, expires_at: float | None = None
    ) -> None:
        """Count a stream for ``subject`` until ``remove``, or refuse it (429; 503 when a
        shared store cannot count it). At ``expires_at`` (epoch seconds), when its credential
        expires, the stream is ended."""
        stream_id = uuid.uuid4().hex
        await self._limits.open_stream(subject, stream_id)
        if self.closing:
            subscription.end(EndOfStream.SHUTDOWN)
        self._open[subscription] = stream_id
        if expires_at is not None:
            loop = asyncio.get_running_loop()
            when = loop.time() + (expires_at - time.time())
            heapq.heappush(self._deadlines, (when, next(self._order), subscription))
            self._arm()

    async def remove(self, subscription: Subscription) -> None:
        stream_id = self._open.pop(subscription)
        try:
            self._arm()
        finally:  # whatever happens, the stream's place in the limits is given back
            await self._limits.close_stream(stream_id)

    @property
    def deadlines(self) -> int:
        """A seam for tests: the credential deadlines held, one per open stream whose
        credential expires, and at most twice as many as open streams (a removed stream's
        entry may wait until it reaches the top)."""
        return len(self._deadlines)

    def _arm(self) -> None:
        """Drop the deadlines of removed streams, then arm the one timer for the earliest."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][2] not in self._open:
            heapq.heappop(deadlines)
        if len(deadlines) > 2 * len(self._open) + 16:  # removed streams' entries deeper down
            deadlines[:] = [entry for entry in deadlines if entry[2] in self._open]
            heapq.heapify(deadlines)
        first = deadlines[0][0] if deadlines else None
        if self._timer is not None and self._timer_at != first:
            self._timer.cancel()
            self._timer = None
        if first is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(first, self._expire, first)
            self._timer_at = first

    def _expire(self, when: float) -> None:
        """End every stream whose credential expired by ``when`` (the timer may run a little
        before the loop's clock reaches it)."""
        self._timer = None
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= when:
            subscription = heapq.heappop(deadlines)[2]
            if subscription in self._open:
                subscription.end(EndOfStream.EXPIRED)
        self._arm()

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
