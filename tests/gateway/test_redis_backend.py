"""The gateway on Redis, in one process: expired logs, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from gateway.appkeys import BUS
from gateway.sse_parser import SSEParser
from tests.conftest import auth, error_shape, start_scan, stream


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
