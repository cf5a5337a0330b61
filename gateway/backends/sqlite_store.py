"""The embedded store: one SQLite file in WAL mode, one writer, separate reader.

Every write goes through one writer task. It takes whatever writes queued up meanwhile and
runs them on the writer's own thread in one call: one ``BEGIN IMMEDIATE`` ... ``COMMIT``, each
write in a savepoint of its own, so one that fails fails alone. A burst of appends costs one
hand-off to the thread and one commit, not several of each per event; a lone write is not
delayed. A caller cancelled while waiting does not leave a transaction half done: the writer
finishes it. Reads go through aiosqlite on a second connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.domain.errors import ScanExists, ScanNotFound, StoreUnavailable
from gateway.domain.models import (
    Event,
    EventDraft,
    FindingsPage,
    NewScan,
    ScanRecord,
    ScanState,
    Status,
    apply_draft,
    compact_json,
    count_severities,
    new_scan,
)
from gateway.engine.store import Store

__all__ = ["SQLiteStore"]

_NO_BOUND = 2**62  # a page byte bound no page reaches

log = logging.getLogger(__name__)

_T = TypeVar("_T")
MAX_BATCH = 500  # writes committed together at most
# A write: runs on the writer thread inside one transaction; every event it appends goes in
# the list, and listeners hear of them only after the commit.
_Write = Callable[[sqlite3.Connection, list[Event]], Any]
# What became of one write: (its result, its error, the events it appended).
_Outcome = tuple[Any, Exception | None, list[Event]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    scan_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    repository_name TEXT NOT NULL,
    scanner_name TEXT NOT NULL,
    sse_enabled INTEGER NOT NULL,
    configurations TEXT NOT NULL,
    status TEXT NOT NULL,
    progress_percent INTEGER NOT NULL,
    progress_text TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    last_seq INTEGER NOT NULL,
    skipped_events INTEGER NOT NULL DEFAULT 0,
    created_order INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS scans_by_owner ON scans (owner, created_order DESC);
CREATE INDEX IF NOT EXISTS scans_unfinished ON scans (finished_at) WHERE finished_at IS NULL;
CREATE TABLE IF NOT EXISTS scan_events (
    scan_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    terminal INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (scan_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vulnerabilities (
    scan_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    severity TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (scan_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scan_findings (
    scan_id TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    dropped INTEGER NOT NULL
) WITHOUT ROWID;
"""

_SCAN_COLUMNS = (
    "scan_id, owner, repository_name, scanner_name, sse_enabled, configurations, status, "
    "progress_percent, progress_text, error, created_at, updated_at, finished_at, last_seq, "
    "skipped_events"
)


def _record(row: sqlite3.Row) -> ScanRecord:
    return ScanRecord(
        scan_id=row["scan_id"],
        owner=row["owner"],
        repository_name=row["repository_name"],
        scanner_name=row["scanner_name"],
        sse_enabled=bool(row["sse_enabled"]),
        configurations=json.loads(row["configurations"]),
        status=Status(row["status"]),
        progress_percent=row["progress_percent"],
        progress_text=row["progress_text"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        last_seq=row["last_seq"],
        skipped_events=row["skipped_events"],
    )


class SQLiteStore(Store):
    def __init__(
        self, writer: sqlite3.Connection, thread: ThreadPoolExecutor, reader: aiosqlite.Connection
    ) -> None:
        super().__init__()
        self._writer = writer
        self._thread = thread  # the writer connection is used on this one thread only
        self._reader = reader
        self._queue: asyncio.Queue[tuple[_Write, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._write_loop(), name="sqlite-writer")
        self._closing = False

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        loop = asyncio.get_running_loop()
        try:
            writer = await loop.run_in_executor(thread, _open_writer, path)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        try:
            reader = await _connect(path)
        except BaseException:
            await loop.run_in_executor(thread, writer.close)
            thread.shutdown(wait=False)
            raise
        return cls(writer, thread, reader)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        await self._queue.put(None)
        await self._task
        await self._reader.close()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.close)
        self._thread.shutdown(wait=True)

    # -- the writer ---------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if None in batch:  # close() queues it last; nothing is accepted after it
                stopping = True
                batch = batch[: batch.index(None)]
            await self._commit([item for item in batch if item is not None])

    async def _commit(self, batch: list[tuple[_Write, asyncio.Future[Any]]]) -> None:
        if not batch:
            return
        writes = [write for write, _ in batch]
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(self._thread, _run_batch, self._writer, writes)
        except Exception as exc:  # the transaction itself failed: nothing was written
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), (result, error, appended) in zip(batch, outcomes, strict=True):
            # Told here, not by the caller: a caller cancelled meanwhile must not keep a
            # committed event (a terminal one above all) from its live subscribers.
            self._notify(appended)
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    async def _write(self, write: Callable[[sqlite3.Connection, list[Event]], _T]) -> _T:
        if self._closing:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        await self._queue.put((write, future))
        return await future

    # -- writes -------------------------------------------------------------------------------

    async def create_scan(self, scan: NewScan, first: EventDraft) -> tuple[ScanRecord, Event]:
        record, event = new_scan(scan, first)

        def write(db: sqlite3.Connection, appended: list[Event]) -> None:
            if db.execute("SELECT 1 FROM scans WHERE scan_id = ?", (scan.scan_id,)).fetchone():
                raise ScanExists(scan.scan_id)
            db.execute(
                f"INSERT INTO scans ({_SCAN_COLUMNS}, created_order) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, "
                "(SELECT COALESCE(MAX(created_order), 0) + 1 FROM scans))",
                (
                    record.scan_id,
                    record.owner,
                    record.repository_name,
                    record.scanner_name,
                    int(record.sse_enabled),
                    compact_json(record.configurations),
                    record.status.value,
                    record.progress_percent,
                    record.progress_text,
                    record.error,
                    record.created_at,
                    record.updated_at,
                    record.finished_at,
                    record.last_seq,
                ),
            )
            _insert_event(db, event, appended)

        await self._write(write)
        return record, event

    async def append_event(
        self,
        scan_id: str,
        draft: EventDraft,
        *,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        skipped_events: int | None = None,
    ) -> Event:
        def write(db: sqlite3.Connection, appended: list[Event]) -> Event:
            return _append(db, scan_id, draft, vulnerabilities, skipped_events, appended)

        return await self._write(write)

    async def interrupt_unfinished(self, reason: str) -> list[Event]:
        draft = EventDraft(Status.FAILED, progress_text=reason, error=reason)

        def write(db: sqlite3.Connection, appended: list[Event]) -> list[Event]:
            rows = db.execute("SELECT scan_id FROM scans WHERE finished_at IS NULL").fetchall()
            return [_append(db, row[0], draft, (), None, appended) for row in rows]

        return await self._write(write)

    # -- reads --------------------------------------------------------------------------------

    # Reads use execute_fetchall: the statement runs to its end on the connection's thread even
    # if the caller is cancelled. A cursor abandoned half-read would pin an old WAL snapshot
    # for every later read on the connection.
    async def _read(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        return list(await self._reader.execute_fetchall(sql, args))

    async def get_scan(self, scan_id: str) -> ScanRecord | None:
        rows = await self._read(f"SELECT {_SCAN_COLUMNS} FROM scans WHERE scan_id = ?", (scan_id,))
        return _record(rows[0]) if rows else None

    async def list_scans(
        self, owner: str, *, limit: int, status: Status | None = None
    ) -> list[ScanRecord]:
        query = f"SELECT {_SCAN_COLUMNS} FROM scans WHERE owner = ?"
        args: list[Any] = [owner]
        if status is not None:
            query += " AND status = ?"
            args.append(status.value)
        query += " ORDER BY created_order DESC LIMIT ?"
        args.append(limit)
        return [_record(row) for row in await self._read(query, args)]

    async def events_after(self, scan_id: str, after: int, *, limit: int) -> list[Event]:
        rows = await self._read(
            "SELECT seq, terminal, data FROM scan_events WHERE scan_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (scan_id, after, limit),
        )
        return [Event(scan_id, row[0], row[2], bool(row[1])) for row in rows]

    async def findings_page(
        self, scan_id: str, *, start: int, limit: int, max_bytes: int | None = None
    ) -> FindingsPage:
        # ``before``: the bytes of the page's earlier findings; a page ends once it passes.
        rows = await self._read(
            "SELECT data FROM (SELECT data, idx, SUM(length(CAST(data AS BLOB))) OVER "
            "(ORDER BY idx) - length(CAST(data AS BLOB)) AS before FROM vulnerabilities "
            "WHERE scan_id = ? AND idx >= ? ORDER BY idx LIMIT ?) "
            "WHERE before = 0 OR before + length(CAST(data AS BLOB)) <= ? ORDER BY idx",
            (scan_id, start, limit, _NO_BOUND if max_bytes is None else max_bytes),
        )
        page = [json.loads(row[0]) for row in rows]
        tally = await self._read(
            "SELECT summary, dropped FROM scan_findings WHERE scan_id = ?", (scan_id,)
        )
        if tally:
            return FindingsPage(page, json.loads(tally[0][0]), tally[0][1])
        # Stored before scan_findings existed: count them (once per read, as before).
        counts = await self._read(
            "SELECT severity, COUNT(*) FROM vulnerabilities WHERE scan_id = ? GROUP BY severity",
            (scan_id,),
        )
        summary = count_severities([])
        for severity, count in counts:
            summary[severity if severity in summary else "unknown"] += count
        return FindingsPage(page, summary)

    async def ping(self) -> None:
        if self._closing or self._task.done():
            raise StoreUnavailable("the store is closed")
        try:
            await self._read("SELECT 1", ())
        except (sqlite3.Error, ValueError) as exc:
            raise StoreUnavailable(f"store does not answer: {exc}") from None


async def _connect(path: str) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    await db.execute("PRAGMA busy_timeout=5000")
    return db


def _open_writer(path: str) -> sqlite3.Connection:
    """The writer connection (on the writer thread): WAL, and the schema."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _run_batch(db: sqlite3.Connection, writes: list[_Write]) -> list[_Outcome]:
    """Run writes in one transaction (on the writer thread), each in its own savepoint."""
    outcomes: list[_Outcome] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for write in writes:
            appended: list[Event] = []
            db.execute("SAVEPOINT write")
            try:
                result = write(db, appended)
            except Exception as exc:
                db.execute("ROLLBACK TO write")
                outcomes.append((None, exc, []))
            else:
                outcomes.append((result, None, appended))
            db.execute("RELEASE write")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


def _insert_event(db: sqlite3.Connection, event: Event, appended: list[Event]) -> None:
    db.execute(
        "INSERT INTO scan_events (scan_id, seq, terminal, data) VALUES (?, ?, ?, ?)",
        (event.scan_id, event.seq, int(event.terminal), event.data),
    )
    appended.append(event)


def _append(
    db: sqlite3.Connection,
    scan_id: str,
    draft: EventDraft,
    vulnerabilities: Sequence[Mapping[str, Any]],
    skipped_events: int | None,
    appended: list[Event],
) -> Event:
    row = db.execute(
        "SELECT status, progress_percent, progress_text, error, last_seq FROM scans "
        "WHERE scan_id = ?",
        (scan_id,),
    ).fetchone()
    if row is None:
        raise ScanNotFound(scan_id)
    state = ScanState(Status(row[0]), row[1], row[2], row[3], row[4])
    new, payload = apply_draft(scan_id, state, draft)
    event = Event(scan_id, new.last_seq, compact_json(payload), new.terminal)
    now = payload["timestamp"]
    db.execute(
        "UPDATE scans SET status = ?, progress_percent = ?, progress_text = ?, error = ?, "
        "updated_at = ?, finished_at = ?, last_seq = ?, "
        "skipped_events = COALESCE(?, skipped_events) WHERE scan_id = ?",
        (
            new.status.value,
            new.progress_percent,
            new.progress_text,
            new.error,
            now,
            now if new.terminal else None,
            new.last_seq,
            skipped_events,
            scan_id,
        ),
    )
    _insert_event(db, event, appended)
    if vulnerabilities or draft.findings_dropped is not None:
        summary = count_severities(vuln.get("severity") for vuln in vulnerabilities)
        db.execute(
            "INSERT INTO scan_findings (scan_id, summary, dropped) VALUES (?, ?, ?)",
            (scan_id, compact_json(summary), draft.findings_dropped or 0),
        )
    if vulnerabilities:
        db.executemany(
            "INSERT INTO vulnerabilities (scan_id, idx, severity, data) VALUES (?, ?, ?, ?)",
            [
                (scan_id, index, str(vuln.get("severity", "unknown")), compact_json(vuln))
                for index, vuln in enumerate(vulnerabilities)
            ],
        )
    return event
