"""The shared store: scan records and per-scan logs in Redis, leases on running scans.

Every gateway replica opens one ``RedisStore`` on the same Redis; ``layout`` says which keys
hold what, ``leases`` how a replica keeps the scans it runs, ``pages`` how the paged reads go.

An append is an optimistic transaction (``transaction``: WATCH ``scan:{id}``, read the state,
``next_event``, MULTI/EXEC, start over if another process wrote first), so logs stay gap-free
whichever replicas write. Within one process, appends to a scan also queue on a lock, which
keeps their listeners in log order and their retries for conflicts with other processes. A
terminal append drops the lease and sets expiries: the log after ``retention_seconds``, the
record and results after ``record_retention_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT

from gateway.backends.redis import pages
from gateway.backends.redis.layout import (
    STATE,
    Entry,
    Keys,
    decode_event,
    decode_record,
    decode_state,
    encode_record,
    queue_event,
)
from gateway.backends.redis.leases import Leases
from gateway.backends.redis.transaction import answering, connect, multi, transaction
from gateway.domain.errors import ScanExists, ScanNotFound, StoreUnavailable
from gateway.domain.models import (
    Event,
    EventDraft,
    FindingsPage,
    NewScan,
    ScanFinished,
    ScanRecord,
    Status,
    new_scan,
)
from gateway.engine.store import Store, next_event

__all__ = ["MAX_BLOCK_MS", "TAIL_COUNT", "RedisStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

SOCKET_TIMEOUT: Final = 15.0  # seconds; above MAX_BLOCK_MS, so a blocked XREAD is not cut short
MAX_BLOCK_MS: Final = 10_000
# Each blocked tail holds a connection of its own: no small cap (Redis's default maxclients).
MAX_CONNECTIONS: Final = 10_000
TAIL_COUNT: Final = 500  # events one tail call returns at most


class RedisStore(Store):
    shared = True  # every replica serves every scan's log

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str,
        retention_seconds: float,
        record_retention_seconds: float,
        lease_seconds: float,
        replica_id: str,
        retry_seconds: float = 0,
    ) -> None:
        super().__init__()
        self.replica_id = replica_id
        self.retry_seconds = retry_seconds
        self._redis = client
        self._keys = Keys(key_prefix)
        self._log_ms = _ms(retention_seconds)
        self._record_ms = _ms(record_retention_seconds)
        # Per scan, an append whose EXEC may or may not have been applied: (draft, event).
        self._unknown: dict[str, tuple[EventDraft, Event]] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._writes: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._leases = Leases(
            client,
            self._keys,
            replica_id=replica_id,
            lease_seconds=lease_seconds,
            appending=self._appending,
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        key_prefix: str = "xployt:",
        retention_seconds: float = 86400,
        record_retention_seconds: float = 604800,
        lease_seconds: float = 15.0,
        replica_id: str | None = None,
        retry_seconds: float = 0,
    ) -> RedisStore:
        if retention_seconds <= 0 or lease_seconds <= 0:
            raise ValueError("retention_seconds and lease_seconds must be positive")
        if record_retention_seconds < retention_seconds:
            raise ValueError("record_retention_seconds must be at least retention_seconds")
        client = await connect(url, socket_timeout=SOCKET_TIMEOUT, max_connections=MAX_CONNECTIONS)
        return cls(
            client,
            key_prefix=key_prefix,
            retention_seconds=retention_seconds,
            record_retention_seconds=record_retention_seconds,
            lease_seconds=lease_seconds,
            replica_id=replica_id or uuid.uuid4().hex,
            retry_seconds=retry_seconds,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        renewer = self._leases.stop()
        await asyncio.wait([renewer, *self._writes])  # writes under way finish
        await self._redis.aclose()

    def release(self, scan_id: str) -> None:
        """Stop renewing a scan's lease: once it lapses, a sweep ends the scan."""
        self._leases.drop(scan_id)

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the id of a scan this replica holds once it has ended
        through another replica (a cancel there, or a sweep after this lease lapsed)."""
        self._leases.on_lost(callback)

    @contextmanager
    def _use(self) -> Iterator[None]:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        with answering():
            yield

    # -- writes -------------------------------------------------------------------------------

    async def create_scan(self, scan: NewScan, first: EventDraft) -> tuple[ScanRecord, Event]:
        with self._use():
            return await self._own(self._create(scan, first))

    async def append_event(
        self,
        scan_id: str,
        draft: EventDraft,
        *,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        skipped_events: int | None = None,
    ) -> Event:
        with self._use():
            event = await self._own(self._append(scan_id, draft, vulnerabilities, skipped_events))
        assert event is not None  # only a sweep's append is skipped
        return event

    async def interrupt_unfinished(self, reason: str) -> list[Event]:
        """End ``failed`` with ``reason`` every running scan that no replica holds a lease on.

        Replicas may sweep at the same time: the transaction makes exactly one of them write
        the terminal event, and a lease taken meanwhile spares the scan."""
        draft = EventDraft(Status.FAILED, progress_text=reason, error=reason)
        events: list[Event] = []
        with self._use():
            for scan_id in await self._leases.unleased():
                try:
                    event = await self._own(self._append(scan_id, draft, leased_skips=True))
                except ScanFinished:
                    continue  # it ended meanwhile
                except ScanNotFound:  # its record is gone: nothing left to end
                    await self._redis.srem(self._keys.running, scan_id)
                    continue
                if event is not None:
                    events.append(event)
        return events

    async def _own(self, write: Coroutine[Any, Any, _T]) -> _T:
        """Run ``write`` as the store's task: a caller cancelled meanwhile does not cut it
        short, so what it commits still reaches the listeners (as the SQLite writer does)."""
        if self._closed:  # close() waits only for the writes it saw
            write.close()
            raise StoreUnavailable("the store is closed")
        task = asyncio.create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        await asyncio.wait([task])
        return task.result()

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that went away no longer wants it

    async def _create(self, scan: NewScan, first: EventDraft) -> tuple[ScanRecord, Event]:
        record, event = new_scan(scan, first)
        keys = self._keys

        async def write(pipe: Pipeline) -> Event:
            if await pipe.exists(keys.scan(scan.scan_id)):
                raise ScanExists(scan.scan_id)
            order = await pipe.incr(keys.created)
            multi(pipe)
            pipe.hset(
                keys.scan(scan.scan_id),
                mapping={**encode_record(record), "created_order": order},
            )
            pipe.zadd(keys.owner(scan.owner), {scan.scan_id: order})
            if not event.terminal:
                pipe.sadd(keys.running, scan.scan_id)
                pipe.set(keys.lease(scan.scan_id), self.replica_id, px=self._leases.ms)
            queue_event(pipe, keys, event, log_ms=self._log_ms, record_ms=self._record_ms)
            return event

        await transaction(self._redis, [keys.scan(scan.scan_id)], write)
        if not event.terminal:
            self._leases.hold(scan.scan_id)
        self._notify((event,))
        return record, event

    async def _append(
        self,
        scan_id: str,
        draft: EventDraft,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        skipped_events: int | None = None,
        *,
        leased_skips: bool = False,
    ) -> Event | None:
        """Append one event; ``None`` when ``leased_skips`` and the scan has a lease."""
        scan_key, lease_key = self._keys.scan(scan_id), self._keys.lease(scan_id)

        async def write(pipe: Pipeline) -> Event | None:
            if leased_skips and await pipe.exists(lease_key):
                return None
            values = await pipe.hmget(scan_key, STATE)
            if values[0] is None:
                raise ScanNotFound(scan_id)
            new = next_event(scan_id, decode_state(values), draft, skipped_events)
            attempted[:] = [new.event]
            multi(pipe)
            cleared = [field for field, value in new.changes.items() if value is None]
            if cleared:
                pipe.hdel(scan_key, *cleared)
            changes = {field: value for field, value in new.changes.items() if value is not None}
            pipe.hset(scan_key, mapping=cast("dict[EncodableT, EncodableT]", changes))
            queue_event(
                pipe,
                self._keys,
                new.event,
                vulnerabilities,
                draft.findings_dropped,
                log_ms=self._log_ms,
                record_ms=self._record_ms,
            )
            return new.event

        def unknown() -> None:
            if attempted:  # settled on the next append to this scan
                self._unknown[scan_id] = (draft, attempted[0])

        watch = [scan_key, lease_key] if leased_skips else [scan_key]
        attempted: list[Event] = []
        async with self._lock(scan_id):
            settled = await self._settle(scan_id, draft)
            if settled is not None:
                return settled
            event = await transaction(self._redis, watch, write, if_unknown=unknown)
            if event is not None:
                if event.terminal:
                    self._leases.drop(scan_id)
                self._notify((event,))
            return event

    async def _settle(self, scan_id: str, draft: EventDraft) -> Event | None:
        """After an append whose outcome was unknown (the connection dropped during EXEC):
        tell whether it was applied. If it was and ``draft`` is the same (the caller retrying
        it), that is the event: return it rather than append the draft a second time."""
        unknown = self._unknown.get(scan_id)
        if unknown is None:
            return None
        tried_draft, tried = unknown
        entry = f"{tried.seq}-0"
        found = cast("list[Entry]", await self._redis.xrange(self._keys.log(scan_id), entry, entry))
        del self._unknown[scan_id]
        if not found or found[0][1].get(b"d") != tried.data.encode():
            return None  # not applied: append as usual
        if tried.terminal:
            self._leases.drop(scan_id)
        self._notify((tried,))
        return tried if draft == tried_draft else None

    def _lock(self, scan_id: str) -> asyncio.Lock:
        lock = self._locks.get(scan_id)
        if lock is None:
            lock = self._locks[scan_id] = asyncio.Lock()
        return lock

    def _appending(self, scan_id: str) -> bool:
        lock = self._locks.get(scan_id)
        return lock is not None and lock.locked()

    # -- reads --------------------------------------------------------------------------------

    async def get_scan(self, scan_id: str) -> ScanRecord | None:
        with self._use():
            return decode_record(await self._redis.hgetall(self._keys.scan(scan_id)))

    async def list_scans(
        self, owner: str, *, limit: int, status: Status | None = None
    ) -> list[ScanRecord]:
        with self._use():
            return await pages.list_scans(
                self._redis, self._keys, owner, limit=limit, status=status
            )

    async def events_after(self, scan_id: str, after: int, *, limit: int) -> list[Event]:
        with self._use():
            entries = await self._redis.xrange(
                self._keys.log(scan_id), f"({after}-0", "+", count=limit
            )
        return [decode_event(scan_id, entry) for entry in cast("list[Entry]", entries or [])]

    async def tail(
        self, scan_id: str, after: int, *, block_ms: int, limit: int = TAIL_COUNT
    ) -> list[Event]:
        """The events after ``after``, waiting up to ``block_ms`` for one to be appended by
        any replica; ``[]`` when none was. Each waiting call holds a connection of its own."""
        if not 0 < block_ms <= MAX_BLOCK_MS:
            raise ValueError(f"block_ms must be between 1 and {MAX_BLOCK_MS}")
        with self._use():
            reply = await self._redis.xread(
                {self._keys.log(scan_id): f"{after}-0"}, count=limit, block=block_ms
            )
        streams = cast("list[tuple[bytes, list[Entry]]]", reply or [])  # [[key, entries]]
        return [decode_event(scan_id, entry) for _, entries in streams for entry in entries]

    async def position(self, scan_id: str) -> tuple[int, bool]:
        """The scan's last sequence number (0 for an unknown scan) and whether it has ended."""
        with self._use():
            seq, finished = await self._redis.hmget(
                self._keys.scan(scan_id), ["last_seq", "finished_at"]
            )
        return (0 if seq is None else int(seq)), bool(finished)

    async def findings_page(
        self, scan_id: str, *, start: int, limit: int, max_bytes: int | None = None
    ) -> FindingsPage:
        with self._use():
            return await pages.findings_page(
                self._redis, self._keys, scan_id, start=start, limit=limit, max_bytes=max_bytes
            )

    async def ping(self) -> None:
        with self._use():
            await self._redis.ping()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
