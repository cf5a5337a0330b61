"""The embedded store: one SQLite file in WAL mode, one writer, a separate reader.

Every write goes through the one writer (``writer``), which commits the writes queued
meanwhile together; ``schema`` holds the tables and the statements. Reads go through aiosqlite
on a second connection.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.backends.sqlite.schema import SCAN_COLUMNS, append, insert_scan, record
from gateway.backends.sqlite.writer import Writer, open_connection
from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import (
    Event,
    EventDraft,
    FindingsPage,
    NewScan,
    ScanRecord,
    Status,
    count_severities,
    new_scan,
)
from gateway.engine.store import Store

__all__ = ["SQLiteStore"]

_NO_BOUND = 2**62  # a page byte bound no page reaches


class SQLiteStore(Store):
    def __init__(
        self, db: sqlite3.Connection, thread: ThreadPoolExecutor, reader: aiosqlite.Connection
    ) -> None:
        super().__init__()
        self._writer = Writer(db, thread, self._notify)
        self._reader = reader
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db, thread = await open_connection(path)
        try:
            reader = await _connect(path)
        except BaseException:
            await asyncio.get_running_loop().run_in_executor(thread, db.close)
            thread.shutdown(wait=False)
            raise
        return cls(db, thread, reader)

    @property
    def writer(self) -> Writer:
        """The file's one writer: the collection store writes through it too, so that its
        events reach this store's listeners and no second writer waits on SQLite's lock."""
        return self._writer

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        await self._reader.close()

    # -- writes -------------------------------------------------------------------------------

    async def create_scan(self, scan: NewScan, first: EventDraft) -> tuple[ScanRecord, Event]:
        created, event = new_scan(scan, first)

        def write(db: sqlite3.Connection, appended: list[Event]) -> None:
            insert_scan(db, created, event, appended)

        await self._writer.write(write)
        return created, event

    async def append_event(
        self,
        scan_id: str,
        draft: EventDraft,
        *,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        skipped_events: int | None = None,
    ) -> Event:
        def write(db: sqlite3.Connection, appended: list[Event]) -> Event:
            return append(db, scan_id, draft, vulnerabilities, skipped_events, appended)

        return await self._writer.write(write)

    async def interrupt_unfinished(self, reason: str) -> list[Event]:
        draft = EventDraft(Status.FAILED, progress_text=reason, error=reason)

        def write(db: sqlite3.Connection, appended: list[Event]) -> list[Event]:
            rows = db.execute("SELECT scan_id FROM scans WHERE finished_at IS NULL").fetchall()
            return [append(db, row[0], draft, (), None, appended) for row in rows]

        return await self._writer.write(write)

    # -- reads --------------------------------------------------------------------------------

    # Reads use execute_fetchall: the statement runs to its end on the connection's thread even
    # if the caller is cancelled. A cursor abandoned half-read would pin an old WAL snapshot
    # for every later read on the connection.
    async def _read(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        return list(await self._reader.execute_fetchall(sql, args))

    async def get_scan(self, scan_id: str) -> ScanRecord | None:
        rows = await self._read(f"SELECT {SCAN_COLUMNS} FROM scans WHERE scan_id = ?", (scan_id,))
        return record(rows[0]) if rows else None

    async def list_scans(
        self, owner: str, *, limit: int, status: Status | None = None
    ) -> list[ScanRecord]:
        query = f"SELECT {SCAN_COLUMNS} FROM scans WHERE owner = ?"
        args: list[Any] = [owner]
        if status is not None:
            query += " AND status = ?"
            args.append(status.value)
        query += " ORDER BY created_order DESC LIMIT ?"
        args.append(limit)
        return [record(row) for row in await self._read(query, args)]

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
        if self._closed or not self._writer.running:
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
