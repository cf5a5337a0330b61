"""Every store: gap-free logs, atomic appends, cancel-safe reads and writes, recovery.

The behaviour tests run against each backend (``sqlite``, and ``redis`` on a real
redis-server of their own); ``backends/redis/test_store`` holds what only the shared store does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.backends.redis import RedisStore
from gateway.backends.sqlite import SQLiteStore
from gateway.domain.errors import ScanExists, ScanNotFound
from gateway.domain.models import (
    SEVERITIES,
    EventDraft,
    FindingsPage,
    NewScan,
    ScanFinished,
    ScanState,
    Status,
    compact_json,
    count_severities,
)
from gateway.engine.store import Store, findings_tally, next_event

LEASE_SECONDS = 0.3  # short, so a closed Redis store's leases lapse quickly


def new_scan(scan_id: str = "s1", owner: str = "alice") -> NewScan:
    return NewScan(scan_id, owner, "acme/web", "secret_scanner", True, {"depth": 2})


class Backend:
    """Opens stores over one backend's data, and closes them all at the end."""

    def __init__(self) -> None:
        self.opened: list[Store] = []

    async def open(self) -> Store:
        store = await self._open()
        self.opened.append(store)
        return store

    async def reopen(self, store: Store) -> Store:
        """A new process over the same data, once the one that ran ``store`` is gone."""
        await store.close()
        return await self.open()

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()

    async def _open(self) -> Store:
        raise NotImplementedError


class SQLiteBackend(Backend):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    async def _open(self) -> Store:
        return await SQLiteStore.open(self.path)


class RedisBackend(Backend):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def _open(self) -> Store:
        return await RedisStore.open(self.url, lease_seconds=LEASE_SECONDS)

    async def reopen(self, store: Store) -> Store:
        await store.close()
        # Gone means its leases have lapsed: until then its scans still count as running.
        client = Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + 5
            while await client.keys("xployt:lease:*"):
                assert time.monotonic() < deadline, "the closed store's leases never lapsed"
                await asyncio.sleep(LEASE_SECONDS / 10)
        finally:
            await client.aclose()
        return await self.open()


@pytest.fixture(params=["sqlite", "redis"])
def store_backend(request, tmp_path) -> Backend:
    if request.param == "redis":
        return RedisBackend(request.getfixturevalue("redis_server").url)
    return SQLiteBackend(str(tmp_path / "var" / "db.sqlite"))


@pytest.fixture
async def store(store_backend):
    yield await store_backend.open()
    await store_backend.close_all()


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
        EventDraft(Status.COMPLETED, 90, "done", summary=count_severities(["high"])),
        vulnerabilities=[{"id": "v1", "severity": "high"}],
        skipped_events=2,
    )
    assert done.terminal
    assert done.payload()["progress_percent"] == 100
    assert done.payload()["summary"] == {**dict.fromkeys(SEVERITIES, 0), "high": 1}
    with pytest.raises(ScanFinished):
        await store.append_event("s1", EventDraft(Status.SCANNING, 50))

    events = await store.events_after("s1", 0, limit=100)
    assert [event.seq for event in events] == [1, 2, 3, 4]
    assert [event.terminal for event in events] == [False, False, False, True]
    assert [e.seq for e in await store.events_after("s1", 2, limit=1)] == [3]

    scan = await store.get_scan("s1")
    assert scan is not None
    assert (scan.status, scan.progress_percent, scan.last_seq) == (Status.COMPLETED, 100, 4)
    assert scan.finished_at is not None
    assert scan.skipped_events == 2
    assert scan.configurations == {"depth": 2}
    page = await store.findings_page("s1", start=0, limit=10)
    assert page.vulnerabilities == [{"id": "v1", "severity": "high"}]
    assert (page.summary["high"], page.total, page.dropped) == (1, 1, 0)


async def test_concurrent_appends_never_share_a_sequence_number(store):
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    await asyncio.gather(
        *(store.append_event("s1", EventDraft(Status.SCANNING, i)) for i in range(50))
    )
    events = await store.events_after("s1", 0, limit=1000)
    assert [event.seq for event in events] == list(range(1, 52))


async def test_cancelled_writer_caller_leaves_no_open_transaction(store):
    heard: list[int] = []
    store.on_append(lambda event: heard.append(event.seq))
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
    assert heard == stored, "what was committed for a cancelled caller was still told"


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


async def test_interrupt_unfinished_ends_only_running_scans(store_backend, store):
    await store.create_scan(new_scan("running"), EventDraft(Status.PENDING))
    await store.append_event("running", EventDraft(Status.SCANNING, 30, "working"))
    await store.create_scan(new_scan("done"), EventDraft(Status.PENDING))
    await store.append_event("done", EventDraft(Status.COMPLETED))
    store = await store_backend.reopen(store)
    events = await store.interrupt_unfinished("interrupted: gateway restarted")
    assert [(e.scan_id, e.seq, e.terminal) for e in events] == [("running", 3, True)]
    data = json.loads(events[0].data)
    assert data["status"] == "failed"
    assert data["error"] == "interrupted: gateway restarted"
    assert data["progress_percent"] == 30
    assert await store.interrupt_unfinished("again") == []


async def test_closed_store_refuses_work(store_backend):
    from gateway.domain.errors import StoreUnavailable

    store = await store_backend.open()
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


async def test_unknown_scans(store):
    assert await store.get_scan("nope") is None
    assert await store.events_after("nope", 0, limit=10) == []
    assert await store.findings_page("nope", start=0, limit=10) == FindingsPage(
        [], count_severities([])
    )
    assert await store.list_scans("nobody", limit=10) == []
    with pytest.raises(ScanNotFound):
        await store.append_event("nope", EventDraft(Status.SCANNING, 1))


async def test_a_scan_id_is_stored_once(store):
    await store.create_scan(new_scan("s1"), EventDraft(Status.PENDING, 0, "queued"))
    with pytest.raises(ScanExists):
        await store.create_scan(new_scan("s1", "bob"), EventDraft(Status.PENDING))
    scan = await store.get_scan("s1")
    assert scan is not None
    assert scan.owner == "alice"
    assert [e.seq for e in await store.events_after("s1", 0, limit=10)] == [1]


async def test_record_round_trip(store):
    record, _ = await store.create_scan(new_scan(), EventDraft(Status.PENDING, 0, "queued"))
    assert await store.get_scan("s1") == record
    assert (record.error, record.finished_at, record.skipped_events) == (None, None, 0)
    assert record.sse_enabled is True
    failed = await store.append_event("s1", EventDraft(Status.FAILED, 20, "boom", error="bad"))
    scan = await store.get_scan("s1")
    assert scan is not None
    assert (scan.status, scan.error, scan.progress_text) == (Status.FAILED, "bad", "boom")
    assert scan.finished_at == scan.updated_at == failed.payload()["timestamp"]
    assert scan.created_at == record.created_at
    assert [s.scan_id for s in await store.list_scans("alice", limit=5)] == ["s1"]
    assert await store.findings_page("s1", start=0, limit=10) == FindingsPage(
        [], count_severities([])
    )


async def test_findings_are_read_a_page_at_a_time_with_the_tally_of_all(store):
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    vulns = [{"id": f"v{i}", "severity": ("high", "low")[i % 2]} for i in range(5)]
    await store.append_event(
        "s1", EventDraft(Status.COMPLETED, findings_dropped=3), vulnerabilities=vulns
    )
    page = await store.findings_page("s1", start=1, limit=2)
    assert page.vulnerabilities == vulns[1:3]
    assert page.summary == {
        "critical": 0,
        "high": 3,
        "medium": 0,
        "low": 2,
        "info": 0,
        "unknown": 0,
    }
    assert (page.total, page.dropped) == (5, 3)
    assert (await store.findings_page("s1", start=4, limit=10)).vulnerabilities == vulns[4:]
    end = await store.findings_page("s1", start=5, limit=10)
    assert (end.vulnerabilities, end.total) == ([], 5)


async def test_a_scan_that_kept_no_findings_still_counts_those_it_dropped(store):
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    await store.append_event("s1", EventDraft(Status.COMPLETED, findings_dropped=2))
    page = await store.findings_page("s1", start=0, limit=10)
    assert (page.vulnerabilities, page.total, page.dropped) == ([], 0, 2)


async def test_findings_stored_before_their_tally_was_are_counted(tmp_path):
    """A database written before ``scan_findings`` existed: the summary is counted instead."""
    path = str(tmp_path / "old.db")
    store = await SQLiteStore.open(path)
    try:
        await store.create_scan(new_scan(), EventDraft(Status.PENDING))
        vulns = [{"id": "a", "severity": "high"}, {"id": "b", "severity": "odd"}]
        await store.append_event("s1", EventDraft(Status.COMPLETED), vulnerabilities=vulns)
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM scan_findings")
        page = await store.findings_page("s1", start=0, limit=10)
    finally:
        await store.close()
    assert page.vulnerabilities == vulns
    assert (page.summary["high"], page.summary["unknown"], page.total) == (1, 1, 2)


async def test_a_page_ends_before_the_finding_that_passes_its_byte_bound(store):
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    vulns = [{"id": f"v{i}", "text": "é" * (10 * (i + 1))} for i in range(6)]
    await store.append_event("s1", EventDraft(Status.COMPLETED), vulnerabilities=vulns)
    sizes = [len(compact_json(v).encode()) for v in vulns]  # é is two bytes in UTF-8

    async def page(start: int, max_bytes: int | None) -> list[dict[str, Any]]:
        found = await store.findings_page("s1", start=start, limit=4, max_bytes=max_bytes)
        return list(found.vulnerabilities)

    assert await page(0, sum(sizes[:3])) == vulns[:3], "at the bound: the third still fits"
    assert await page(0, sum(sizes[:3]) - 1) == vulns[:2], "one byte less: it does not"
    assert await page(1, 1) == vulns[1:2], "a page always holds one finding"
    assert await page(2, None) == vulns[2:6], "without a bound, only the count limits it"
    assert await page(5, sum(sizes)) == vulns[5:]


async def test_a_long_page_is_whole_across_the_reads_that_fetch_it(store):
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    vulns = [{"id": f"v{i}"} for i in range(250)]
    await store.append_event("s1", EventDraft(Status.COMPLETED), vulnerabilities=vulns)
    whole = await store.findings_page("s1", start=3, limit=1000)
    assert whole.vulnerabilities == vulns[3:]
    size = sum(len(compact_json(v).encode()) for v in vulns[3:153])
    bounded = await store.findings_page("s1", start=3, limit=1000, max_bytes=size)
    assert bounded.vulnerabilities == vulns[3:153]


def test_next_event_says_which_record_fields_an_append_sets():
    running = ScanState(Status.SCANNING, 40, "half", None, 4)
    progress = next_event("s1", running, EventDraft(Status.SCANNING, 30, "more"), None)
    assert (progress.event.seq, progress.event.terminal) == (5, False)
    assert progress.changes["progress_percent"] == 40, "progress never goes backwards"
    assert "finished_at" not in progress.changes and "skipped_events" not in progress.changes
    assert progress.changes["error"] is None  # cleared
    failed = next_event("s1", running, EventDraft(Status.FAILED, error="boom"), 2)
    payload = json.loads(failed.event.data)
    assert failed.changes["finished_at"] == failed.changes["updated_at"] == payload["timestamp"]
    assert (failed.changes["error"], failed.changes["skipped_events"]) == ("boom", 2)
    with pytest.raises(ScanFinished):
        next_event(
            "s1", ScanState(Status.FAILED, 40, "", "boom", 5), EventDraft(Status.SCANNING), None
        )


def test_findings_tally_only_when_results_are_recorded():
    assert findings_tally([], None) is None
    assert findings_tally([], 0) == (count_severities([]), 0)
    summary, dropped = findings_tally([{"severity": "high"}, {"severity": "odd"}], None) or ({}, -1)
    assert (summary["high"], summary["unknown"], dropped) == (1, 1, 0)
