"""What only the shared Redis store does: several replicas, leases, sweeps, tails, outages.

Every test has a redis-server of its own; the stores in a test play the gateway replicas.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from gateway.backends.redis import RedisStore
from gateway.backends.redis.store import MAX_BLOCK_MS
from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import EventDraft, NewScan, Status
from tests.processes import free_port

LEASE = 0.3  # seconds: renewed every 0.1 s
REASON = "interrupted: replica lost"
WAIT_SECONDS = 5.0  # for a condition to come true


def new_scan(scan_id: str = "s1", owner: str = "alice") -> NewScan:
    return NewScan(scan_id, owner, "acme/web", "secret_scanner", True, {"depth": 2})


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def replica(redis_server):
    """Open a RedisStore (a replica) on the test's server; all are closed at the end."""
    opened: list[RedisStore] = []

    async def open_replica(**options) -> RedisStore:
        store = await RedisStore.open(redis_server.url, **{"lease_seconds": LEASE, **options})
        opened.append(store)
        return store

    yield open_replica
    for store in opened:
        await store.close()


@pytest.fixture
async def raw(redis_server):
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_keys_and_the_log_stream(replica, raw):
    store = await replica(key_prefix="t:", retention_seconds=60, record_retention_seconds=600)
    _, first = await store.create_scan(new_scan(), EventDraft(Status.PENDING, 0, "queued"))
    assert await raw.get("t:lease:s1") == store.replica_id.encode()
    assert await raw.smembers("t:running") == {b"s1"}
    assert await raw.zrange("t:owner:alice", 0, -1) == [b"s1"]
    assert await raw.hget("t:scan:s1", "configurations") == b'{"depth":2}'
    assert not await raw.hexists("t:scan:s1", "error")
    done = await store.append_event(
        "s1", EventDraft(Status.COMPLETED), vulnerabilities=[{"id": "v1", "severity": "high"}]
    )
    # The stream entry id is the SSE id; ``d`` is the data line, ``t`` marks the end.
    assert await raw.xrange("t:log:s1") == [
        (b"1-0", {b"d": first.data.encode(), b"t": b"0"}),
        (b"2-0", {b"d": done.data.encode(), b"t": b"1"}),
    ]
    assert await raw.lrange("t:findings:s1", 0, -1) == [b'{"id":"v1","severity":"high"}']
    assert await raw.hget("t:scan:s1", "findings_dropped") == b"0"
    assert await raw.smembers("t:running") == set()
    assert not await raw.exists("t:lease:s1")
    assert 0 < await raw.pttl("t:log:s1") <= 60_000
    assert 60_000 < await raw.pttl("t:scan:s1") <= 600_000
    assert 60_000 < await raw.pttl("t:findings:s1") <= 600_000
    assert await store.position("s1") == (2, True)
    assert await store.position("nope") == (0, False)


async def test_two_replicas_appending_to_one_scan_share_no_sequence_number(replica):
    one, two = await replica(), await replica()
    await one.create_scan(new_scan(), EventDraft(Status.PENDING))
    appended = await asyncio.gather(
        *(
            (one if i % 2 else two).append_event("s1", EventDraft(Status.SCANNING, i))
            for i in range(60)
        )
    )
    assert sorted(event.seq for event in appended) == list(range(2, 62))
    assert [e.seq for e in await two.events_after("s1", 0, limit=100)] == list(range(1, 62))
    scan = await one.get_scan("s1")
    assert scan is not None
    assert scan.last_seq == 61


async def test_a_held_lease_is_renewed(replica, raw):
    store = await replica()
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    first_expiry = time.monotonic() + await raw.pttl("xployt:lease:s1") / 1000

    async def well_past_the_first_expiry() -> bool:
        assert await raw.get("xployt:lease:s1") == store.replica_id.encode()
        return bool(time.monotonic() > first_expiry + 2 * LEASE)

    await until(well_past_the_first_expiry, "the lease outlived three of its terms")


async def test_a_replica_that_stops_renewing_loses_its_scan_to_exactly_one_sweep(replica, raw):
    gone, one, two = await replica(), await replica(), await replica()
    await gone.create_scan(new_scan("s1"), EventDraft(Status.PENDING))
    await gone.append_event("s1", EventDraft(Status.SCANNING, 30, "working"))
    await gone.create_scan(new_scan("done"), EventDraft(Status.PENDING))
    await gone.append_event("done", EventDraft(Status.COMPLETED))
    await raw.sadd("xployt:running", "ghost")  # a running id whose record is gone
    assert await one.interrupt_unfinished(REASON) == [], "a live lease spares the scan"
    assert await raw.sismember("xployt:running", "ghost") == 0

    await gone.close()  # stops renewing without ending s1

    async def lapsed() -> bool:
        return bool(await raw.exists("xployt:lease:s1") == 0)

    await until(lapsed, "the lease lapsed")
    # Writes paused: both sweepers read s1 unfinished and wait at EXEC, then race to commit.
    await raw.client_pause(int(WAIT_SECONDS * 1000), all=False)
    sweeps = [asyncio.create_task(r.interrupt_unfinished(REASON)) for r in (one, two)]
    await until(lambda: blocked_clients(raw, 2), "both sweepers wait at EXEC")
    await raw.client_unpause()
    events = [event for found in await asyncio.gather(*sweeps) for event in found]
    assert [(e.scan_id, e.seq, e.terminal) for e in events] == [("s1", 3, True)]
    assert events[0].payload()["error"] == REASON
    log = await one.events_after("s1", 0, limit=10)
    assert [e.terminal for e in log] == [False, False, True]
    scan = await two.get_scan("s1")
    assert scan is not None
    assert (scan.status, scan.error, scan.progress_percent) == (Status.FAILED, REASON, 30)
    assert await raw.smembers("xployt:running") == set()


async def test_a_sweep_spares_the_scans_its_own_replica_holds(replica, raw):
    mine, other = await replica(), await replica()
    await mine.create_scan(new_scan(), EventDraft(Status.PENDING))
    await raw.delete("xployt:lease:s1")  # lapsed, as in a Redis outage longer than a lease
    assert await mine.interrupt_unfinished(REASON) == []

    async def taken_back() -> bool:
        return bool(await raw.get("xployt:lease:s1") == mine.replica_id.encode())

    await until(taken_back, "the holder took its lapsed lease back")
    assert await other.interrupt_unfinished(REASON) == []


async def test_on_lost_fires_when_another_replica_ends_a_held_scan(replica):
    holder, other = await replica(), await replica()
    lost: list[str] = []
    told = asyncio.Event()

    def on_lost(scan_id: str) -> None:
        lost.append(scan_id)
        told.set()

    holder.on_lost(on_lost)
    holder.on_lost(lambda scan_id: 1 / 0)  # a failing callback does not stop the others
    await holder.create_scan(new_scan("ended-here"), EventDraft(Status.PENDING))
    await holder.create_scan(new_scan("cancelled-there"), EventDraft(Status.PENDING))
    await holder.append_event("ended-here", EventDraft(Status.COMPLETED))
    await other.append_event("cancelled-there", EventDraft(Status.CANCELLED))
    await asyncio.wait_for(told.wait(), 5)
    assert lost == ["cancelled-there"], "only a scan ended elsewhere is lost"


async def test_tail_waits_for_an_event_from_another_replica(replica, raw):
    reader, writer = await replica(), await replica()
    await reader.create_scan(new_scan(), EventDraft(Status.PENDING))
    assert await reader.tail("s1", 1, block_ms=50) == []
    assert [e.seq for e in await reader.tail("s1", 0, block_ms=50)] == [1]
    task = asyncio.create_task(reader.tail("s1", 1, block_ms=5000))
    await until(lambda: blocked_clients(raw, 1), "the tail blocks in XREAD")
    appended = await writer.append_event("s1", EventDraft(Status.SCANNING, 10, "going"))
    assert await asyncio.wait_for(task, 5) == [appended]


async def test_tails_wait_side_by_side(replica, raw):
    reader, writer = await replica(), await replica()
    for index in range(20):
        await writer.create_scan(new_scan(f"s{index}"), EventDraft(Status.PENDING))
    tails = [asyncio.create_task(reader.tail(f"s{index}", 1, block_ms=5000)) for index in range(20)]
    await until(lambda: blocked_clients(raw, 20), "all twenty tails block at once")
    tails[0].cancel()  # a reader that goes away costs the others nothing
    await asyncio.gather(tails[0], return_exceptions=True)
    for index in range(1, 20):
        await writer.append_event(f"s{index}", EventDraft(Status.COMPLETED))
    results = await asyncio.wait_for(asyncio.gather(*tails[1:]), 5)
    assert [[(e.scan_id, e.seq, e.terminal) for e in r] for r in results] == [
        [(f"s{index}", 2, True)] for index in range(1, 20)
    ]
    await reader.ping()


async def blocked_clients(raw: Redis, count: int) -> bool:
    return bool((await raw.info("clients"))["blocked_clients"] == count)


async def test_store_unavailable_while_redis_is_down_then_back_with_its_data(
    replica, raw, redis_server, caplog
):
    caplog.set_level(logging.DEBUG, logger="gateway.backends.redis")
    store = await replica()
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    await store.append_event("s1", EventDraft(Status.SCANNING, 10))
    await redis_server.kill()  # no shutdown save: the append-only file has it all

    calls: list[Callable[[], Awaitable[object]]] = [
        store.ping,
        lambda: store.get_scan("s1"),
        lambda: store.list_scans("alice", limit=5),
        lambda: store.events_after("s1", 0, limit=5),
        lambda: store.tail("s1", 0, block_ms=100),
        lambda: store.append_event("s1", EventDraft(Status.SCANNING, 20)),
        lambda: store.interrupt_unfinished(REASON),
        lambda: RedisStore.open(redis_server.url),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match="does not answer"):
            await call()

    def renewals_failed() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("lease renewal failed")]

    async def failed_three_times() -> bool:
        return len(renewals_failed()) >= 3

    await until(failed_three_times, "lease renewal failed three times")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage"

    await redis_server.start()
    await store.ping()
    assert [e.seq for e in await store.events_after("s1", 0, limit=5)] == [1, 2]
    assert (await store.append_event("s1", EventDraft(Status.SCANNING, 30))).seq == 3

    async def renewed_again() -> bool:
        return any(r.getMessage() == "scan leases renewed again" for r in caplog.records)

    await until(renewed_again, "the renewer renews again")
    assert await raw.get("xployt:lease:s1") == store.replica_id.encode()


async def test_the_record_outlives_its_log(replica, raw):
    store = await replica(retention_seconds=0.2, record_retention_seconds=60)
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    vulns = [{"id": "v1", "severity": "high"}]
    await store.append_event("s1", EventDraft(Status.COMPLETED), vulnerabilities=vulns)

    async def log_expired() -> bool:
        return bool(await raw.exists("xployt:log:s1") == 0)

    await until(log_expired, "the log expired")
    assert await store.events_after("s1", 0, limit=10) == []
    scan = await store.get_scan("s1")
    assert scan is not None
    assert scan.last_seq == 2, "the stream route tells an expired log by this"
    assert scan.status is Status.COMPLETED
    assert (await store.findings_page("s1", start=0, limit=10)).vulnerabilities == vulns
    assert [s.scan_id for s in await store.list_scans("alice", limit=5)] == ["s1"]


async def test_a_listed_record_that_expired_is_dropped(replica, raw):
    store = await replica()
    await store.create_scan(new_scan("old"), EventDraft(Status.PENDING))
    await store.create_scan(new_scan("new"), EventDraft(Status.PENDING))
    await raw.delete("xployt:scan:old")
    assert [s.scan_id for s in await store.list_scans("alice", limit=5)] == ["new"]
    assert await raw.zrange("xployt:owner:alice", 0, -1) == [b"new"]


async def test_open_and_tail_check_their_arguments(replica):
    with pytest.raises(ValueError, match="record_retention_seconds"):
        await RedisStore.open(
            "redis://127.0.0.1:1/0", retention_seconds=10, record_retention_seconds=5
        )
    with pytest.raises(ValueError, match="positive"):
        await RedisStore.open("redis://127.0.0.1:1/0", lease_seconds=0)
    with pytest.raises(StoreUnavailable):
        await RedisStore.open(f"redis://127.0.0.1:{free_port()}/0")
    store = await replica()
    for block_ms in (0, MAX_BLOCK_MS + 1):
        with pytest.raises(ValueError, match="block_ms"):
            await store.tail("s1", 0, block_ms=block_ms)


async def test_a_cancelled_call_ends_cancelled(replica):
    """Python 3.11's wait_for, inside redis-py, can drop a cancel that lands as a command is
    sent; the store raises it anyway (else a cancelled reader, or the renewer, keeps going)."""
    store = await replica()
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    calls = (store.ping, lambda: store.get_scan("s1"), lambda: store.tail("s1", 0, block_ms=50))
    for attempt in range(300):
        task = asyncio.create_task(calls[attempt % 3]())
        for _ in range(attempt % 7):
            await asyncio.sleep(0)
        if task.cancel():
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await task


class ReplyLosingProxy:
    """A TCP proxy to Redis that, once armed, passes the next EXEC on, lets Redis apply it,
    then drops the reply and the client's connection: an append whose outcome is unknown."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.armed = False
        self.cut = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, client_r, client_w) -> None:
        upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.port)
        self._writers += [client_w, upstream_w]
        exec_sent = asyncio.Event()

        async def to_redis() -> None:
            while data := await client_r.read(65536):
                upstream_w.write(data)
                if self.armed and b"EXEC" in data:
                    self.armed = False
                    exec_sent.set()

        async def to_client() -> None:
            while data := await upstream_r.read(65536):
                # EXEC's reply is the first array after it: once it is here, Redis applied it.
                if exec_sent.is_set() and b"*" in data:
                    client_w.transport.abort()
                    upstream_w.close()
                    self.cut.set()
                    return
                client_w.write(data)

        for pump in (to_redis(), to_client()):
            task = asyncio.create_task(pump)
            self._tasks.add(task)


async def test_an_append_retried_after_its_reply_was_lost_is_stored_once(redis_server, raw):
    proxy = ReplyLosingProxy(int(redis_server.url.rsplit(":", 1)[1].split("/")[0]))
    store = await RedisStore.open(await proxy.start(), lease_seconds=LEASE)
    try:
        await store.create_scan(new_scan(), EventDraft(Status.PENDING))
        draft = EventDraft(Status.SCANNING, 10, "a tenth")
        proxy.armed = True
        with pytest.raises(StoreUnavailable):
            await store.append_event("s1", draft)
        assert proxy.cut.is_set()
        assert await raw.xlen("xployt:log:s1") == 2, "Redis applied it; the store cannot know"
        retried = await store.append_event("s1", draft)  # what the runner does
        assert retried.seq == 2
        assert await raw.xlen("xployt:log:s1") == 2, "not stored a second time"
        following = await store.append_event("s1", EventDraft(Status.SCANNING, 20))
        assert following.seq == 3
    finally:
        await store.close()
        await proxy.close()


async def test_results_stored_before_findings_lists_are_still_read(replica, raw):
    """An upgrade loses nothing: a scan completed by an older gateway kept its findings as one
    JSON array under ``vulns:{id}``, and no tally in its record."""
    store = await replica()
    await store.create_scan(new_scan(), EventDraft(Status.PENDING))
    await store.append_event("s1", EventDraft(Status.COMPLETED))
    await raw.hdel("xployt:scan:s1", "findings_summary", "findings_dropped")
    vulns = [{"id": "a", "severity": "high"}, {"id": "b", "severity": "low"}]
    await raw.set("xployt:vulns:s1", json.dumps(vulns))
    page = await store.findings_page("s1", start=1, limit=10)
    assert (page.vulnerabilities, page.total, page.summary["high"]) == (vulns[1:], 2, 1)
