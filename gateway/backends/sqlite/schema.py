"""The embedded store's tables, and the statements that write a scan and its events.

The write functions run on the writer's thread inside its transaction (``writer.Writer``);
each event they insert goes in ``appended``, which the store's listeners hear of once the
transaction commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.domain.errors import ScanExists, ScanNotFound
from gateway.domain.models import Event, EventDraft, ScanRecord, ScanState, Status, compact_json
from gateway.engine.store import findings_tally, next_event

__all__ = ["SCAN_COLUMNS", "SCHEMA", "append", "insert_scan", "record"]

SCHEMA: Final = """
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

SCAN_COLUMNS: Final = (
    "scan_id, owner, repository_name, scanner_name, sse_enabled, configurations, status, "
    "progress_percent, progress_text, error, created_at, updated_at, finished_at, last_seq, "
    "skipped_events"
)


def record(row: sqlite3.Row) -> ScanRecord:
    """A ``scans`` row (``SCAN_COLUMNS``) as a record."""
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


def insert_scan(
    db: sqlite3.Connection, scan: ScanRecord, first: Event, appended: list[Event]
) -> None:
    if db.execute("SELECT 1 FROM scans WHERE scan_id = ?", (scan.scan_id,)).fetchone():
        raise ScanExists(scan.scan_id)
    db.execute(
        f"INSERT INTO scans ({SCAN_COLUMNS}, created_order) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, "
        "(SELECT COALESCE(MAX(created_order), 0) + 1 FROM scans))",
        (
            scan.scan_id,
            scan.owner,
            scan.repository_name,
            scan.scanner_name,
            int(scan.sse_enabled),
            compact_json(scan.configurations),
            scan.status.value,
            scan.progress_percent,
            scan.progress_text,
            scan.error,
            scan.created_at,
            scan.updated_at,
            scan.finished_at,
            scan.last_seq,
        ),
    )
    _insert_event(db, first, appended)


def append(
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
    new = next_event(scan_id, state, draft, skipped_events)
    columns = ", ".join(f"{column} = ?" for column in new.changes)  # names of ours, not input
    db.execute(f"UPDATE scans SET {columns} WHERE scan_id = ?", (*new.changes.values(), scan_id))
    _insert_event(db, new.event, appended)
    tally = findings_tally(vulnerabilities, draft.findings_dropped)
    if tally is not None:
        summary, dropped = tally
        db.execute(
            "INSERT INTO scan_findings (scan_id, summary, dropped) VALUES (?, ?, ?)",
            (scan_id, compact_json(summary), dropped),
        )
    if vulnerabilities:
        db.executemany(
            "INSERT INTO vulnerabilities (scan_id, idx, severity, data) VALUES (?, ?, ?, ?)",
            [
                (scan_id, index, str(vuln.get("severity", "unknown")), compact_json(vuln))
                for index, vuln in enumerate(vulnerabilities)
            ],
        )
    return new.event


def _insert_event(db: sqlite3.Connection, event: Event, appended: list[Event]) -> None:
    db.execute(
        "INSERT INTO scan_events (scan_id, seq, terminal, data) VALUES (?, ?, ?, ?)",
        (event.scan_id, event.seq, int(event.terminal), event.data),
    )
    appended.append(event)
