"""DELETE /api/v1/scans/{id}: the upstream request closes, the log ends ``cancelled``."""

from __future__ import annotations

import asyncio
import json
import socket

from gateway.domain.models import EventDraft, NewScan, Status
from gateway.http.appkeys import RUNNER, STORE
from gateway.scanners.sse_parser import SSEParser
from mock_scanner.app import scan_finished
from tests.helpers import auth, start_scan, stream


async def watch_until(client, scan_id, status):
    """Open the stream, read until an event with ``status``; return the open response."""
    response = await client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth())
    parser = SSEParser()
    while True:
        chunk = await response.content.readany()
        assert chunk, f"stream ended before {status}"
        if any(json.loads(e.data)["status"] == status for e in parser.feed(chunk)):
            return response


async def cancel(client, scan_id, sub="alice"):
    response = await client.delete(f"/api/v1/scans/{scan_id}", headers=auth(sub))
    return response.status, await response.json()


async def test_cancel_while_scanning_closes_upstream_and_ends_streams(client, scanner):
    scan_id = await start_scan(client, use_sse=True, configurations={"stall_at": 50})
    watcher = await watch_until(client, scan_id, "scanning")
    status, body = await cancel(client, scan_id)
    assert status == 200
    assert body["data"]["status"] == "cancelled"
    assert body["data"]["finished_at"] is not None
    # The watcher sees the cancelled event and its stream ends.
    rest = await watcher.content.read()
    watcher.close()
    assert b'"status":"cancelled"' in rest
    # The scanner's connection was closed.
    await asyncio.wait_for(scan_finished(scanner.app, scan_id).wait(), 10)
    events = await stream(client, scan_id)
    assert [d["status"] for _, d in events][-1] == "cancelled"
    assert [i for i, _ in events] == list(range(1, len(events) + 1))


async def test_cancel_while_connecting(gateway):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await gateway(
        scanners={"sast_scanner": f"http://127.0.0.1:{port}/scan"},
        upstream={"connect_retries": 50, "retry_backoff_seconds": 5},
    )
    scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner")
    watcher = await watch_until(client, scan_id, "connecting")
    status, body = await cancel(client, scan_id)
    watcher.close()
    assert status == 200
    assert body["data"]["status"] == "cancelled"


async def test_cancel_in_mock_mode_and_right_after_start(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    running = await start_scan(client)
    watcher = await watch_until(client, running, "connecting")
    watcher.close()
    assert (await cancel(client, running))[0] == 200


async def test_cancel_right_after_creation_still_ends_cancelled(gateway):
    """Cancelled as soon as it is stored, before any scanner message."""
    client = await gateway(mock={"step_delay_seconds": 30})
    runner = client.app[RUNNER]
    new = NewScan("early", "alice", "acme/web", "secret_scanner", False, {})
    await runner.submit(new, EventDraft(Status.PENDING))
    await runner.cancel("early")
    events = await stream(client, "early")
    assert [d["status"] for _, d in events] in (
        ["pending", "cancelled"],
        ["pending", "connecting", "cancelled"],
    )
    assert runner.running == 0


async def test_two_cancels_at_once_both_end_every_stream(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    watcher = await watch_until(client, scan_id, "connecting")
    first, second = await asyncio.gather(cancel(client, scan_id), cancel(client, scan_id))
    assert {first[0], second[0]} <= {200, 409}
    assert 200 in (first[0], second[0])
    rest = await asyncio.wait_for(watcher.content.read(), 10)
    watcher.close()
    assert rest.rstrip().endswith(b"}") and b'"status":"cancelled"' in rest


async def test_terminal_event_reaches_streams_even_if_its_writer_is_cancelled(gateway):
    """The store publishes after commit: a cancelled caller cannot swallow the end."""
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    watcher = await watch_until(client, scan_id, "connecting")
    runner = client.app[RUNNER]
    await runner.cancel(scan_id)  # ends the scan's own task first
    writer = asyncio.create_task(
        client.app[STORE].append_event(scan_id, EventDraft(Status.SCANNING))
    )
    writer.cancel()  # cancelled while its write is queued: it still commits (or is refused)
    await asyncio.gather(writer, return_exceptions=True)
    rest = await asyncio.wait_for(watcher.content.read(), 10)
    watcher.close()
    assert b'"status":"cancelled"' in rest
