"""The embedded collection store: collection records in the SQLite file the scans live in.

A collection's log goes in ``scan_events`` and its merged findings in ``vulnerabilities`` and
``scan_findings``, under its log id (``collection:<id>``), so the scan store reads them as it
reads a scan's (``events_after``, ``findings_page``). Records are a table of their own.

Every operation, reads included (a read sees every write before it), goes through the scan
store's writer (``SQLiteStore.writer``): the file has one writer, whose batches commit the
scans' appends and the collections' together. (A second connection writing the same file
waits on SQLite's lock with sleeps of up to 100 ms each time: at 100 collections of 4 scans
that backlog grew to seconds.) The events it appends reach the scan store's listeners, once
committed, as scans' do; a caller cancelled meanwhile does not cut a transaction short.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from gateway.backends.sqlite.store import SQLiteStore
from gateway.domain.collections import (
    ChildState,
    CollectionFinished,
    CollectionLost,
    CollectionRecord,
    CollectionStatus,
    CollectionUpdate,
    NewCollection,
    log_id,
)
from gateway.domain.models import Event, FindingsPage, compact_json, utcnow
from gateway.engine.collection_store import CollectionStore
from gateway.engine.store import findings_tally

__all__ = ["SQLiteCollections"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    repository_name TEXT NOT NULL,
    sse_enabled INTEGER NOT NULL,
    children TEXT NOT NULL,
    status TEXT NOT NULL,
    progress_percent INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    last_seq INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    created_order INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS collections_by_owner ON collections (owner, created_order DESC);
CREATE INDEX IF NOT EXISTS collections_unfinished ON collections (finished_at)
    WHERE finished_at IS NULL;
"""

_COLUMNS: Final = (
    "collection_id, owner, repository_name, sse_enabled, children, status, progress_percent, "
    "created_at, updated_at, finished_at, last_seq, cancel_requested, summary"
)


def _record(row: sqlite3.Row) -> CollectionRecord:
    children = json.loads(row["children"])
    return CollectionRecord(
        collection_id=row["collection_id"],
        owner=row["owner"],
        repository_name=row["repository_name"],
        sse_enabled=bool(row["sse_enabled"]),
        children={scan_id: ChildState.from_json(state) for scan_id, state in children.items()},
        status=CollectionStatus(row["status"]),
        progress_percent=row["progress_percent"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        last_seq=row["last_seq"],
        cancel_requested=bool(row["cancel_requested"]),
        summary=None if row["summary"] is None else json.loads(row["summary"]),
    )


def _rows(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
    """Rows by column name, without changing the shared connection's row factory."""
    cursor = db.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(sql, args).fetchall()


def _children_json(children: dict[str, ChildState]) -> str:
    return compact_json({scan_id: state.to_json() for scan_id, state in children.items()})


class SQLiteCollections(CollectionStore):
    def __init__(self, scans: SQLiteStore) -> None:
        self._scans = scans
        self._writer = scans.writer

    @classmethod
    async def open(cls, scans: SQLiteStore) -> SQLiteCollections:
        """On the file ``scans`` opened: its table, created through its writer."""
        store = cls(scans)

        def create_tables(db: sqlite3.Connection, appended: list[Event]) -> None:
            # One statement at a time: executescript would commit the writer's transaction.
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

        await store._writer.write(create_tables)
        return store

    async def close(self) -> None:
        """Nothing of its own to close: the scan store closes the writer."""

    async def _read(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        def read(db: sqlite3.Connection, appended: list[Event]) -> list[sqlite3.Row]:
            return _rows(db, sql, args)

        return await self._writer.write(read)

    async def create(self, new: NewCollection) -> CollectionRecord:
        now = utcnow()
        record = new.record(now)

        def write(db: sqlite3.Connection, appended: list[Event]) -> None:
            db.execute(
                "INSERT INTO collections (collection_id, owner, repository_name, sse_enabled, "
                "children, status, progress_percent, created_at, updated_at, last_seq, "
                "created_order) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, 0, "
                "(SELECT COALESCE(MAX(created_order), 0) + 1 FROM collections))",
                (
                    record.collection_id,
                    record.owner,
                    record.repository_name,
                    int(record.sse_enabled),
                    _children_json(record.children),
                    record.status.value,
                    now,
                    now,
                ),
            )

        await self._writer.write(write)
        return record

    async def append(self, collection_id: str, update: CollectionUpdate, *, after: int) -> Event:
        def write(db: sqlite3.Connection, appended: list[Event]) -> Event:
            event = _append(db, collection_id, update, after)
            appended.append(event)
            return event

        return await self._writer.write(write)

    async def get(self, collection_id: str) -> CollectionRecord | None:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM collections WHERE collection_id = ?", (collection_id,)
        )
        return _record(rows[0]) if rows else None

    async def list_owned(self, owner: str, *, limit: int) -> list[CollectionRecord]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM collections WHERE owner = ? "
            "ORDER BY created_order DESC LIMIT ?",
            (owner, limit),
        )
        return [_record(row) for row in rows]

    async def request_cancel(self, collection_id: str) -> None:
        def write(db: sqlite3.Connection, appended: list[Event]) -> None:
            db.execute(
                "UPDATE collections SET cancel_requested = 1 WHERE collection_id = ?",
                (collection_id,),
            )

        await self._writer.write(write)

    async def findings_page(
        self, collection_id: str, *, start: int, limit: int, max_bytes: int | None = None
    ) -> FindingsPage:
        return await self._scans.findings_page(
            log_id(collection_id), start=start, limit=limit, max_bytes=max_bytes
        )

    async def claim_unfinished(self) -> list[CollectionRecord]:
        """Every unfinished collection: one process uses this file."""
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM collections WHERE finished_at IS NULL ORDER BY created_order",
            (),
        )
        return [_record(row) for row in rows]


def _append(
    db: sqlite3.Connection, collection_id: str, update: CollectionUpdate, after: int
) -> Event:
    found = _rows(
        db,
        "SELECT last_seq, finished_at FROM collections WHERE collection_id = ?",
        (collection_id,),
    )
    row = found[0] if found else None
    if row is None:
        raise CollectionLost(f"collection {collection_id} is gone")
    if row["finished_at"] is not None:
        raise CollectionFinished(f"collection {collection_id} already ended")
    if row["last_seq"] != after:
        raise CollectionLost(f"collection {collection_id}: another writer appended")
    payload = msgspec.to_builtins(update.payload)
    seq = after + 1
    name = log_id(collection_id)
    event = Event(name, seq, compact_json(payload), update.terminal)
    now = payload["timestamp"]
    db.execute(
        "UPDATE collections SET children = ?, status = ?, progress_percent = ?, updated_at = ?, "
        "finished_at = ?, last_seq = ?, summary = ? WHERE collection_id = ?",
        (
            _children_json(update.children),
            update.status.value,
            update.progress_percent,
            now,
            now if update.terminal else None,
            seq,
            None if update.summary is None else compact_json(update.summary),
            collection_id,
        ),
    )
    db.execute(
        "INSERT INTO scan_events (scan_id, seq, terminal, data) VALUES (?, ?, ?, ?)",
        (name, seq, int(event.terminal), event.data),
    )
    tally = findings_tally(update.merged, 0) if update.terminal else None
    if tally is not None:
        db.execute(
            "INSERT INTO scan_findings (scan_id, summary, dropped) VALUES (?, ?, ?)",
            (name, compact_json(tally[0]), tally[1]),
        )
        db.executemany(
            "INSERT INTO vulnerabilities (scan_id, idx, severity, data) VALUES (?, ?, ?, ?)",
            [
                (name, index, str(finding.get("severity", "unknown")), compact_json(finding))
                for index, finding in enumerate(update.merged)
            ],
        )
    return event
