"""DELETE /api/v1/scans/{id}: the upstream request closes, the log ends ``cancelled``."""

from __future__ import annotations

import asyncio
import json
import socket

from gateway.appkeys import RUNNER, STORE
from gateway.models import EventDraft, NewScan, Status
from gateway.sse_parser import SSEParser
from mock_scanner.app import scan_finished
from tests.conftest import auth, error_shape, start_scan, stream


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


async def test_scan_cancelled_before_its_task_ran_still_ends_cancelled(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    store, runner = client.app[STORE], client.app[RUNNER]
    new = NewScan("early", "alice", "acme/web", "secret_scanner", False, {})
    with runner.admission("alice"):
        scan, _ = await store.create_scan(new, EventDraft(Status.PENDING))
        runner.start(scan)
    await runner.cancel("early")  # no await in between: the task has not run yet
    events = await stream(client, "early")
    assert [d["status"] for _, d in events] == ["pending", "cancelled"]
    assert runner.running == 0


async def test_cancel_finished_or_foreign_scan(client):
    scan_id = await start_scan(client)
    await stream(client, scan_id)
    status, body = await cancel(client, scan_id)
    assert status == 409
    error_shape(body)
    assert "already ended completed" in body["message"]
    assert (await cancel(client, scan_id, sub="mallory"))[0] == 404


async def test_results_of_cancelled_scan_and_second_cancel_are_409(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    assert (await cancel(client, scan_id))[0] == 200
    response = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    assert response.status == 409
    assert "cancelled" in (await response.json())["message"]
    status, body = await cancel(client, scan_id)
    assert status == 409
    assert "already ended cancelled" in body["message"]
