"""Stopping at once (SIGINT; SIGTERM drains first, see test_serving.py) with streams open:
every stream is told to reconnect, each with its own delay in the spread, and ends; scans end
interrupted with a terminal event, the log stays intact."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3

from aiohttp import ClientSession, TCPConnector

from tests.helpers import auth
from tests.processes import free_port, gateway_process, write_config

STREAMS = 300
GRACE = 5
RETRY_MS, SPREAD_MS = 2500, 1000
FAREWELL = re.compile(rb"retry: (\d+)\n: gateway shutting down; reconnect to resume\n\n\Z")


async def test_sigint_ends_every_stream_and_interrupts_scans(tmp_path, scanner):
    port = free_port()
    db = tmp_path / "gateway.db"
    config_path = write_config(
        tmp_path,
        {
            "scanners": {"secret_scanner": str(scanner.make_url("/scanners/secret_scanner/scan"))},
            "mock": {"step_delay_seconds": 0.2, "steps": 500},
            "server": {"shutdown_grace_seconds": GRACE},
            "stream": {"retry_ms": RETRY_MS, "reconnect_spread_ms": SPREAD_MS},
            "limits": {"max_streams_per_subject": STREAMS},
        },
    )
    base = f"http://127.0.0.1:{port}/api/v1/scans"
    # Slow scans in both modes, so all are running at the signal.
    body = {
        "repository_name": "acme/web",
        "scanner_name": "secret_scanner",
        "configurations": {"step_delay": 0.2, "steps": 500},
    }
    log: list[str] = []
    async with (
        ClientSession(connector=TCPConnector(limit=0)) as http,
        gateway_process(config_path, port, log) as process,
    ):
        scan_ids = []
        for use_sse in ("false", "true", "false"):
            created = await http.post(f"{base}/?use_sse={use_sse}", json=body, headers=auth())
            scan_ids.append((await created.json())["data"]["scan_id"])
        opened = asyncio.Semaphore(0)

        async def watch(index: int) -> bytes:
            scan_id = scan_ids[index % len(scan_ids)]
            async with http.get(f"{base}/{scan_id}/stream", headers=auth()) as response:
                assert response.status == 200
                received = await response.content.readuntil(b"\n\nid: 1\n")
                opened.release()
                return received + await response.content.read()

        watchers = [asyncio.create_task(watch(i)) for i in range(STREAMS)]
        for _ in range(STREAMS):  # every stream is open and live
            await asyncio.wait_for(opened.acquire(), 60)
        process.send_signal(signal.SIGINT)
        tails = await asyncio.wait_for(asyncio.gather(*watchers), GRACE + 5)
        assert await asyncio.wait_for(process.wait(), GRACE + 5) == 0
    retries = []
    for tail in tails:
        told = FAREWELL.search(tail)
        assert told is not None, tail[-200:]
        retries.append(int(told[1]))
    # Spread over the window, so that 300 clients do not come back in the same instant.
    assert all(RETRY_MS <= retry <= RETRY_MS + SPREAD_MS for retry in retries)
    assert max(retries) - min(retries) > SPREAD_MS // 2, sorted(retries)

    with sqlite3.connect(db) as conn:
        for scan_id in scan_ids:
            status, error, last_seq = conn.execute(
                "SELECT status, error, last_seq FROM scans WHERE scan_id = ?", (scan_id,)
            ).fetchone()
            assert (status, error) == ("failed", "interrupted: gateway shutting down")
            rows = conn.execute(
                "SELECT seq, terminal, data FROM scan_events WHERE scan_id = ? ORDER BY seq",
                (scan_id,),
            ).fetchall()
            assert [row[0] for row in rows] == list(range(1, last_seq + 1))
            assert [row[1] for row in rows].count(1) == 1
            assert json.loads(rows[-1][2])["status"] == "failed"
    assert not any("Traceback" in line for line in log), "".join(log)
