"""Property: clients that drop at random byte offsets and resume with Last-Event-ID
reassemble exactly the scan's log, live or replayed, on every scan."""

from __future__ import annotations

import asyncio
import json
import random

from gateway.http.appkeys import STORE
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import auth, start_scan

CLIENTS = 25
SCANS = 5
MIN_RECONNECTS = 1000


async def test_random_disconnects_reassemble_the_log(gateway):
    client = await gateway(
        mock={"step_delay_seconds": 0.01, "steps": 60},
        limits={"max_streams_per_subject": CLIENTS, "max_running_scans_per_subject": SCANS},
    )
    scan_ids = [await start_scan(client) for _ in range(SCANS)]
    rng = random.Random(20261125)
    connections = 0

    async def follow(scan_id: str, seed: int) -> list[tuple[int, str]]:
        nonlocal connections
        own = random.Random(seed)
        received: list[tuple[int, str]] = []
        last = 0
        while True:
            connections += 1
            headers = {**auth(), "Last-Event-ID": str(last)}
            budget = own.randint(1, 600)  # bytes to read before dropping the connection
            async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=headers) as resp:
                if resp.status == 204:
                    return received
                assert resp.status == 200
                parser = SSEParser()
                while budget > 0:
                    chunk = await resp.content.read(min(budget, 97))
                    if not chunk:
                        break
                    budget -= len(chunk)
                    for event in parser.feed(chunk):
                        received.append((int(event.id), event.data))
                        last = int(event.id)

    results = await asyncio.gather(
        *(follow(scan_ids[i % SCANS], rng.randrange(2**32)) for i in range(CLIENTS))
    )
    assert connections >= MIN_RECONNECTS
    logs = {}
    for scan_id in scan_ids:
        stored = await client.app[STORE].events_after(scan_id, 0, limit=10_000)
        logs[scan_id] = [(event.seq, event.data) for event in stored]
        assert json.loads(stored[-1].data)["status"] == "completed"
    for index, received in enumerate(results):
        assert received == logs[scan_ids[index % SCANS]]
