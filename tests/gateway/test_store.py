"""The SQLite store: gap-free logs, atomic appends, cancel-safe reads and writes, recovery."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.models import EventDraft, NewScan, ScanFinished, Status
from gateway.store import SQLiteStore


def new_scan(scan_id: str = "s1", owner: str = "alice") -> NewScan:
    return NewScan(scan_id, owner, "acme/web", "secret_scanner", True, {"depth": 2})


@pytest.fixture
async def store(tmp_path):
    store = await SQLiteStore.open(str(tmp_path / "var" / "db.sqlite"))
    yield store
    await store.close()


async def test_open_creates_directory_and_wal(tmp_path):
    path = tmp_path / "nested" / "dir" / "gateway.db"
    store = await SQLiteStore.open(str(path))
    await store.close()
    assert path.exists()
    import sqlite3

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sequence_progress_and_terminal_rules(store):
    record, first = await store.create_scan(new_scan(), EventDraft(Status.PENDING, 0, "queued"))
    assert (record.last_seq, first.seq) == (1, 1)
    await store.append_event("s1", EventDraft(Status.SCANNING, 40, "half"))
    back = await store.append_event("s1", EventDraft(Status.SCANNING, 10, "backwards"))
    assert back.payload()["progress_percent"] == 40, "progress never goes backwards"
    done = await store.append_event(
        "s1",
        EventDraft(Status.COMPLETED, 90, "done", summary={"high": 1}),
        vulnerabilities=[{"id": "v1", "severity": "high"}],
        skipped_events=2,
    )
    assert done.terminal
    assert done.payload()["progress_percent"] == 100
    assert done.payload()["summary"] == {"high": 1}
    with pytest.raises(ScanFinished):
        await store.append_event("s1", EventDraft(Status.SCANNING, 50))

    events = await store.events_after("s1", 0, limit=100)
    assert [event.seq for event in events] == [1, 2, 3, 4]
    assert [event.terminal for event in events] == [False, False, False, True]
    assert events[1].frame == f"id: 2\ndata: {events[1].data}\n\n".encode()
    assert [e.seq for e in await store.events_after("s1", 2, limit=1)] == [3]

    scan = await store.get_scan("s1")
    assert scan is not None
    assert (scan.status, scan.progress_percent, scan.last_seq) == (Status.COMPLETED, 100, 4)
    assert scan.finished_at is not None
    assert scan.skipped_events == 2
    assert scan.configurations == {"depth": 2}
    assert await store.vulnerabilities("s1") == [{"id": "v1", "severity": "high"}]


async def test_concurrent_appends_never_share_a_sequence_number(store):
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    await asyncio.gather(
        *(store.append_event("s1", EventDraft(Status.SCANNING, i)) for i in range(50))
    )
    events = await store.events_after("s1", 0, limit=1000)
    assert [event.seq for event in events] == list(range(1, 52))


async def test_cancelled_writer_caller_leaves_no_open_transaction(store):
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    task = asyncio.create_task(store.append_event("s1", EventDraft(Status.SCANNING, 5)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    event = await store.append_event("s1", EventDraft(Status.SCANNING, 6))
    stored = [e.seq for e in await store.events_after("s1", 0, limit=10)]
    assert stored[-1] == event.seq
    assert stored == list(range(1, event.seq + 1))


async def test_cancelled_reader_does_not_hide_later_writes(store):
    """A read abandoned mid-query must not pin an old snapshot for later reads."""
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    for _ in range(20):
        task = asyncio.create_task(store.events_after("s1", 0, limit=10))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    event = await store.append_event("s1", EventDraft(Status.SCANNING, 5))
    assert [e.seq for e in await store.events_after("s1", 0, limit=10)][-1] == event.seq
    scan = await store.get_scan("s1")
    assert scan is not None and scan.last_seq == event.seq


async def test_list_is_per_owner_newest_first(store):
    for index, owner in enumerate(["alice", "bob", "alice", "alice"]):
        await store.create_scan(new_scan(f"s{index}", owner), EventDraft(Status.PENDING))
    await store.append_event("s2", EventDraft(Status.FAILED, error="x"))
    listed = await store.list_scans("alice", limit=10)
    assert [scan.scan_id for scan in listed] == ["s3", "s2", "s0"]
    assert [s.scan_id for s in await store.list_scans("alice", limit=2)] == ["s3", "s2"]
    failed = await store.list_scans("alice", limit=10, status=Status.FAILED)
    assert [scan.scan_id for scan in failed] == ["s2"]


async def test_interrupt_unfinished_ends_only_running_scans(store):
    await store.create_scan(new_scan("running"), EventDraft(Status.PENDING))
    await store.append_event("running", EventDraft(Status.SCANNING, 30, "working"))
    await store.create_scan(new_scan("done"), EventDraft(Status.PENDING))
    await store.append_event("done", EventDraft(Status.COMPLETED))
    events = await store.interrupt_unfinished("interrupted: gateway restarted")
    assert [(e.scan_id, e.seq, e.terminal) for e in events] == [("running", 3, True)]
    data = json.loads(events[0].data)
    assert data["status"] == "failed"
    assert data["error"] == "interrupted: gateway restarted"
    assert data["progress_percent"] == 30
    assert await store.interrupt_unfinished("again") == []


async def test_closed_store_refuses_work(tmp_path):
    from gateway.errors import StoreUnavailable

    store = await SQLiteStore.open(str(tmp_path / "db"))
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.create_scan(new_scan(), EventDraft(Status.PENDING))


async def test_a_failing_write_fails_alone_within_a_batch(store):
    await store.create_scan(new_scan("live"), EventDraft(Status.PENDING))
    await store.create_scan(new_scan("ended"), EventDraft(Status.PENDING))
    await store.append_event("ended", EventDraft(Status.COMPLETED))
    heard: list[tuple[str, int]] = []
    store.on_append(lambda event: heard.append((event.scan_id, event.seq)))
    # Queued together, so the writer commits them as one batch.
    results = await asyncio.gather(
        *(store.append_event("live", EventDraft(Status.SCANNING, i)) for i in range(10)),
        store.append_event("ended", EventDraft(Status.SCANNING, 1)),
        *(store.append_event("live", EventDraft(Status.SCANNING, i)) for i in range(10, 20)),
        return_exceptions=True,
    )
    assert isinstance(results[10], ScanFinished)
    live = [result.seq for result in results if not isinstance(result, BaseException)]
    assert live == list(range(2, 22))
    assert heard == [("live", seq) for seq in range(2, 22)], "listeners hear commits, in order"
    stored = [e.seq for e in await store.events_after("live", 0, limit=100)]
    assert stored == list(range(1, 22))
    assert [e.seq for e in await store.events_after("ended", 0, limit=10)] == [1, 2]
