"""A drain with a collection running, on a real ``python -m gateway`` process: the drain waits
for the collection started here (its child scan ends on its own, then its aggregator writes the
collection's end), and refuses new collections with 503 meanwhile."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from tests.gateway.test_replicas import Replica, get_json
from tests.gateway.test_serving import BENCH, DEADLINE, bench, gateway_config, http
from tests.helpers import COLLECTIONS_API, auth
from tests.processes import ProcessLog, free_port, gateway_process

__all__ = ["http"]  # the fixture


def stored_collection(db: Path, collection_id: str) -> tuple[str, str]:
    """The collection's status and its last event's data, from a stopped gateway's file."""
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute(
            "SELECT status FROM collections WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        (data,) = conn.execute(
            "SELECT data FROM scan_events WHERE scan_id = ? ORDER BY seq DESC LIMIT 1",
            (f"collection:{collection_id}",),
        ).fetchone()
    return status, data


async def test_sigterm_waits_for_a_collection_started_here_to_end(
    tmp_path: Path, scanner: TestServer, http: ClientSession
) -> None:
    port, log = free_port(), ProcessLog()
    config = gateway_config(tmp_path, scanner)
    async with gateway_process(config, port, log) as process:
        gateway = Replica(port, process, log)
        api = f"{gateway.url}{COLLECTIONS_API}"
        body = {
            "repository_name": "acme/web",
            "scanners": ["secret_scanner"],
            "configurations": BENCH,
        }
        async with http.post(f"{api}/?use_sse=true", json=body, headers=auth()) as response:
            assert response.status == 201, await response.text()
            created = (await response.json())["data"]
        collection_id, (scan_id,) = created["collection_id"], created["scan_ids"]

        process.send_signal(signal.SIGTERM)
        await log.line("draining: 2 running")  # the scan and the collection
        async with http.post(f"{api}/", json=body, headers=auth()) as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "4"
            answer = await refused.json()
            assert answer["error"] == "draining"
            assert "starts no new collection" in answer["message"]
        code, _ = await get_json(http, f"{api}/{collection_id}/status")
        assert code == 200

        await bench(http, scanner, scan_id, "finish")
        assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
    assert log.index_of("draining: 2 running") < log.index_of("drained in")
    status, last = stored_collection(tmp_path / "gateway.db", collection_id)
    assert status == "completed"
    assert json.loads(last)["collection"] == {"status": "completed", "progress_percent": 100}
    assert not any("Traceback" in line or "resuming its aggregation" in line for line in log)
