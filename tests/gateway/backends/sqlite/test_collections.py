"""The embedded collection store shares the file's one writer with the scan store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gateway.backends.sqlite import SQLiteStore
from gateway.backends.sqlite.collections import SQLiteCollections
from gateway.domain.collections import (
    ChildEvent,
    ChildState,
    CollectionEventPayload,
    CollectionProgress,
    CollectionStatus,
    CollectionUpdate,
    NewCollection,
    log_id,
)
from gateway.domain.models import EventDraft, NewScan, Status, utcnow


def open_files(path: Path) -> int:
    """How many descriptors of this process are open on ``path`` (or its -wal, -shm)."""
    names = {str(path), f"{path}-wal", f"{path}-shm"}
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) in names)


def first_update(collection_id: str) -> CollectionUpdate:
    children = {"s1": ChildState("secret_scanner", seq=1)}
    payload = CollectionEventPayload(
        collection_id=collection_id,
        collection=CollectionProgress(status=CollectionStatus.PENDING, progress_percent=0),
        scan=ChildEvent("s1", "secret_scanner", 1, Status.PENDING, 0, "Scan queued.", None),
        findings=[],
        timestamp=utcnow(),
    )
    return CollectionUpdate(payload, children, CollectionStatus.PENDING, 0)


async def test_collection_events_are_written_by_the_scan_stores_writer(tmp_path):
    path = tmp_path / "gateway.db"
    store = await SQLiteStore.open(str(path))
    try:
        heard: list[tuple[str, int]] = []
        store.on_append(lambda event: heard.append((event.scan_id, event.seq)))
        before = open_files(path)
        collections = await SQLiteCollections.open(store)
        # No connection of its own: a second writer would wait on SQLite's lock (in sleeps of
        # up to 100 ms) whenever the scan store's writer holds it.
        assert open_files(path) == before
        new = NewCollection("c1", "alice", "acme/web", True, {"s1": ChildState("secret_scanner")})
        await collections.create(new)
        scan = NewScan("s1", "alice", "acme/web", "secret_scanner", True, {})
        await asyncio.gather(
            store.create_scan(scan, EventDraft(Status.PENDING, 0, "Scan queued.")),
            collections.append("c1", first_update("c1"), after=0),
        )
        # One writer committed both, and told the scan store's listeners of both.
        assert sorted(heard) == sorted([("s1", 1), (log_id("c1"), 1)])
        [event] = await store.events_after(log_id("c1"), 0, limit=10)
        assert event.payload()["collection"]["status"] == "pending"
        await collections.close()
        record = await collections.get("c1")  # still open: the scan store owns the writer
        assert record is not None and record.last_seq == 1
    finally:
        await store.close()
