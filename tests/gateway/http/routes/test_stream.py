"""The event stream: replay then live, identical for every subscriber, nothing left behind."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
from typing import Any

import pytest

from gateway.domain.models import ScanRecord
from gateway.http.appkeys import BUS, RUNNER, STORE
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import (
    BACKENDS,
    auth,
    channels,
    live_tasks,
    read_events,
    scans_ended,
    start_scan,
    stream,
    subscribers,
)

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


async def wait_for_status(client, scan_id, wanted):
    """Follow the stream until an event with status ``wanted`` arrives; return its id."""
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        parser = SSEParser()
        async for chunk in response.content.iter_any():
            for event in parser.feed(chunk):
                if json.loads(event.data)["status"] == wanted:
                    return int(event.id)
    raise AssertionError(f"stream ended before {wanted}")


async def test_headers_and_terminal_end(client):
    scan_id = await start_scan(client)
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        events = await read_events(response)
    assert events[-1][1]["status"] == "completed"


async def test_late_and_concurrent_subscribers_get_identical_sequences(gateway):
    client = await gateway(mock={"step_delay_seconds": 0.02, "steps": 20})
    scan_id = await start_scan(client)
    early = [asyncio.create_task(stream(client, scan_id)) for _ in range(2)]
    await wait_for_status(client, scan_id, "scanning")
    late = asyncio.create_task(stream(client, scan_id))  # joins mid-scan
    results = await asyncio.gather(*early, late)
    after = await stream(client, scan_id)  # joins after the end
    stored = await client.app[STORE].events_after(scan_id, 0, limit=1000)
    expected = [(event.seq, json.loads(event.data)) for event in stored]
    assert expected[-1][1]["status"] == "completed"
    for events in [*results, after]:
        assert events == expected


async def test_many_scans_at_once_each_stream_their_own_log(client):
    scan_ids = [
        await start_scan(client, use_sse=i % 2 == 0, scanner=s)
        for i, s in enumerate(["secret_scanner", "sast_scanner", "llm_scanner"] * 3)
    ]
    streams = await asyncio.gather(*(stream(client, scan_id) for scan_id in scan_ids))
    for scan_id, events in zip(scan_ids, streams, strict=True):
        assert {data["scan_id"] for _, data in events} == {scan_id}
        assert [i for i, _ in events] == list(range(1, len(events) + 1))
        assert events[-1][1]["status"] == "completed"


async def test_heartbeat_comment_at_configured_interval(gateway):
    client = await gateway(stream={"heartbeat_seconds": 0.05}, mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        received = b""
        while b": ping" not in received:
            received += await response.content.readany()
    assert received.startswith(b"retry: 3000\n\nid: 1\n"), "the retry hint comes first"


async def test_client_going_away_leaves_nothing_behind(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    hub = client.app[BUS]
    response = await client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth())
    await response.content.readuntil(b"\n\n")
    assert subscribers(hub) == 1
    response.close()
    await asyncio.wait_for(hub.wait_idle(), 10)
    assert channels(hub) == 0
    assert live_tasks(f"fan-out {scan_id}") == []
    assert live_tasks(f"xread {scan_id}") == [], "no Redis reader left for the scan"


async def test_500_subscribers_connect_and_leave_without_leaks(gateway):
    client = await gateway(
        mock={"step_delay_seconds": 0.01, "steps": 30}, limits={"max_streams_per_subject": 500}
    )
    hub = client.app[BUS]
    baseline = asyncio.all_tasks()
    scan_ids = [await start_scan(client) for _ in range(5)]

    async def watch(index: int):
        scan_id = scan_ids[index % len(scan_ids)]
        if index % 2:
            return await stream(client, scan_id)  # to the end
        async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
            await response.content.readuntil(b"\n\n")  # one event, then leave
        return None

    finished = await asyncio.gather(*(watch(i) for i in range(500)))
    for events in filter(None, finished):
        assert [i for i, _ in events] == list(range(1, len(events) + 1))
    await scans_ended()
    await asyncio.wait_for(hub.wait_idle(), 10)
    assert client.app[RUNNER].running == 0
    assert channels(hub) == 0
    assert subscribers(hub) == 0

    # Server-side handler tasks finish a moment after the client closes; aiohttp offers nothing
    # to await for that, so this polls, bounded. What may remain are the server's tasks for
    # idle keep-alive connections of the client's pool.
    def leftovers():
        return [
            task
            for task in asyncio.all_tasks() - baseline
            if getattr(task.get_coro(), "__qualname__", "") != "RequestHandler.start"
        ]

    for _ in range(200):
        if not leftovers():
            break
        await asyncio.sleep(0.01)
    assert leftovers() == []


async def test_http_1_0_client_gets_unchunked_live_events(gateway):
    """Live events go straight to the socket; for an HTTP/1.0 client without chunk framing."""
    client = await gateway(mock={"step_delay_seconds": 0.01, "steps": 5})
    scan_id = await start_scan(client)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    headers = "".join(f"{k}: {v}\r\n" for k, v in auth().items())
    writer.write(f"GET /api/v1/scans/{scan_id}/stream HTTP/1.0\r\n{headers}\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), 30)  # HTTP/1.0: the server closes at the end
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower()
    fields = (b"id: ", b"data: ", b"retry: ", b": ")
    assert all(line == b"" or line.startswith(fields) for line in body.split(b"\n")), body
    events = list(SSEParser().feed(body))
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert json.loads(events[-1].data)["status"] == "completed"


def _awaited_frames(task: asyncio.Task[object]) -> list[tuple[str, dict[str, object]]]:
    """The coroutines a task is suspended in, outermost first: ``file:function`` and locals."""
    frames: list[tuple[str, dict[str, object]]] = []
    coro: Any = task.get_coro()
    while coro is not None and hasattr(coro, "cr_code"):
        frames.append(
            (f"{coro.cr_code.co_filename}:{coro.cr_code.co_qualname}", coro.cr_frame.f_locals)
        )
        coro = coro.cr_await
    return frames


def _code(generator: Any) -> Any:
    return getattr(generator, "ag_code", None) or generator.gi_code


def _closure(value: object) -> tuple[Any, ...]:
    return getattr(value, "__closure__", None) or ()


async def test_an_idle_stream_keeps_no_frame_of_what_only_passed_it_on(gateway):
    """An open stream keeps every coroutine it awaits through for as long as it is open (a few
    hundred bytes each, for each of thousands of streams): the middlewares that only pass the
    request on (request id, preflight, metrics), the route's handler (a partial of serve_log),
    the catch-up from the log and the sending of what queued up keep none, and the scan record
    it began from is not held, nor a timer of its own. Authentication stays a frame: it may wait
    for a key set."""
    client = await gateway(stream={"heartbeat_seconds": 0.05}, mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        received = b""
        while b": ping" not in received:  # heartbeats go to streams that follow live
            received += await response.content.readany()
        chains = [_awaited_frames(task) for task in asyncio.all_tasks()]
        chain = next(chain for chain in chains if any(":serve_log" in name for name, _ in chain))
        ours = [name.rsplit("/gateway/", 1)[1] for name, _ in chain if "/gateway/" in name]
        # Not the metrics middleware (streams are left out of its figures), nor a handler of
        # the route's own, nor a loop that follows live: serve_log is the handler, one
        # coroutine to the end, and waits itself.
        assert ours == [
            "http/responses.py:error_middleware",
            "http/auth.py:auth_middleware",
            "http/log_stream.py:serve_log",
        ]
        assert chain[-1][0].endswith(":serve_log"), "it waits on a future, not a coroutine"
        values = [value for _, names in chain for value in names.values()]
        cells = [cell.cell_contents for value in values for cell in _closure(value)]
        held = [type(value).__name__ for value in values + cells]
        assert ScanRecord.__name__ not in held, "not even in the snapshot's closure"
        # Its credential expires (auth() tokens do): the registry's one timer ends it then.
        assert "TimerHandle" not in held, "no timer of its own per stream"
        # Nor a generator's frame for its subscription (the Redis bus's was one).
        generators = [
            o for o in gc.get_objects() if inspect.isasyncgen(o) or inspect.isgenerator(o)
        ]
        assert [g for g in generators if "subscribe" in _code(g).co_name] == []
