"""Connect retries: only before the scanner answers, with backoff, reported as events."""

from __future__ import annotations

import json
import socket

from aiohttp import ClientSession

from gateway.scanners.sse_parser import SSEParser
from mock_scanner import MockScannerConfig
from mock_scanner import create_app as create_mock_scanner
from tests.helpers import auth, start_scan, stream


def reserved_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_retry_then_failure(gateway):
    url = f"http://127.0.0.1:{reserved_port()}/scan"
    client = await gateway(
        scanners={"sast_scanner": url},
        upstream={"connect_retries": 2, "retry_backoff_seconds": 0.01},
    )
    scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner")
    events = [data for _, data in await stream(client, scan_id)]
    assert [e["status"] for e in events] == [
        "pending",
        "connecting",
        "connecting",
        "connecting",
        "failed",
    ]
    assert "attempt 2 of 3" in events[2]["progress_text"]
    assert "attempt 3 of 3" in events[3]["progress_text"]
    assert events[-1]["error"].startswith("cannot connect to sast_scanner")


async def test_retry_then_success_when_the_port_opens_late(gateway, aiohttp_server):
    port = reserved_port()
    client = await gateway(
        scanners={"sast_scanner": f"http://127.0.0.1:{port}/scanners/sast_scanner/scan"},
        upstream={
            "connect_retries": 100,
            "retry_backoff_seconds": 0.02,
            "retry_backoff_max_seconds": 0.2,
        },
    )
    scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner")
    statuses = []
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as response:
        parser = SSEParser()
        scanner = None
        async for chunk in response.content.iter_any():
            for event in parser.feed(chunk):
                data = json.loads(event.data)
                statuses.append(data["status"])
                if scanner is None and "attempt 2 of" in data["progress_text"]:
                    # The scanner comes up only now, after the gateway has been refused.
                    scanner = await aiohttp_server(
                        create_mock_scanner(MockScannerConfig(step_delay=0.0)), port=port
                    )
    assert scanner is not None
    assert statuses[-1] == "completed"
    assert statuses.count("connecting") >= 2
    async with ClientSession() as http, http.get(scanner.make_url("/requests")) as listed:
        assert [r["scan_id"] for r in await listed.json()] == [scan_id], "one POST, one scan"


async def test_no_retry_once_the_scanner_answered(gateway, scanner):
    client = await gateway(upstream={"connect_retries": 5, "retry_backoff_seconds": 0.01})
    scan_id = await start_scan(client, use_sse=True, configurations={"status_code": 503})
    events = [data for _, data in await stream(client, scan_id)]
    assert [e["status"] for e in events] == ["pending", "connecting", "failed"]
    async with ClientSession() as http, http.get(scanner.make_url("/requests")) as listed:
        assert len(await listed.json()) == 1
