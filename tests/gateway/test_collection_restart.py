"""A gateway killed mid-collection: the next process ends its scans and resumes the
collection's aggregation from the stored cursors, so the collection still reaches a terminal
state and its stream (gap-free, the events seen before kept) ends."""

from __future__ import annotations

import json
import signal

from aiohttp import ClientSession

from gateway.scanners.sse_parser import SSEEvent, SSEParser
from tests.helpers import COLLECTIONS_API, auth
from tests.processes import free_port, gateway_process, write_config


async def test_a_collection_left_running_ends_in_the_next_process(tmp_path, scanner):
    port = free_port()
    config_path = write_config(
        tmp_path,
        {
            "scanners": {
                name: str(scanner.make_url(f"/scanners/{name}/scan"))
                for name in ("secret_scanner", "sast_scanner")
            },
            "mock": {"step_delay_seconds": 0.05, "steps": 200},
        },
    )
    base = f"http://127.0.0.1:{port}{COLLECTIONS_API}"
    body = {"repository_name": "acme/web", "scanners": ["secret_scanner", "sast_scanner"]}
    async with ClientSession() as http:
        async with gateway_process(config_path, port) as process:
            created = await http.post(f"{base}/", headers=auth(), json=body)
            cid = (await created.json())["data"]["collection_id"]
            seen: list[SSEEvent] = []
            async with http.get(f"{base}/{cid}/stream", headers=auth()) as response:
                parser = SSEParser()
                while len(seen) < 6:
                    seen.extend(parser.feed(await response.content.readany()))
                process.send_signal(signal.SIGKILL)
                await process.wait()

        async with gateway_process(config_path, port):
            async with http.get(f"{base}/{cid}/stream", headers=auth()) as response:
                parser = SSEParser()
                events = [
                    event
                    async for chunk in response.content.iter_any()
                    for event in parser.feed(chunk)
                ]
            record = (await (await http.get(f"{base}/{cid}", headers=auth())).json())["data"]
            results = await http.get(f"{base}/{cid}/results", headers=auth())
            assert results.status == 200
            outcomes = (await results.json())["data"]["scans"]
    ids = [int(event.id) for event in events]
    assert ids == list(range(1, len(ids) + 1))
    assert [e.data for e in events[: len(seen)]] == [e.data for e in seen]
    final = json.loads(events[-1].data)
    assert final["collection"]["status"] == "failed"
    assert record["status"] == "failed" and record["last_event_id"] == ids[-1]
    assert {o["error"] for o in outcomes} == {"interrupted: gateway restarted"}
    # Each scan's terminal event reached the collection once.
    ended = [
        json.loads(e.data)["scan"]
        for e in events
        if json.loads(e.data)["scan"]["status"] == "failed"
    ]
    assert sorted(scan["scanner_name"] for scan in ended) == ["sast_scanner", "secret_scanner"]
