"""The scan runner on its own: admission limits (and places given back however a scan ends,
even before its admission is decided), cancel, connect retries with capped backoff, and
exactly one terminal event however a scan ends. A real SQLite store and hub; the sources
are the test's own, fed message by message."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.sqlite import SQLiteStore
from gateway.config import LimitsConfig, config_from_dict
from gateway.domain.errors import Draining, LimitExceeded, StoreUnavailable, UpstreamFault
from gateway.domain.models import EventDraft, NewScan, ScanFinished, ScanRecord, Status
from gateway.engine.hub import Hub
from gateway.engine.limits import Limits
from gateway.engine.local_limits import LocalLimits
from gateway.engine.runner import ScanRunner
from gateway.scanners.client import UpstreamError
from tests.helpers import scans_ended

END = object()  # fed to a source: it returns (the scanner ends its stream)


class Feed:
    """The scanners' side: each scan's source reads the messages the test puts here."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[object]] = {}
        self.opened: dict[str, asyncio.Event] = {}
        self.closed: set[str] = set()

    def queue(self, scan_id: str) -> asyncio.Queue[object]:
        return self.queues.setdefault(scan_id, asyncio.Queue())

    def put(self, scan_id: str, *messages: object) -> None:
        for message in messages:
            self.queue(scan_id).put_nowait(message)

    def opening(self, scan_id: str) -> asyncio.Event:
        return self.opened.setdefault(scan_id, asyncio.Event())

    async def source(self, scan: ScanRecord) -> AsyncGenerator[object, None]:
        queue = self.queue(scan.scan_id)
        self.opening(scan.scan_id).set()
        try:
            while (message := await queue.get()) is not END:
                yield message
        finally:
            self.closed.add(scan.scan_id)


MakeRunner = Callable[..., ScanRunner]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(str(tmp_path / "gateway.db"))
    yield store
    await store.close()


@pytest.fixture
async def make_runner(store: SQLiteStore) -> AsyncIterator[MakeRunner]:
    runners: list[ScanRunner] = []

    def make(
        feed: Feed, *, connect: Any = None, admission: Limits | None = None, **config: Any
    ) -> ScanRunner:
        hub = Hub(subscriber_buffer=100)
        store.on_append(hub.publish)
        runner = ScanRunner(
            store,
            hub,
            config_from_dict(config),
            upstream=connect or feed.source,
            simulation=feed.source,
            limits=admission,
        )
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.close()


def scan(scan_id: str, owner: str = "alice", *, sse: bool = False) -> NewScan:
    return NewScan(scan_id, owner, "acme/web", "secret_scanner", sse, {})


async def submit(runner: ScanRunner, scan_id: str, owner: str = "alice", **kw: Any) -> None:
    await runner.submit(scan(scan_id, owner, **kw), EventDraft(Status.PENDING, 0, "queued"))


async def log(store: SQLiteStore, scan_id: str) -> list[dict[str, Any]]:
    return [json.loads(event.data) for event in await store.events_after(scan_id, 0, limit=100)]


def terminal(events: list[dict[str, Any]]) -> list[str]:
    ends = {"completed", "failed", "cancelled"}
    return [event["status"] for event in events if event["status"] in ends]


async def test_admission_per_subject_and_in_total_at_the_limit_and_past_it(make_runner, store):
    feed = Feed()
    limits = {"max_running_scans": 3, "max_running_scans_per_subject": 2}
    runner = make_runner(feed, limits={**limits, "retry_after_seconds": 7})
    await submit(runner, "a1")
    await submit(runner, "a2")  # alice at her limit
    with pytest.raises(LimitExceeded, match="you already run 2 scans") as refused:
        await submit(runner, "a3")
    assert refused.value.headers["Retry-After"] == "7"
    await submit(runner, "b1", "bob")  # the gateway at its limit
    with pytest.raises(LimitExceeded, match="maximum of 3 scans"):
        await submit(runner, "c1", "carol")
    assert runner.running == 3
    feed.put("a1", {"status": "completed"})
    await scans_ended("a1")
    assert runner.running == 2
    await submit(runner, "a4")  # a place is free again, for alice too
    assert terminal(await log(store, "a3")) == [] and await store.get_scan("a3") is None


QUEUED = EventDraft(Status.PENDING, 0, "queued")


async def test_scans_submitted_together_are_admitted_all_or_none(make_runner, store):
    feed = Feed()
    runner = make_runner(feed, limits={"max_running_scans_per_subject": 3})
    started = runner.submit_all([scan("a1"), scan("a2")], QUEUED)
    assert [record.scan_id for record in await asyncio.gather(*started)] == ["a1", "a2"]
    refused = runner.submit_all([scan("a3"), scan("a4")], QUEUED)
    for future in refused:
        with pytest.raises(LimitExceeded, match="1 more can start now"):
            await future
    assert await store.get_scan("a3") is None and await store.get_scan("a4") is None
    assert runner.running == 2
    await submit(runner, "a3")  # the refused pair took no place
    with pytest.raises(ValueError, match="one owner"):
        runner.submit_all([scan("x1"), scan("x2", "bob")], QUEUED)


async def test_a_scan_that_fails_gives_its_place_back(make_runner, store):
    feed = Feed()
    runner = make_runner(feed, limits={"max_running_scans_per_subject": 1})
    await submit(runner, "s1")
    feed.put("s1", END)  # the scanner ends without a terminal event: failed
    await scans_ended("s1")
    assert terminal(await log(store, "s1")) == ["failed"]
    await submit(runner, "s2")


class GatedLimits(LocalLimits):
    """Limits whose admissions wait for the test's gate, and that say when they release (a
    seam: the runner takes any ``Limits``)."""

    def __init__(self, config: LimitsConfig) -> None:
        super().__init__(config)
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()
        self.released = asyncio.Event()

    async def admit_scans(self, subject: str, scan_ids: Sequence[str]) -> None:
        self.asked.set()
        await self.gate.wait()
        await super().admit_scans(subject, scan_ids)

    async def release_scan(self, scan_id: str) -> None:
        await super().release_scan(scan_id)
        self.released.set()


async def test_a_scan_cancelled_before_its_admission_is_decided_gives_its_place_back(
    make_runner, store
):
    limits = {"max_running_scans_per_subject": 1}
    gated = GatedLimits(config_from_dict({"limits": limits}).limits)
    runner = make_runner(Feed(), admission=gated, limits=limits)
    created = runner.submit(scan("s1"), QUEUED)
    await asyncio.wait_for(gated.asked.wait(), 5)
    await runner.cancel("s1")  # nothing stored yet: nothing to end
    with pytest.raises(StoreUnavailable, match="interrupted"):
        await created
    assert await store.get_scan("s1") is None
    gated.gate.set()  # the admission grants s1 its place after all ...
    await asyncio.wait_for(gated.released.wait(), 5)  # ... and the runner gives it back
    await submit(runner, "s2")


async def test_closing_while_an_admission_is_undecided_takes_no_place(make_runner, store):
    limits = {"max_running_scans_per_subject": 1}
    gated = GatedLimits(config_from_dict({"limits": limits}).limits)
    runner = make_runner(Feed(), admission=gated, limits=limits)
    created = runner.submit(scan("s1"), QUEUED)
    await asyncio.wait_for(gated.asked.wait(), 5)
    await asyncio.wait_for(runner.close(), 5)  # does not wait for the gate
    with pytest.raises(StoreUnavailable):
        await created
    gated.gate.set()
    await gated.admit_scans("alice", ["s2"])  # s1 holds no place


async def test_a_draining_runner_starts_nothing_new_and_says_when_nothing_runs(make_runner, store):
    feed = Feed()
    runner = make_runner(feed, limits={"retry_after_seconds": 7})
    await asyncio.wait_for(runner.idle(), 5)  # nothing runs yet
    await submit(runner, "s1")
    await submit(runner, "s2")
    idle = asyncio.ensure_future(runner.idle())
    runner.drain()
    with pytest.raises(Draining, match="draining before it stops") as refused:
        await submit(runner, "s3")
    assert (refused.value.status, refused.value.code) == (503, "draining")
    assert refused.value.headers["Retry-After"] == "7"
    assert await store.get_scan("s3") is None
    feed.put("s1", {"status": "completed"})
    await scans_ended("s1")
    assert runner.running == 1 and not idle.done()  # s2 still runs: the drain waits
    feed.put("s2", {"status": "scanning", "progress_percent": 40}, {"status": "completed"})
    await asyncio.wait_for(idle, 5)
    assert runner.running == 0
    for scan_id in ("s1", "s2"):  # both ran to their end: nothing was interrupted
        assert terminal(await log(store, scan_id)) == ["completed"]


async def test_cancel_ends_the_scan_cancelled_once_and_closes_its_source(make_runner, store):
    feed = Feed()
    runner = make_runner(feed)
    await submit(runner, "s1")
    await asyncio.wait_for(feed.opening("s1").wait(), 5)  # the scanner is being read
    await runner.cancel("s1")
    events = await log(store, "s1")
    assert terminal(events) == ["cancelled"]
    assert events[-1]["status"] == "cancelled"
    assert "s1" in feed.closed, "the upstream request is closed"
    assert runner.running == 0
    with pytest.raises(ScanFinished):
        await runner.cancel("s1")  # ended already: nothing more is written
    assert terminal(await log(store, "s1")) == ["cancelled"]


async def test_a_source_ending_without_a_terminal_event_fails_the_scan_once(make_runner, store):
    feed = Feed()
    runner = make_runner(feed)
    await submit(runner, "s1")
    feed.put("s1", {"status": "scanning", "progress_percent": 50}, END)
    await scans_ended("s1")
    events = await log(store, "s1")
    assert terminal(events) == ["failed"]
    assert "ended its stream without a terminal event" in events[-1]["error"]


async def test_nothing_is_read_after_the_terminal_message(make_runner, store):
    feed = Feed()
    runner = make_runner(feed)
    await submit(runner, "s1")
    feed.put("s1", {"status": "completed"}, {"status": "failed", "error": "late"})
    await scans_ended("s1")
    assert terminal(await log(store, "s1")) == ["completed"]
    assert "s1" in feed.closed
    assert feed.queue("s1").qsize() == 1, "the message after the end was never read"


async def test_connect_failures_are_retried_with_capped_backoff_then_fail(make_runner, store):
    attempts: list[str] = []

    async def unreachable(scan: ScanRecord) -> AsyncGenerator[object, None]:
        attempts.append(scan.scan_id)
        raise UpstreamError(UpstreamFault.CONNECT, "connection refused")
        yield  # an async generator, as the real upstream is

    backoff = {"retry_backoff_seconds": 0.2, "retry_backoff_max_seconds": 0.3}
    runner = make_runner(Feed(), connect=unreachable, upstream={"connect_retries": 3, **backoff})
    await submit(runner, "s1", sse=True)
    await scans_ended("s1")
    assert attempts == ["s1"] * 4, "one attempt, then connect_retries more"
    events = await log(store, "s1")
    texts = [event["progress_text"] or "" for event in events]
    retries = [re.search(r"retrying in ([\d.]+) s \(attempt (\d) of 4\)", t) for t in texts]
    found = [match.groups() for match in retries if match is not None]
    assert [attempt for _, attempt in found] == ["2", "3", "4"]
    delays = [float(delay) for delay, _ in found]
    # Half fixed, half random: within [d/2, d] for d = 0.2, then 0.4 and 0.8 capped at 0.3.
    assert 0.1 <= delays[0] <= 0.2
    assert all(0.1 <= delay <= 0.3 for delay in delays[1:]), delays
    assert terminal(events) == ["failed"]
    assert "connection refused" in events[-1]["error"]


async def test_a_burst_of_messages_that_change_nothing_still_lets_other_tasks_run(make_runner):
    """Messages already buffered are handled without any I/O to wait on; the runner gives the
    event loop a turn every so often, so one scanner's burst cannot stall the gateway."""
    turns = 0
    seen: list[int] = []

    async def spin() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def burst(scan: ScanRecord) -> AsyncGenerator[object, None]:
        yield {"status": "scanning", "progress_percent": 5}
        for _ in range(640):  # the same as the first: nothing to write
            seen.append(turns)
            yield {"status": "scanning", "progress_percent": 5}
        yield {"status": "completed"}

    spinner = asyncio.create_task(spin())
    try:
        runner = make_runner(Feed(), connect=burst)
        await submit(runner, "s1", sse=True)
        await scans_ended("s1")
    finally:
        spinner.cancel()
    assert len(seen) == 640
    assert len(set(seen)) >= 640 // 64, "other tasks ran while the burst was read"
