"""Lossless resume with Last-Event-ID, the explicit reset, the retry hint and the final 204."""

from __future__ import annotations

import json

import pytest

from gateway.http.appkeys import STORE
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import BACKENDS, auth, start_scan, stream

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


async def raw_stream(client, scan_id, *, last_event_id=None, query=""):
    headers = auth()
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with client.get(f"/api/v1/scans/{scan_id}/stream{query}", headers=headers) as response:
        body = await response.read()
        return response.status, body


def parse(body: bytes):
    parser = SSEParser()
    events = parser.feed(body)
    return parser, [(e.type, int(e.id) if e.id else None, json.loads(e.data)) for e in events]


async def finished_scan(client, **kwargs):
    scan_id = await start_scan(client, **kwargs)
    events = await stream(client, scan_id)
    return scan_id, events


async def test_resume_from_every_position_of_a_finished_scan(client):
    scan_id, full = await finished_scan(client)
    for position in range(len(full)):
        status, body = await raw_stream(client, scan_id, last_event_id=position)
        assert status == 200
        _, events = parse(body)
        assert [(i, d) for _, i, d in events] == full[position:], position
    # The same with the query parameter, for a first connection.
    status, body = await raw_stream(client, scan_id, query="?last_event_id=3")
    assert [(i, d) for _, i, d in parse(body)[1]] == full[3:]


async def test_header_wins_over_query_parameter(client):
    scan_id, full = await finished_scan(client)
    _status, body = await raw_stream(client, scan_id, last_event_id=5, query="?last_event_id=1")
    assert [i for _, i, _ in parse(body)[1]] == [i for i, _ in full[5:]]


async def test_retry_hint_comes_first(gateway):
    client = await gateway(stream={"retry_ms": 1234})
    scan_id, _ = await finished_scan(client)
    _status, body = await raw_stream(client, scan_id)
    assert body.startswith(b"retry: 1234\n\n")
    assert parse(body)[0].retry == 1234


async def test_finished_stream_answers_204_to_the_final_id(client):
    scan_id, full = await finished_scan(client)
    final_id = full[-1][0]
    status, body = await raw_stream(client, scan_id, last_event_id=final_id)
    assert status == 204
    assert body == b""
    # A client that first connects after the end gets everything, then the same 204.
    status, body = await raw_stream(client, scan_id)
    assert parse(body)[1][-1][1] == final_id
    status, _ = await raw_stream(client, scan_id, last_event_id=final_id)
    assert status == 204


@pytest.mark.parametrize("bad_id", ["999", "abc", "-1", "1.5", "٣", "9" * 5000])
async def test_unknown_id_gets_an_explicit_reset(client, bad_id):
    scan_id, full = await finished_scan(client)
    status, body = await raw_stream(client, scan_id, last_event_id=bad_id)
    assert status == 200
    _, events = parse(body)
    assert len(events) == 1, "a reset, never a silent replay from elsewhere"
    kind, event_id, data = events[0]
    assert kind == "reset"
    assert event_id == full[-1][0]
    assert data["status"] == "completed"
    assert data["progress_percent"] == 100
    assert data["last_event_id"] == full[-1][0]
    assert "unknown Last-Event-ID" in data["reason"]
    # The reset's id is the scan's last: the next reconnect is the final 204.
    status, _ = await raw_stream(client, scan_id, last_event_id=event_id)
    assert status == 204


async def test_reset_on_a_running_scan_continues_live(gateway):
    client = await gateway(mock={"step_delay_seconds": 0.02, "steps": 15})
    scan_id = await start_scan(client)
    status, body = await raw_stream(client, scan_id, last_event_id="not-an-id")
    assert status == 200
    _, events = parse(body)
    assert events[0][0] == "reset"
    reset_id = events[0][1]
    rest = events[1:]
    assert [i for _, i, _ in rest] == list(range(reset_id + 1, reset_id + 1 + len(rest)))
    assert rest[-1][2]["status"] == "completed"
    stored = await client.app[STORE].events_after(scan_id, reset_id, limit=1000)
    assert [json.loads(e.data) for e in stored] == [d for _, _, d in rest]


async def test_resume_after_every_event_of_a_running_scan_gives_the_log(gateway):
    """Disconnect after each event while the scan runs; the ids resumed from cover the log."""
    client = await gateway(mock={"step_delay_seconds": 0.01, "steps": 12})
    scan_id = await start_scan(client)
    received, last = [], 0
    while True:
        headers = {**auth(), "Last-Event-ID": str(last)}
        async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=headers) as response:
            if response.status == 204:
                break
            parser, event = SSEParser(), None
            while event is None:
                chunk = await response.content.readany()
                assert chunk, "the stream ended before an event"
                events = parser.feed(chunk)
                event = events[0] if events else None
        received.append((int(event.id), json.loads(event.data)))
        last = int(event.id)
    stored = await client.app[STORE].events_after(scan_id, 0, limit=100)
    assert received == [(e.seq, json.loads(e.data)) for e in stored]
    assert received[-1][1]["status"] == "completed"
