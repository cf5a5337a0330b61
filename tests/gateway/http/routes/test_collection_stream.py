"""A collection's stream has every guarantee a scan's has, on both backends: gap-free ids
from 1, resume with Last-Event-ID from any position, an explicit reset, the retry hint, 204
after the end, tickets, cookie and query-token auth, heartbeats, clients that drop at random."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.domain.collections import log_id
from gateway.http.appkeys import STORE
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import (
    BACKENDS,
    SCANNERS,
    auth,
    collection_events,
    error_shape,
    start_collection,
    token,
)
from tests.helpers import (
    COLLECTIONS_API as API,
)

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


async def raw_stream(
    client: TestClient[Any, Any], collection_id: str, *, last_event_id: Any = None, query: str = ""
) -> tuple[int, bytes]:
    headers = auth()
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    path = f"{API}/{collection_id}/stream{query}"
    async with client.get(path, headers=headers) as response:
        return response.status, await response.read()


def parse(body: bytes) -> tuple[SSEParser, list[tuple[str, int | None, dict[str, Any]]]]:
    parser = SSEParser()
    events = parser.feed(body)
    return parser, [(e.type, int(e.id) if e.id else None, json.loads(e.data)) for e in events]


async def finished(client: TestClient[Any, Any], **kwargs: Any) -> tuple[str, list[Any]]:
    created = await start_collection(client, **kwargs)
    return created["collection_id"], await collection_events(client, created["collection_id"])


async def test_resume_from_every_position_and_204_at_the_end(client):
    cid, full = await finished(client, scanners=["secret_scanner", "sast_scanner"])
    for position in range(len(full)):
        status, body = await raw_stream(client, cid, last_event_id=position)
        assert status == 200
        assert [(i, d) for _, i, d in parse(body)[1]] == full[position:], position
    status, body = await raw_stream(client, cid, query="?last_event_id=2")
    assert [(i, d) for _, i, d in parse(body)[1]] == full[2:]
    status, body = await raw_stream(client, cid, last_event_id=len(full))
    assert (status, body) == (204, b"")
    # What the stream carries is what the store holds, under the collection's own log id.
    stored = await client.app[STORE].events_after(log_id(cid), 0, limit=10_000)
    assert [(event.seq, json.loads(event.data)) for event in stored] == full


async def test_retry_hint_first_and_reset_for_unknown_ids(gateway):
    client = await gateway(stream={"retry_ms": 1234})
    cid, full = await finished(client, scanners=["secret_scanner"])
    _, body = await raw_stream(client, cid)
    assert body.startswith(b"retry: 1234\n\n")
    for bad in ("999", "abc", "-1"):
        status, body = await raw_stream(client, cid, last_event_id=bad)
        assert status == 200
        [(kind, seq, data)] = parse(body)[1]
        assert kind == "reset" and seq == len(full)
        assert data["id"] == cid and data["status"] == "completed"
        assert "unknown Last-Event-ID" in data["reason"]


async def test_a_subscriber_that_joins_live_gets_the_same_log(gateway):
    client = await gateway(mock={"step_delay_seconds": 0.02, "steps": 20})
    created = await start_collection(
        client, scanners=["sast_scanner", "llm_scanner"], use_sse=False
    )
    cid = created["collection_id"]
    early = asyncio.create_task(collection_events(client, cid))
    await asyncio.sleep(0)  # the first joins at the start, the second whenever it gets there
    late = await collection_events(client, cid)
    assert await early == late
    assert [i for i, _ in late] == list(range(1, len(late) + 1))
    assert late[-1][1]["collection"]["status"] == "completed"


async def test_tickets_open_that_collection_s_stream_only(client):
    cid, full = await finished(client, scanners=["secret_scanner"])
    response = await client.post(f"{API}/{cid}/stream-ticket", headers=auth())
    assert response.status == 200
    ticket = (await response.json())["data"]
    assert ticket["stream_url"] == f"{API}/{cid}/stream?ticket={ticket['ticket']}"
    async with client.get(ticket["stream_url"]) as stream:
        assert [i for _, i, _ in parse(await stream.read())[1]] == [i for i, _ in full]
    # Not another collection's stream, not a scan's, not the API.
    other, _ = await finished(client, scanners=["sast_scanner"])
    scan_id = full[0][1]["scan"]["scan_id"]
    for path in (
        f"{API}/{other}/stream",
        f"/api/v1/scans/{scan_id}/stream",
        f"{API}/{cid}",
    ):
        refused = await client.get(f"{path}?ticket={ticket['ticket']}")
        assert refused.status == 401, path
        error_shape(await refused.json())
    # A scan's ticket does not open a collection's stream.
    scan_ticket = await client.post(f"/api/v1/scans/{scan_id}/stream-ticket", headers=auth())
    value = (await scan_ticket.json())["data"]["ticket"]
    assert (await client.get(f"{API}/{cid}/stream?ticket={value}")).status == 401


async def test_query_token_and_cookie_open_the_stream(client):
    cid, full = await finished(client, scanners=["secret_scanner"])
    async with client.get(f"{API}/{cid}/stream?token={token()}") as response:
        assert [i for _, i, _ in parse(await response.read())[1]] == [i for i, _ in full]
    session = await client.post("/api/v1/auth/session", headers=auth())
    cookie = {"Cookie": f"xployt_session={session.cookies['xployt_session'].value}"}
    async with client.get(f"{API}/{cid}/stream", headers=cookie) as response:
        assert [i for _, i, _ in parse(await response.read())[1]] == [i for i, _ in full]
    # A query token starts nothing.
    body = {"repository_name": "r", "scanners": ["secret_scanner"]}
    assert (await client.post(f"{API}/?token={token()}", json=body)).status == 401


async def test_heartbeats_while_nothing_happens(gateway):
    client = await gateway(stream={"heartbeat_seconds": 0.05})
    created = await start_collection(
        client, scanners=["sast_scanner"], configurations={"stall_at": 30}
    )
    async with client.get(created["stream_url"], headers=auth()) as response:
        received = b""
        while b": ping" not in received:
            received += await response.content.readany()
    assert received.startswith(b"retry: 3000\n\n")


CLIENTS = 12
MIN_RECONNECTS = 300


async def test_random_disconnects_reassemble_the_log(gateway):
    client = await gateway(
        mock={"step_delay_seconds": 0.01, "steps": 40},
        limits={"max_streams_per_subject": CLIENTS},
    )
    cids = [
        (await start_collection(client, scanners=SCANNERS, use_sse=False))["collection_id"],
        (await start_collection(client, scanners=SCANNERS[:2], use_sse=False))["collection_id"],
    ]
    rng = random.Random(20261202)
    connections = 0

    async def follow(cid: str, seed: int) -> list[tuple[int, str]]:
        nonlocal connections
        own = random.Random(seed)
        received: list[tuple[int, str]] = []
        most = 900  # bytes read at most before dropping; doubled while an event is larger
        while True:
            connections += 1
            last = received[-1][0] if received else 0
            before = len(received)
            headers = {**auth(), "Last-Event-ID": str(last)}
            budget = own.randint(1, most)  # bytes to read before dropping the connection
            async with client.get(f"{API}/{cid}/stream", headers=headers) as response:
                if response.status == 204:
                    return received
                assert response.status == 200
                parser = SSEParser()
                while budget > 0:
                    chunk = await response.content.read(min(budget, 97))
                    if not chunk:
                        break
                    budget -= len(chunk)
                    received += [(int(e.id), e.data) for e in parser.feed(chunk)]
            most = most * 2 if len(received) == before else 900

    async with asyncio.timeout(60):
        results = await asyncio.gather(
            *(follow(cids[i % 2], rng.randrange(2**32)) for i in range(CLIENTS))
        )
    assert connections >= MIN_RECONNECTS
    for index, received in enumerate(results):
        stored = await client.app[STORE].events_after(log_id(cids[index % 2]), 0, limit=10_000)
        assert received == [(event.seq, event.data) for event in stored]
        assert json.loads(stored[-1].data)["collection"]["status"] == "completed"
        assert [seq for seq, _ in received] == list(range(1, len(received) + 1))
