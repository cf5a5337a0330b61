"""The scan collection API on both backends: start, read, status, results, cancel, ownership,
and every refusal, against the real mock scanner."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import BACKENDS, SCANNERS, auth, error_shape, read_events

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

API = "/api/v1/scan-collections"


async def start_collection(
    client: TestClient[Any, Any],
    *,
    scanners: list[str] | tuple[str, ...] = SCANNERS,
    sub: str = "alice",
    use_sse: bool = True,
    configurations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"repository_name": "acme/web", "scanners": list(scanners)}
    if configurations is not None:
        body["configurations"] = configurations
    response = await client.post(
        f"{API}/?use_sse={'true' if use_sse else 'false'}", json=body, headers=auth(sub)
    )
    assert response.status == 201, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def collection_events(
    client: TestClient[Any, Any], collection_id: str, sub: str = "alice"
) -> list[tuple[int, dict[str, Any]]]:
    async with client.get(f"{API}/{collection_id}/stream", headers=auth(sub)) as response:
        return await read_events(response)


async def test_a_collection_runs_every_scanner_and_streams_one_log(client):
    created = await start_collection(client)
    assert len(created["scan_ids"]) == 4
    assert created["stream_url"] == f"{API}/{created['collection_id']}/stream"
    events = await collection_events(client, created["collection_id"])
    ids = [seq for seq, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    last = events[-1][1]
    assert last["collection"] == {"status": "completed", "progress_percent": 100}
    assert last["summary"]["total"] >= 1
    # Each scan's events are all there, in order, once each.
    for scan_id in created["scan_ids"]:
        seen = [data["scan"]["event_id"] for _, data in events if data["scan"]["scan_id"] == scan_id]
        assert seen == sorted(set(seen))
    progress = [data["collection"]["progress_percent"] for _, data in events]
    assert progress == sorted(progress)
    found = [finding for _, data in events for finding in data["findings"]]
    assert found and all("fingerprint" in finding for finding in found)

    response = await client.get(f"{API}/{created['collection_id']}/results", headers=auth())
    assert response.status == 200, await response.text()
    results = (await response.json())["data"]
    assert results["status"] == "completed"
    assert results["summary"] == last["summary"]
    assert len(results["vulnerabilities"]) == results["total_findings"] == last["summary"]["total"]
    assert {scan["scanner_name"] for scan in results["scans"]} == set(SCANNERS)
    assert sum(scan["findings"] for scan in results["scans"]) == len(found)
