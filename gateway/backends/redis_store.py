"""The shared store: scan records and per-scan logs in Redis, leases on running scans.

Every gateway replica opens one ``RedisStore`` on the same Redis; ``redis_layout`` says
which keys hold what.

An append is an optimistic transaction (WATCH ``scan:{id}``, read the state, ``apply_draft``,
MULTI/EXEC, start over if another process wrote first), so logs stay gap-free whichever
replicas write. Within one process, appends to a scan also queue on a lock, which keeps their
listeners in log order and their retries for conflicts with other processes. A terminal
append drops the lease and sets expiries: the log after ``retention_seconds``, the record and
results after ``record_retention_seconds``.

A replica renews the lease of each scan it created, every third of ``lease_seconds``, until
the scan ends; ``on_lost`` listeners hear of a scan that ended through another replica. A
replica that dies stops renewing, and ``interrupt_unfinished`` on any replica ends its scans.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.typing import EncodableT

from gateway.backends.redis_layout import (
    STATE,
    Entry,
    Keys,
    as_text,
    decode_event,
    decode_record,
    decode_state,
    encode_record,
)
from gateway.domain.errors import ScanExists, ScanNotFound, StoreUnavailable
from gateway.domain.models import (
    Event,
    EventDraft,
    FindingsPage,
    NewScan,
    ScanFinished,
    ScanRecord,
    Status,
    apply_draft,
    compact_json,
    count_severities,
    new_scan,
)
from gateway.engine.store import Store

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Redis cannot answer or cannot take writes now (ConnectionError covers BusyLoadingError and
# MaxConnectionsError); other Redis errors are bugs and propagate as they are.
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.TryAgainError,
)
MAX_ATTEMPTS = 50  # an optimistic transaction starts over at most this often
SOCKET_TIMEOUT = 15.0  # seconds; above MAX_BLOCK_MS, so a blocked XREAD is not cut short
MAX_BLOCK_MS = 10_000
# Each blocked tail holds a connection of its own: no small cap (Redis's default maxclients).
MAX_CONNECTIONS = 10_000
TAIL_COUNT = 500  # events one tail call returns at most

# Renew a lease if its scan still runs and the lease is ours or has lapsed; 0 means lost.
_RENEW = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_PAGE_BATCH = 100  # findings fetched per LRANGE while a page is read


class _OutcomeUnknown(StoreUnavailable):
    """The connection dropped during a transaction: Redis may have applied it or not."""


class RedisStore(Store):
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
        self._lease_seconds = lease_seconds
        self._lease_ms = _ms(lease_seconds)
        self._lost_listeners: list[Callable[[str], None]] = []
        self._held: set[str] = set()  # scans whose lease this replica renews
        # Per scan, an append whose EXEC may or may not have been applied: (draft, event).
        self._unknown: dict[str, tuple[EventDraft, Event]] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._writes: set[asyncio.Task[Any]] = set()
        self._renew_script = client.register_script(_RENEW)
        self._closed = False
        self._renewer = asyncio.create_task(self._renew_forever(), name="redis-lease-renewer")

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
        client = Redis.from_url(
            url,
            decode_responses=False,
            protocol=2,  # the reply shapes below are RESP2's
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=5.0,
            max_connections=MAX_CONNECTIONS,
            # One quick retry rides over a pooled connection Redis closed (a restart); more
            # would only make callers wait longer for StoreUnavailable.
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=1),
        )
        try:
            with _answering():
                await client.ping()
        except BaseException:
            await client.aclose()
            raise
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
        self._renewer.cancel()
        await asyncio.wait([self._renewer, *self._writes])  # writes under way finish
        await self._redis.aclose()

    def release(self, scan_id: str) -> None:
        """Stop renewing a scan's lease: once it lapses, a sweep ends the scan."""
        self._held.discard(scan_id)

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the id of a scan this replica holds once it has ended
        through another replica (a cancel there, or a sweep after this lease lapsed)."""
        self._lost_listeners.append(callback)

    @contextmanager
    def _use(self) -> Iterator[None]:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        with _answering():
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
            for scan_id in await self._unleased():
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

    async def _unleased(self) -> list[str]:
        """Running scans that are not ours and have no lease (a first look, one round trip;
        the append checks again inside its transaction)."""
        members = await self._redis.smembers(self._keys.running)
        candidates = sorted({as_text(m) for m in members} - self._held)
        async with self._redis.pipeline(transaction=False) as pipe:
            for scan_id in candidates:
                pipe.exists(self._keys.lease(scan_id))
            leased = await pipe.execute()
        return [scan_id for scan_id, exists in zip(candidates, leased, strict=True) if not exists]

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
            _multi(pipe)
            pipe.hset(
                keys.scan(scan.scan_id),
                mapping={**encode_record(record), "created_order": order},
            )
            pipe.zadd(keys.owner(scan.owner), {scan.scan_id: order})
            if not event.terminal:
                pipe.sadd(keys.running, scan.scan_id)
                pipe.set(keys.lease(scan.scan_id), self.replica_id, px=self._lease_ms)
            self._queue_event(pipe, event)
            return event

        await self._transaction([keys.scan(scan.scan_id)], write)
        if not event.terminal:
            self._held.add(scan.scan_id)
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
            new, payload = apply_draft(scan_id, decode_state(values), draft)
            event = Event(scan_id, new.last_seq, compact_json(payload), new.terminal)
            attempted[:] = [event]
            changes: dict[EncodableT, EncodableT] = {
                "status": new.status.value,
                "progress_percent": new.progress_percent,
                "progress_text": new.progress_text,
                "updated_at": payload["timestamp"],
                "last_seq": new.last_seq,
            }
            if new.terminal:
                changes["finished_at"] = payload["timestamp"]
            if skipped_events is not None:
                changes["skipped_events"] = skipped_events
            _multi(pipe)
            if new.error is None:
                pipe.hdel(scan_key, "error")
            else:
                changes["error"] = new.error
            pipe.hset(scan_key, mapping=changes)
            self._queue_event(pipe, event, vulnerabilities, draft.findings_dropped)
            return event

        watch = [scan_key, lease_key] if leased_skips else [scan_key]
        attempted: list[Event] = []
        async with self._lock(scan_id):
            settled = await self._settle(scan_id, draft)
            if settled is not None:
                return settled
            try:
                event = await self._transaction(watch, write)
            except _OutcomeUnknown:
                if attempted:  # settled on the next append to this scan
                    self._unknown[scan_id] = (draft, attempted[0])
                raise
            if event is not None:
                if event.terminal:
                    self._held.discard(scan_id)
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
            self._held.discard(scan_id)
        self._notify((tried,))
        return tried if draft == tried_draft else None

    def _queue_event(
        self,
        pipe: Pipeline,
        event: Event,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        findings_dropped: int | None = None,
    ) -> None:
        """Queue the writes every event makes, and on the terminal one the end of the scan."""
        keys, scan_id = self._keys, event.scan_id
        fields: dict[EncodableT, EncodableT] = {
            "d": event.data,
            "t": b"1" if event.terminal else b"0",
        }
        pipe.xadd(keys.log(scan_id), fields, id=f"{event.seq}-0")
        if vulnerabilities:
            pipe.delete(keys.findings(scan_id))  # a retried transaction starts it afresh
            pipe.rpush(keys.findings(scan_id), *(compact_json(v) for v in vulnerabilities))
        if vulnerabilities or findings_dropped is not None:
            summary = count_severities(vuln.get("severity") for vuln in vulnerabilities)
            tally: dict[EncodableT, EncodableT] = {
                "findings_summary": compact_json(summary),
                "findings_dropped": findings_dropped or 0,
            }
            pipe.hset(keys.scan(scan_id), mapping=tally)
        if event.terminal:
            pipe.srem(keys.running, scan_id)
            pipe.delete(keys.lease(scan_id))
            pipe.pexpire(keys.log(scan_id), self._log_ms)
            pipe.pexpire(keys.scan(scan_id), self._record_ms)
            pipe.pexpire(keys.findings(scan_id), self._record_ms)

    async def _transaction(
        self, watch: list[str], write: Callable[[Pipeline], Coroutine[Any, Any, _T]]
    ) -> _T:
        """Run ``write`` (reads while ``watch`` is watched, then ``multi()`` and the writes)
        until EXEC succeeds; a write that queues nothing returns without EXEC."""
        async with self._redis.pipeline() as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    await pipe.watch(*watch)
                    result = await write(pipe)
                    if pipe.explicit_transaction:
                        try:
                            await pipe.execute()
                        except _UNAVAILABLE as exc:
                            # Lost with EXEC sent: Redis may have applied it or not.
                            log.debug("redis: %s", exc)
                            raise _OutcomeUnknown("the store (Redis) does not answer") from None
                except redis_errors.WatchError as exc:
                    if isinstance(exc.__context__, _UNAVAILABLE):
                        # The connection died mid-transaction: EXEC may have been applied,
                        # so starting over could append the event twice.
                        log.debug("redis: %s", exc.__context__)
                        raise _OutcomeUnknown("the store (Redis) does not answer") from None
                    continue
                return result
        raise StoreUnavailable(f"store too busy: {MAX_ATTEMPTS} conflicting transactions")

    def _lock(self, scan_id: str) -> asyncio.Lock:
        lock = self._locks.get(scan_id)
        if lock is None:
            lock = self._locks[scan_id] = asyncio.Lock()
        return lock

    def _appending(self, scan_id: str) -> bool:
        lock = self._locks.get(scan_id)
        return lock is not None and lock.locked()

    # -- leases -------------------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                with _answering():
                    await self._renew()
            except Exception as exc:  # Redis down (or a bug): said once, tried again next tick
                log.debug("lease renewal failed: %s", exc)
                if not failing:
                    log.warning("cannot renew scan leases, retrying: %s", exc)
                failing = True
            else:
                if failing:
                    log.info("scan leases renewed again")
                failing = False

    async def _renew(self) -> None:
        held = sorted(self._held)
        if not held:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for scan_id in held:
                keys = [self._keys.lease(scan_id), self._keys.running]
                await self._renew_script(
                    keys=keys, args=[scan_id, self.replica_id, self._lease_ms], client=pipe
                )
            renewed = await pipe.execute()
        for scan_id, ok in zip(held, renewed, strict=True):
            # An append of ours under way (a terminal one, maybe) decides on the next tick.
            if not ok and scan_id in self._held and not self._appending(scan_id):
                self._held.discard(scan_id)
                self._tell_lost(scan_id)

    def _tell_lost(self, scan_id: str) -> None:
        for callback in self._lost_listeners:
            try:
                callback(scan_id)
            except Exception:
                log.exception("lost-lease callback failed for scan %s", scan_id)

    # -- reads --------------------------------------------------------------------------------

    async def get_scan(self, scan_id: str) -> ScanRecord | None:
        with self._use():
            return decode_record(await self._redis.hgetall(self._keys.scan(scan_id)))

    async def list_scans(
        self, owner: str, *, limit: int, status: Status | None = None
    ) -> list[ScanRecord]:
        key = self._keys.owner(owner)
        page = limit if status is None else max(limit, 100)
        found: list[ScanRecord] = []
        expired: list[bytes] = []
        start = 0
        with self._use():
            while len(found) < limit:
                # Members only (no scores asked for).
                ids = cast("list[bytes]", await self._redis.zrevrange(key, start, start + page - 1))
                if not ids:
                    break
                start += len(ids)
                async with self._redis.pipeline(transaction=False) as pipe:
                    for scan_id in ids:
                        pipe.hgetall(self._keys.scan(scan_id.decode()))
                    records = [decode_record(fields) for fields in await pipe.execute()]
                expired += [
                    scan_id for scan_id, rec in zip(ids, records, strict=True) if rec is None
                ]
                found += [rec for rec in records if rec and status in (None, rec.status)]
            if expired:
                await self._redis.zrem(key, *expired)
        return found[:limit]

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
            summary, dropped = await self._redis.hmget(
                self._keys.scan(scan_id), ["findings_summary", "findings_dropped"]
            )
            if summary is None:
                return await self._legacy_findings_page(scan_id, start, limit)
            page = await self._read_findings(scan_id, start, limit, max_bytes)
        return FindingsPage(page, json.loads(summary), 0 if dropped is None else int(dropped))

    async def _read_findings(
        self, scan_id: str, start: int, limit: int, max_bytes: int | None
    ) -> list[dict[str, Any]]:
        """A page read a batch at a time, so a byte bound also bounds what is fetched."""
        page: list[dict[str, Any]] = []
        size = 0
        while len(page) < limit:
            first = start + len(page)
            batch = await self._redis.lrange(
                self._keys.findings(scan_id), first, first + min(_PAGE_BATCH, limit - len(page)) - 1
            )
            for item in batch:
                if page and max_bytes is not None and size + len(item) > max_bytes:
                    return page
                page.append(json.loads(item))
                size += len(item)
            if len(batch) < _PAGE_BATCH:
                break
        return page

    async def _legacy_findings_page(self, scan_id: str, start: int, limit: int) -> FindingsPage:
        """Results written before findings lists: one JSON array under ``vulns:{id}``."""
        value = await self._redis.get(self._keys.legacy_vulns(scan_id))
        found: list[dict[str, Any]] = [] if value is None else json.loads(value)
        summary = count_severities(vuln.get("severity") for vuln in found)
        return FindingsPage(found[start : start + limit], summary)

    async def ping(self) -> None:
        with self._use():
            await self._redis.ping()


@contextmanager
def _answering() -> Iterator[None]:
    """Redis not answering, whichever command noticed, is ``StoreUnavailable``; and a
    cancellation that arrived meanwhile is not lost.

    On Python 3.11, ``asyncio.wait_for`` (redis-py's send) returns normally when the task is
    cancelled just as the awaited write completes (fixed in 3.12). A cancel request that came
    during the call yet never surfaced is raised here, so a cancelled reader or the lease
    renewer does stop.
    """
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    error = None
    try:
        yield
    except _UNAVAILABLE as exc:
        # Clients (and the unauthenticated /readyz) get no host or port; the log does.
        log.debug("redis: %s", exc)
        error = StoreUnavailable("the store (Redis) does not answer")
    if task is not None and task.cancelling() > cancelling:
        raise asyncio.CancelledError
    if error is not None:
        raise error


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _multi(pipe: Pipeline) -> None:
    """End the reads of a watched transaction: the commands after this are queued."""
    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
