"""The seed's API end to end, in mock mode and in SSE mode through the real mock scanner."""

from __future__ import annotations

import pytest

from gateway.domain.models import SEVERITIES
from tests.helpers import SCANNERS, auth, start_scan, stream


def assert_valid_scan_events(events, scan_id):
    ids = [event_id for event_id, _ in events]
    assert ids == list(range(1, len(ids) + 1)), "ids are 1, 2, 3, ... with no gap"
    percents = [data["progress_percent"] for _, data in events]
    assert percents == sorted(percents), "progress never goes backwards"
    for _, data in events:
        assert {"scan_id", "status", "progress_percent", "progress_text", "timestamp"} <= set(data)
        assert data["scan_id"] == scan_id
        assert isinstance(data["progress_percent"], int)
    statuses = [data["status"] for _, data in events]
    assert statuses[:2] == ["pending", "connecting"]


@pytest.mark.parametrize("use_sse", [False, True], ids=["mock-mode", "sse-mode"])
@pytest.mark.parametrize("scanner_name", SCANNERS)
async def test_scan_streams_to_completion_with_results(client, use_sse, scanner_name):
    scan_id = await start_scan(client, use_sse=use_sse, scanner=scanner_name)
    events = await stream(client, scan_id)

    assert_valid_scan_events(events, scan_id)
    last = events[-1][1]
    assert last["status"] == "completed"
    assert last["progress_percent"] == 100
    middle = {data["status"] for _, data in events[2:-1]}
    assert middle and middle <= {
        "initializing",
        "cloning",
        "analyzing",
        "scanning",
        "processing",
        "saving",
    }

    status = await (await client.get(f"/api/v1/scans/{scan_id}", headers=auth())).json()
    assert status["data"]["status"] == "completed"
    assert status["data"]["finished_at"] is not None
    assert status["data"]["sse_enabled"] is use_sse

    results = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    assert results.status == 200
    data = (await results.json())["data"]
    assert data["scan_id"] == scan_id
    assert data["scanner_name"] == scanner_name
    vulnerabilities = data["vulnerabilities"]
    assert vulnerabilities, "the canned findings arrive"
    for vuln in vulnerabilities:
        assert vuln["scanner"] == scanner_name
        assert vuln["severity"] in SEVERITIES
        assert vuln["line"] is None or isinstance(vuln["line"], int)
    assert list(data["summary"]) == list(SEVERITIES)
    assert sum(data["summary"].values()) == len(vulnerabilities)
    assert last["summary"] == data["summary"]


async def test_sse_mode_posts_once_per_scan(client, scanner):
    scan_id = await start_scan(client, use_sse=True)
    await stream(client, scan_id)
    await stream(client, scan_id)  # watching again never starts the scan again
    received = await (await scanner_client_get(scanner, "/requests")).json()
    assert [entry["scan_id"] for entry in received] == [scan_id]
    assert received[0]["kind"] == "secret_scanner"


async def scanner_client_get(scanner, path):
    from aiohttp import ClientSession

    async with ClientSession() as session, session.get(scanner.make_url(path)) as response:
        await response.read()
        return response


async def test_create_answers_the_seed_shape(client):
    response = await client.post(
        "/api/v1/scans/?use_sse=true",
        json={"repository_name": "acme/api", "scanner_name": "sast_scanner", "configurations": {}},
        headers=auth(),
    )
    assert response.status == 201
    body = await response.json()
    assert body["success"] is True
    assert body["timestamp"].endswith("+00:00")
    data = body["data"]
    scan_id = data["scan_id"]
    assert data == {
        "scan_id": scan_id,
        "status": "pending",
        "sse_enabled": True,
        "stream_url": f"/api/v1/scans/{scan_id}/stream",
        "status_url": f"/api/v1/scans/{scan_id}",
        "results_url": f"/api/v1/scans/{scan_id}/results",
    }
    assert response.headers["Location"] == data["status_url"]
    await stream(client, scan_id)


async def test_create_without_trailing_slash_and_without_configurations(client):
    response = await client.post(
        "/api/v1/scans",
        json={"repository_name": "acme/api", "scanner_name": "llm_scanner"},
        headers=auth(),
    )
    assert response.status == 201
    data = (await response.json())["data"]
    assert data["sse_enabled"] is False
    await stream(client, data["scan_id"])


async def test_results_before_completion_is_409_with_status(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    response = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    assert response.status == 409
    body = await response.json()
    assert body["error"] == "scan_not_ready"
    assert "still" in body["message"]


async def test_results_of_failed_scan_is_409_with_reason(client):
    scan_id = await start_scan(client, use_sse=True, configurations={"fail_at": 40})
    events = await stream(client, scan_id)
    assert events[-1][1]["status"] == "failed"
    response = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    assert response.status == 409
    message = (await response.json())["message"]
    assert "failed" in message
    assert events[-1][1]["error"] in message


async def test_list_is_per_subject_newest_first_with_limit_and_status(client):
    first = await start_scan(client, sub="alice")
    second = await start_scan(client, sub="alice", scanner="dast_scanner")
    other = await start_scan(client, sub="bob")
    for scan_id, sub in ((first, "alice"), (second, "alice"), (other, "bob")):
        await stream(client, scan_id, sub=sub)

    listed = (await (await client.get("/api/v1/scans/", headers=auth("alice"))).json())["data"]
    assert [scan["scan_id"] for scan in listed] == [second, first]

    limited = await client.get("/api/v1/scans?limit=1", headers=auth("alice"))
    assert [s["scan_id"] for s in (await limited.json())["data"]] == [second]

    done = await client.get("/api/v1/scans/?status=completed", headers=auth("alice"))
    assert len((await done.json())["data"]) == 2
    failed = await client.get("/api/v1/scans/?status=failed", headers=auth("alice"))
    assert (await failed.json())["data"] == []


async def test_another_subject_gets_404_everywhere(client):
    scan_id = await start_scan(client, sub="alice")
    for path in ("", "/results", "/stream"):
        response = await client.get(f"/api/v1/scans/{scan_id}{path}", headers=auth("mallory"))
        assert response.status == 404, path
        assert (await response.json())["error"] == "scan_not_found"
    await stream(client, scan_id)


async def test_healthz_answers_without_auth(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["data"] == {"status": "ok"}
