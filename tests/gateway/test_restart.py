"""A gateway process killed mid-scan: the next one ends the scan cleanly from the log."""

from __future__ import annotations

import json
import signal

from aiohttp import ClientSession

from gateway.scanners.sse_parser import SSEEvent, SSEParser
from tests.helpers import auth
from tests.processes import free_port, gateway_process, write_config


async def test_scan_left_running_is_failed_by_the_next_process(tmp_path, scanner):
    port = free_port()
    config_path = write_config(
        tmp_path,
        {
            "scanners": {"secret_scanner": str(scanner.make_url("/scanners/secret_scanner/scan"))},
            "mock": {"step_delay_seconds": 0.05, "steps": 200},
        },
    )
    base = f"http://127.0.0.1:{port}/api/v1/scans"
    async with ClientSession() as http:
        async with gateway_process(config_path, port) as process:
            created = await http.post(
                f"{base}/",
                headers=auth(),
                json={"repository_name": "acme/web", "scanner_name": "secret_scanner"},
            )
            scan_id = (await created.json())["data"]["scan_id"]
            seen: list[SSEEvent] = []
            async with http.get(f"{base}/{scan_id}/stream", headers=auth()) as response:
                parser = SSEParser()
                while len(seen) < 5:
                    seen.extend(parser.feed(await response.content.readany()))
                process.send_signal(signal.SIGKILL)
                await process.wait()

        async with gateway_process(config_path, port):
            record = await (await http.get(f"{base}/{scan_id}", headers=auth())).json()
            assert record["data"]["status"] == "failed"
            assert record["data"]["error"] == "interrupted: gateway restarted"
            async with http.get(f"{base}/{scan_id}/stream", headers=auth()) as response:
                parser = SSEParser()
                events = [
                    event
                    async for chunk in response.content.iter_any()
                    for event in parser.feed(chunk)
                ]
    ids = [int(event.id) for event in events]
    assert ids == list(range(1, len(ids) + 1))
    assert [e.data for e in events[: len(seen)]] == [e.data for e in seen]
    final = json.loads(events[-1].data)
    assert final["status"] == "failed"
    assert final["error"] == "interrupted: gateway restarted"
    assert final["progress_percent"] >= json.loads(seen[-1].data)["progress_percent"]
