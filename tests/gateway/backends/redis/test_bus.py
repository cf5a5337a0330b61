"""The gateway on Redis, in one process: expired logs, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from gateway.backends.redis import RedisBus, RedisStore
from gateway.domain.models import EventDraft, NewScan, Status
from gateway.engine.hub import EndOfStream, Hub, Written
from gateway.http.appkeys import BUS
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import auth, error_shape, live_tasks, scans_ended, start_scan, stream


async def redis_gateway(gateway, server, **redis_settings):
    return await gateway(backend="redis", redis={"url": server.url, **redis_settings})


async def wait_gone(server, key: str) -> None:
    """Wait (bounded) for Redis to expire a key: nothing announces it."""
    client = aioredis.Redis.from_url(server.url)
    try:
        for _ in range(200):  # up to 10 s
            if not await client.exists(key):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{key} did not expire")
    finally:
        await client.aclose()


async def test_resume_after_the_log_expired_gets_a_reset_with_the_final_state(
    gateway, redis_server
):
    client = await redis_gateway(gateway, redis_server, retention_seconds=0.3)
    scan_id = await start_scan(client)
    full = await stream(client, scan_id)
    await wait_gone(redis_server, f"xployt:log:{scan_id}")

    for last_event_id in ("0", "2"):
        headers = {**auth(), "Last-Event-ID": last_event_id}
        async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=headers) as response:
            assert response.status == 200
            events = list(SSEParser().feed(await response.read()))
        assert [e.type for e in events] == ["reset"], "never a silent partial replay"
        data = json.loads(events[0].data)
        assert int(events[0].id) == full[-1][0]
        assert data["status"] == "completed" and "expired" in data["reason"]
    # The record and results outlive the log; the final id still ends the stream for good.
    scan = await client.get(f"/api/v1/scans/{scan_id}", headers=auth())
    assert (await scan.json())["data"]["status"] == "completed"
    headers = {**auth(), "Last-Event-ID": str(full[-1][0])}
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=headers) as response:
        assert response.status == 204


async def test_redis_down_then_back(gateway, redis_server):
    client = await redis_gateway(gateway, redis_server)
    scan_id = await start_scan(client, configurations={"steps": 3})
    await stream(client, scan_id)
    # A stream open on a running scan when Redis goes away: told to reconnect.
    running = await start_scan(client, use_sse=True, configurations={"step_delay": 30})
    live = await client.get(
        f"/api/v1/scans/{running}/stream",
        headers={**auth(), "Accept": "text/event-stream"},
    )
    await live.content.readuntil(b"id: 2\n")
    await redis_server.stop()
    rest = await asyncio.wait_for(live.content.read(), 30)
    assert b"retry: " in rest and b"does not answer; reconnect" in rest
    await asyncio.wait_for(client.app[BUS].wait_idle(), 10)

    ready = await client.get("/readyz")
    assert ready.status == 503
    started = await client.post(
        "/api/v1/scans/?use_sse=false",
        json={"repository_name": "acme/web", "scanner_name": "secret_scanner"},
        headers=auth(),
    )
    assert started.status == 503
    body = await started.json()
    error_shape(body)
    assert body["error"] == "store_unavailable"
    # An EventSource must not get an error status (it would stop for good): 200, retry, end.
    async with client.get(
        f"/api/v1/scans/{scan_id}/stream", headers={**auth(), "Accept": "text/event-stream"}
    ) as response:
        assert response.status == 200
        events = list(SSEParser().feed(await response.read()))
        assert events == [], "nothing about the scan, not even that it exists"
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        assert response.status == 503
        error_shape(await response.json())

    await redis_server.start()
    assert (await client.get("/readyz")).status == 200
    again = await stream(client, scan_id)
    assert [i for i, _ in again] == list(range(1, len(again) + 1))
    assert again[-1][1]["status"] == "completed"


async def test_a_subscriber_after_a_lost_feed_gets_a_reader_of_its_own(redis_server):
    """A feed lost while an old subscriber is still leaving must not be joined by a new one."""
    store = await RedisStore.open(redis_server.url)
    bus = RedisBus(Hub(subscriber_buffer=100))
    bus.attach(store)
    try:
        await store.create_scan(
            NewScan("s1", "alice", "acme/web", "secret_scanner", True, {}),
            EventDraft(Status.PENDING),
        )
        async with bus.subscribe("s1") as old:
            await redis_server.stop()
            await asyncio.wait_for(old.wait(), 30)
            assert old.ended is EndOfStream.UNAVAILABLE
            await redis_server.start()
            async with bus.subscribe("s1") as new:  # the old one has not left yet
                new.last = 1  # what the stream would have sent from the log
                assert new.follow(sink := Collect())
                await store.append_event("s1", EventDraft(Status.COMPLETED))
                await asyncio.wait_for(new.wait(), 30)
                assert new.ended is EndOfStream.TERMINAL
                assert [event.seq for event in sink.events] == [2]
        assert live_tasks("xread s1") == []
    finally:
        await store.close()


class Collect:
    """The stream's sink, minus the socket: keeps what the fan-out writes."""

    def __init__(self) -> None:
        self.events: list = []

    def try_write(self, batch):
        self.events.extend(batch.events)
        return Written.WROTE

    def heartbeat(self) -> bool:
        return True


async def test_a_scan_whose_end_cannot_be_written_is_ended_by_a_sweep(gateway, redis_server):
    """Redis away longer than store_retry_seconds: the runner gives the scan up, and once
    Redis is back its lease lapses and a sweep ends it, so no stream waits forever."""
    client = await redis_gateway(
        gateway,
        redis_server,
        lease_seconds=0.5,
        sweep_interval_seconds=0.1,
        store_retry_seconds=0.2,
    )
    scan_id = await start_scan(client, use_sse=True, configurations={"step_delay": 0.05})
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        await response.content.readuntil(b"id: 3\n")
        await redis_server.stop()
        await scans_ended()  # it gave up: nothing could be written
    await redis_server.start()
    events = []
    async with asyncio.timeout(30):  # a scan nobody ends would hold its stream open for good
        for _ in range(100):  # reconnect as EventSource does, bounded
            url = f"/api/v1/scans/{scan_id}/stream"
            async with client.get(url, headers=auth()) as response:
                events = list(SSEParser().feed(await response.read()))
            if events and json.loads(events[-1].data)["status"] == "failed":
                break
    final = json.loads(events[-1].data)
    assert final["error"] == "interrupted: replica lost"


async def test_streams_of_a_finished_scan_start_no_redis_reader(gateway, redis_server):
    """Nothing more can come: no XREAD is blocked (nor cancelled) for a dashboard's re-read."""
    client = await redis_gateway(gateway, redis_server)
    scan_id = await start_scan(client)
    full = await stream(client, scan_id)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:

        async def xreads() -> int:
            stats = await raw.info("commandstats")
            return int(stats.get("cmdstat_xread", {}).get("calls", 0))

        before = await xreads()
        for _ in range(3):
            assert await stream(client, scan_id) == full
        assert await xreads() == before
    finally:
        await raw.aclose()
