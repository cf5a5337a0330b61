"""The scan collection API on both backends: start, read, status, results, cancel, ownership,
and every refusal, against the real mock scanner."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.http.appkeys import STORE
from tests.helpers import (
    BACKENDS,
    SCANNERS,
    auth,
    collection_events,
    error_shape,
    start_collection,
)
from tests.helpers import (
    COLLECTIONS_API as API,
)

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


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
        seen = [
            data["scan"]["event_id"] for _, data in events if data["scan"]["scan_id"] == scan_id
        ]
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


async def get_data(client: TestClient[Any, Any], path: str, sub: str = "alice") -> Any:
    response = await client.get(path, headers=auth(sub))
    assert response.status == 200, await response.text()
    return (await response.json())["data"]


async def test_detail_status_and_list_show_the_collection(client):
    created = await start_collection(client, scanners=["sast_scanner", "secret_scanner"])
    cid = created["collection_id"]
    await collection_events(client, cid)
    detail = await get_data(client, f"{API}/{cid}")
    assert detail["id"] == cid
    assert detail["scanners"] == ["sast_scanner", "secret_scanner"]
    assert detail["scan_ids"] == created["scan_ids"]
    assert detail["status"] == "completed" and detail["progress_percent"] == 100
    assert detail["finished_at"] is not None and detail["summary"]["total"] >= 1
    status = await get_data(client, f"{API}/{cid}/status")
    assert status["collection"] == {"status": "completed", "progress_percent": 100}
    assert [scan["scan_id"] for scan in status["scans"]] == created["scan_ids"]
    assert {scan["scanner_name"] for scan in status["scans"]} == {"sast_scanner", "secret_scanner"}
    assert all(scan["status"] == "completed" for scan in status["scans"])
    second = await start_collection(client, scanners=["llm_scanner"])
    listed = await get_data(client, f"{API}/?limit=1")
    assert [item["id"] for item in listed] == [second["collection_id"]]
    listed = await get_data(client, API)
    assert [item["id"] for item in listed] == [second["collection_id"], cid]
    assert await get_data(client, API, sub="bob") == []


async def test_a_failed_scan_fails_the_collection_but_hides_no_finding(client):
    created = await start_collection(
        client,
        scanners=["secret_scanner", "sast_scanner"],
        configurations={"per_scanner": {"sast_scanner": {"fail_at": 40}}},
    )
    events = await collection_events(client, created["collection_id"])
    assert events[-1][1]["collection"]["status"] == "failed"
    assert events[-1][1]["collection"]["progress_percent"] < 100
    response = await client.get(f"{API}/{created['collection_id']}/results", headers=auth())
    assert response.status == 200
    results = (await response.json())["data"]
    assert results["status"] == "failed"
    outcome = {scan["scanner_name"]: scan for scan in results["scans"]}
    assert outcome["sast_scanner"]["status"] == "failed"
    assert "fail_at=40" in outcome["sast_scanner"]["error"]
    assert outcome["secret_scanner"]["status"] == "completed"
    assert results["total_findings"] == outcome["secret_scanner"]["findings"] > 0
    assert all(f["reported_by"] == ["secret_scanner"] for f in results["vulnerabilities"])


async def test_per_scanner_configurations_reach_only_their_scanner(client):
    created = await start_collection(
        client,
        scanners=["secret_scanner", "sast_scanner"],
        configurations={"steps": 3, "per_scanner": {"sast_scanner": {"steps": 2, "x": 1}}},
    )
    await collection_events(client, created["collection_id"])
    secret, sast = [await client.app[STORE].get_scan(i) for i in created["scan_ids"]]
    assert secret.configurations == {"steps": 3}  # what the runner sends the scanner
    assert sast.configurations == {"steps": 2, "x": 1}


async def test_another_subject_gets_404_everywhere(client):
    created = await start_collection(client, scanners=["secret_scanner"])
    cid = created["collection_id"]
    for method, path in [
        ("GET", f"{API}/{cid}"),
        ("GET", f"{API}/{cid}/status"),
        ("GET", f"{API}/{cid}/results"),
        ("GET", f"{API}/{cid}/stream"),
        ("DELETE", f"{API}/{cid}"),
        ("POST", f"{API}/{cid}/stream-ticket"),
    ]:
        response = await client.request(method, path, headers=auth("bob"))
        assert response.status == 404, (method, path)
        body = await response.json()
        error_shape(body)
        assert body["error"] == "collection_not_found"
    unknown = await client.get(f"{API}/nope", headers=auth())
    assert unknown.status == 404
    # A collection's id is not a scan's, nor its log id.
    for path in (f"/api/v1/scans/{cid}", f"/api/v1/scans/collection:{cid}/stream"):
        assert (await client.get(path, headers=auth())).status == 404


async def refused(client: TestClient[Any, Any], body: Any, status: int, code: str) -> str:
    response = await client.post(f"{API}/", json=body, headers=auth())
    assert response.status == status, await response.text()
    answer = await response.json()
    error_shape(answer)
    assert answer["error"] == code
    message: str = answer["message"]
    return message


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ([], 422, "validation_error", "must be a JSON object"),
        (
            {"scanners": ["secret_scanner"]},
            422,
            "validation_error",
            "'repository_name' is required",
        ),
        (
            {"repository_name": " ", "scanners": ["secret_scanner"]},
            422,
            "validation_error",
            "repository_name",
        ),
        (
            {"repository_name": "a\x1bb", "scanners": ["sast_scanner"]},
            422,
            "validation_error",
            "control",
        ),
        ({"repository_name": "r"}, 422, "validation_error", "'scanners' is required"),
        ({"repository_name": "r", "scanners": []}, 422, "validation_error", "'scanners' is empty"),
        ({"repository_name": "r", "scanners": "sast_scanner"}, 422, "validation_error", "array"),
        ({"repository_name": "r", "scanners": [1]}, 422, "validation_error", "scanners[0]"),
        ({"repository_name": "r", "scanners": ["a", ""]}, 422, "validation_error", "scanners[1]"),
        (
            {"repository_name": "r", "scanners": ["sast_scanner", "sast_scanner"]},
            422,
            "validation_error",
            "'sast_scanner' is listed twice",
        ),
        (
            {"repository_name": "r", "scanners": ["sast_scanner"] * 5},
            422,
            "validation_error",
            "at most the 4 configured",
        ),
        (
            {"repository_name": "r", "scanners": ["sast_scanner", "nmap", "zap"]},
            400,
            "unknown_scanner",
            "'nmap', 'zap'; configured scanners: dast_scanner",
        ),
        (
            {"repository_name": "r", "scanners": ["sast_scanner"], "x": 1},
            422,
            "validation_error",
            "unknown field(s): x",
        ),
        (
            {"repository_name": "r", "scanners": ["sast_scanner"], "configurations": []},
            422,
            "validation_error",
            "'configurations' must be an object",
        ),
        (
            {
                "repository_name": "r",
                "scanners": ["sast_scanner"],
                "configurations": {"per_scanner": 1},
            },
            422,
            "validation_error",
            "'configurations.per_scanner' must be an object",
        ),
        (
            {
                "repository_name": "r",
                "scanners": ["sast_scanner"],
                "configurations": {"per_scanner": {"llm_scanner": {}}},
            },
            422,
            "validation_error",
            "not in 'scanners': 'llm_scanner'",
        ),
        (
            {
                "repository_name": "r",
                "scanners": ["sast_scanner"],
                "configurations": {"per_scanner": {"sast_scanner": 3}},
            },
            422,
            "validation_error",
            "'configurations.per_scanner.sast_scanner' must be an object",
        ),
    ],
)
async def test_every_bad_body_is_refused_naming_the_problem(client, body, status, code, words):
    assert words in await refused(client, body, status, code)
    assert await get_data(client, API) == []  # nothing was started
    assert await get_data(client, "/api/v1/scans/") == []


async def test_bad_query_parameters_are_400(client):
    body = {"repository_name": "r", "scanners": ["sast_scanner"]}
    response = await client.post(f"{API}/?use_sse=maybe", json=body, headers=auth())
    assert response.status == 400
    for query in ("limit=0", "limit=501", "limit=abc", "limit=" + "9" * 5000):
        response = await client.get(f"{API}/?{query}", headers=auth())
        assert response.status == 400, query
        error_shape(await response.json())


async def test_a_collection_that_would_pass_the_running_scan_limit_starts_nothing(gateway):
    client = await gateway(limits={"max_running_scans_per_subject": 3})
    body = {"repository_name": "r", "scanners": list(SCANNERS)}
    response = await client.post(f"{API}/?use_sse=true", json=body, headers=auth())
    assert response.status == 429
    answer = await response.json()
    error_shape(answer)
    assert "these 4 scans would take you past your maximum of 3" in answer["message"]
    assert "3 more can start now" in answer["message"]
    assert response.headers["Retry-After"]
    assert await get_data(client, "/api/v1/scans/") == []
    assert await get_data(client, API) == []
    # Three fit; then the fourth scanner alone does not.
    await start_collection(client, scanners=SCANNERS[:3], configurations={"stall_at": 50})
    response = await client.post(
        f"{API}/?use_sse=true",
        json={"repository_name": "r", "scanners": ["dast_scanner"]},
        headers=auth(),
    )
    assert response.status == 429
    assert "you already run 3 scans, the maximum" in (await response.json())["message"]


async def test_the_gateway_wide_limit_counts_children_too(gateway):
    client = await gateway(limits={"max_running_scans": 2})
    body = {"repository_name": "r", "scanners": ["sast_scanner", "llm_scanner", "dast_scanner"]}
    response = await client.post(f"{API}/", json=body, headers=auth())
    assert response.status == 429
    assert "2 more can start now, not 3" in (await response.json())["message"]


async def test_each_child_takes_a_scan_start_from_the_subjects_bucket(gateway, caplog):
    client = await gateway(limits={"scan_starts_per_second": 0.001, "scan_start_burst": 6})
    await start_collection(client)  # four starts of six
    body = {"repository_name": "r", "scanners": list(SCANNERS)}
    response = await client.post(f"{API}/", json=body, headers=auth())
    assert response.status == 429
    answer = await response.json()
    error_shape(answer)
    assert "faster than the 0.001 per second allowed" in answer["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert len(await get_data(client, API)) == 1
    assert len(await get_data(client, "/api/v1/scans/")) == 4
    # A refusal is the caller's answer, not a failure of the gateway.
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # Another subject has a bucket of its own.
    await start_collection(client, sub="bob")


async def test_results_before_the_end_are_409(client):
    created = await start_collection(
        client, scanners=["sast_scanner"], configurations={"stall_at": 50}
    )
    response = await client.get(f"{API}/{created['collection_id']}/results", headers=auth())
    assert response.status == 409
    body = await response.json()
    error_shape(body)
    assert "once every scan has ended" in body["message"]


async def test_cancel_ends_every_scan_and_the_collection(client):
    created = await start_collection(
        client, scanners=["sast_scanner", "llm_scanner"], configurations={"stall_at": 50}
    )
    cid = created["collection_id"]
    response = await client.delete(f"{API}/{cid}", headers=auth())
    assert response.status == 200, await response.text()
    assert (await response.json())["data"]["status"] == "cancelled"
    for scan_id in created["scan_ids"]:
        scan = await get_data(client, f"/api/v1/scans/{scan_id}")
        assert scan["status"] == "cancelled"
    events = await collection_events(client, cid)
    assert events[-1][1]["collection"]["status"] == "cancelled"
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    again = await client.delete(f"{API}/{cid}", headers=auth())
    assert again.status == 409
    error_shape(await again.json())
    results = await get_data(client, f"{API}/{cid}/results")
    assert results["status"] == "cancelled" and results["total_findings"] == 0


async def test_results_page_with_limit_and_cursor(client):
    created = await start_collection(client)
    await collection_events(client, created["collection_id"])
    path = f"{API}/{created['collection_id']}/results"
    whole = await get_data(client, path)
    assert whole["total_findings"] >= 2
    first = await get_data(client, f"{path}?limit=1")
    assert first["vulnerabilities"] == whole["vulnerabilities"][:1]
    second = await get_data(client, f"{path}?limit=1&cursor={first['next_cursor']}")
    assert second["vulnerabilities"] == whole["vulnerabilities"][1:2]
    response = await client.get(f"{path}?cursor=99999", headers=auth())
    assert response.status == 400
