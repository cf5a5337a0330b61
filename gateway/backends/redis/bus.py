"""Live events for replicas sharing Redis: each replica reads a scan's Redis Stream once.

Whichever replica appends an event, every replica with a subscriber to that scan sees it: one
reader task per scan per replica blocks on ``XREAD`` and publishes what it reads to the local
hub, whose per-scan channels fan it out exactly as in a single process. A reader starts from the
log's end as it was just after its first subscriber joined the hub, before that subscriber reads
the log, so every event is either in what the subscriber replays or reaches it live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import Event
from gateway.engine.hub import Bus, EndOfStream, Hub, Subscription

__all__ = ["LogTail", "RedisBus"]

log = logging.getLogger(__name__)


class LogTail(Protocol):
    """What the bus needs from the shared store."""

    async def position(self, scan_id: str) -> tuple[int, bool]:
        """The scan's last sequence number, and whether that event ended it."""

    async def tail(self, scan_id: str, after: int, *, block_ms: int) -> list[Event]: ...


class _Reader:
    __slots__ = ("ready", "task", "users")

    def __init__(self) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.users = 0


class RedisBus(Bus):
    def __init__(self, hub: Hub, *, block_ms: int = 10_000) -> None:
        self._hub = hub
        self._block_ms = block_ms
        self._log: LogTail | None = None
        self._readers: dict[str, _Reader] = {}
        self.stats = hub.stats

    def attach(self, log_tail: LogTail) -> None:
        self._log = log_tail

    def subscriber_counts(self) -> list[int]:
        return self._hub.subscriber_counts()

    def publish(self, event: Event) -> None:
        self._hub.publish(event)

    async def wait_idle(self) -> None:
        await self._hub.wait_idle()

    def subscribe(self, scan_id: str) -> _Subscribing:
        return _Subscribing(self, scan_id)

    def _join(self, scan_id: str) -> _Reader:
        """The scan's reader, started for its first subscriber, with one more user."""
        reader = self._readers.get(scan_id)
        if reader is None:
            reader = self._readers[scan_id] = _Reader()
            reader.task = asyncio.create_task(self._read(scan_id, reader), name=f"xread {scan_id}")
        reader.users += 1
        return reader

    def _leave(self, scan_id: str, reader: _Reader) -> None:
        """One user less; the last one stops the reader."""
        reader.users -= 1
        if not reader.users:
            if self._readers.get(scan_id) is reader:
                del self._readers[scan_id]
            if reader.task is not None:
                reader.task.cancel()

    async def _read(self, scan_id: str, reader: _Reader) -> None:
        assert self._log is not None, "attach the store first"
        try:
            after, ended = await self._log.position(scan_id)
            reader.ready.set_result(None)
            if ended:
                return  # nothing more will come: subscribers read it all from the log
            while self._readers.get(scan_id) is reader:  # a cancel may be swallowed (3.11)
                events = await self._log.tail(scan_id, after, block_ms=self._block_ms)
                for event in events:
                    self._hub.publish(event)
                if events:
                    after = events[-1].seq
                    if events[-1].terminal:
                        return
        except Exception as exc:
            # The subscribers cannot be fed: they reconnect, and resume from their last id.
            if isinstance(exc, StoreUnavailable):
                log.warning("live feed of scan %s lost: %s", scan_id, exc)
            else:
                log.exception("live feed of scan %s failed", scan_id)
            if not reader.ready.done():
                reader.ready.set_exception(StoreUnavailable("the live feed failed"))
            self._hub.end_channel(scan_id, EndOfStream.UNAVAILABLE)
        finally:
            if not reader.ready.done():
                reader.ready.cancel()
            # A later subscriber starts a reader of its own rather than join a dead one.
            if self._readers.get(scan_id) is reader:
                del self._readers[scan_id]


class _Subscribing:
    """``async with bus.subscribe(scan_id) as sub``: a plain object rather than a generator,
    since every open stream holds one (as the hub's own, which it holds)."""

    __slots__ = ("_bus", "_joined", "_reader", "_scan_id")

    def __init__(self, bus: RedisBus, scan_id: str) -> None:
        self._bus = bus
        self._scan_id = scan_id
        self._joined = bus._hub.subscribe(scan_id)
        self._reader: _Reader | None = None

    async def __aenter__(self) -> Subscription:
        sub = await self._joined.__aenter__()
        try:
            self._reader = self._bus._join(self._scan_id)
            await asyncio.shield(self._reader.ready)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return sub

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._reader is not None:
                self._bus._leave(self._scan_id, self._reader)
        finally:
            await self._joined.__aexit__(*exc_info)
