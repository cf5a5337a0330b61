"""A scan's results as a report, end to end over the mock scanner: SARIF, and a baseline."""

from __future__ import annotations

import json

import pytest

from gateway.http.appkeys import REPORT_BUILDS
from gateway.report.fingerprint import VERSION
from mock_scanner import scenario
from tests.helpers import (
    COLLECTIONS_API,
    SCANNERS,
    assert_valid_sarif,
    auth,
    collection_events,
    error_shape,
    start_collection,
    start_scan,
    stream,
)

SARIF = "application/sarif+json"


async def completed_scan(client, scanner="sast_scanner", sub="alice", configurations=None):
    scan_id = await start_scan(
        client, use_sse=True, scanner=scanner, sub=sub, configurations=configurations
    )
    events = await stream(client, scan_id, sub=sub)
    assert events[-1][1]["status"] == "completed", events[-1]
    return scan_id


async def results(client, scan_id, query="", headers=None, sub="alice"):
    url = f"/api/v1/scans/{scan_id}/results{query}"
    return await client.get(url, headers={**auth(sub), **(headers or {})})


async def json_results(client, scan_id, query=""):
    response = await results(client, scan_id, query)
    assert response.status == 200, await response.text()
    return (await response.json())["data"]


@pytest.mark.parametrize("kind", SCANNERS)
async def test_the_sarif_of_a_scan_validates_and_holds_every_finding(client, kind):
    scan_id = await completed_scan(client, kind)
    data = await json_results(client, scan_id)
    response = await results(client, scan_id, headers={"Accept": SARIF})
    assert response.status == 200
    assert response.content_type == SARIF
    document = await response.json(content_type=SARIF)
    assert_valid_sarif(document)
    (run,) = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == kind
    assert driver["informationUri"] == str(client.make_url("/api/v1/docs"))
    assert len(run["results"]) == data["total_findings"] > 0
    rules = {rule["id"] for rule in driver["rules"]}
    assert {r["ruleId"] for r in run["results"]} == rules
    assert all(set(r["partialFingerprints"]) == {VERSION} for r in run["results"])
    assert all("baselineState" not in r for r in run["results"])


async def test_a_list_of_lines_is_stored_whole_and_reported_as_related_locations(client):
    listed = {
        raw["rule_id"]: sorted(set(raw["line"]) - {raw["line"][0]})
        for raw in scenario.findings("secret_scanner", "acme/web")
    }
    scan_id = await completed_scan(client, "secret_scanner")
    data = await json_results(client, scan_id)
    stored = {f["type"]: f.get("related_lines", []) for f in data["vulnerabilities"]}
    assert stored == listed and any(stored.values())
    document = await (await results(client, scan_id, "?format=sarif")).json(content_type=SARIF)
    assert_valid_sarif(document)
    (run,) = document["runs"]
    reported = {
        r["ruleId"]: [
            n["physicalLocation"]["region"]["startLine"] for n in r.get("relatedLocations", [])
        ]
        for r in run["results"]
    }
    assert reported == listed


async def test_format_sarif_is_the_same_document_as_accept(client):
    scan_id = await completed_scan(client)
    by_query = await results(client, scan_id, "?format=sarif")
    by_header = await results(client, scan_id, headers={"Accept": SARIF})
    assert by_query.content_type == SARIF
    assert await by_query.read() == await by_header.read()


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        (None, "json"),
        ("", "json"),
        ("*/*", "json"),
        ("application/*", "json"),
        ("application/json", "json"),
        ("application/sarif+json", "sarif"),
        ("application/sarif+json, application/json", "sarif"),
        ("application/json, */*;q=0.8", "json"),
        ("application/json;q=0.5, application/sarif+json", "sarif"),
        ("application/sarif+json;q=0.2, application/json", "json"),
        ("text/html, application/sarif+json;q=0.1", "sarif"),
        ("text/html, */*;q=0.1", "json"),
        ("application/json;q=nonsense", "json"),
    ],
)
async def test_accept_chooses_json_or_sarif(client, accept, kind):
    scan_id = await completed_scan(client)
    headers = {} if accept is None else {"Accept": accept}
    response = await results(client, scan_id, headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == (SARIF if kind == "sarif" else "application/json")


@pytest.mark.parametrize(
    "accept", ["text/html", "application/json;q=0", "image/*, text/plain", "application/xml"]
)
async def test_an_accept_the_gateway_cannot_serve_is_406(client, accept):
    scan_id = await completed_scan(client)
    response = await results(client, scan_id, headers={"Accept": accept})
    assert response.status == 406
    body = await response.json()
    error_shape(body)
    assert body["error"] == "not_acceptable" and SARIF in body["message"]


async def test_format_wins_over_accept(client):
    scan_id = await completed_scan(client)
    response = await results(client, scan_id, "?format=json", headers={"Accept": "text/html"})
    assert response.status == 200 and response.content_type == "application/json"


@pytest.mark.parametrize("value", ["xml", "SARIF", "x" * 5000])
async def test_an_unknown_format_is_400_naming_it(client, value):
    scan_id = await completed_scan(client)
    response = await results(client, scan_id, f"?format={value}")
    assert response.status == 400
    body = await response.json()
    error_shape(body)
    assert "'format'" in body["message"] and value[:20] in body["message"]
    assert len(body["message"]) < 200


async def test_the_json_answer_is_as_before_without_new_parameters(client):
    scan_id = await completed_scan(client)
    plain = await json_results(client, scan_id)
    assert list(plain) == [
        "scan_id",
        "scanner_name",
        "repository_name",
        "status",
        "vulnerabilities",
        "summary",
        "total_findings",
        "findings_dropped",
        "truncated",
        "next_cursor",
    ]
    assert all(
        "fingerprint" not in f and "baseline_state" not in f for f in plain["vulnerabilities"]
    )
    assert await json_results(client, scan_id, "?format=json") == plain


@pytest.mark.parametrize("query", ["?format=sarif&limit=1", "?format=sarif&cursor=0"])
async def test_sarif_is_not_paged(client, query):
    scan_id = await completed_scan(client)
    response = await results(client, scan_id, query)
    assert response.status == 400
    assert "one document" in (await response.json())["message"]


async def test_a_baseline_of_the_same_code_finds_everything_unchanged(client):
    first = await completed_scan(client)
    second = await completed_scan(client)
    data = await json_results(client, second, f"?baseline={first}")
    total = data["total_findings"]
    assert data["baseline"] == {"scan_id": first, "new": 0, "unchanged": total, "fixed": 0}
    assert data["fixed"] == [] and data["next_cursor"] is None
    assert {f["baseline_state"] for f in data["vulnerabilities"]} == {"unchanged"}
    before = await json_results(client, first)
    assert [f["fingerprint"] for f in data["vulnerabilities"]] == [
        f["fingerprint"]
        for f in (await json_results(client, first, f"?baseline={second}"))["vulnerabilities"]
    ]
    assert len(before["vulnerabilities"]) == total


async def test_against_another_scanners_scan_everything_is_new_and_its_findings_fixed(client):
    base = await completed_scan(client, "secret_scanner")
    scan_id = await completed_scan(client, "sast_scanner")
    base_total = (await json_results(client, base))["total_findings"]
    total = (await json_results(client, scan_id))["total_findings"]
    # One finding a page: the scan's findings first, then the baseline's fixed ones.
    pages, cursor = [], ""
    while True:
        page = await json_results(client, scan_id, f"?baseline={base}&limit=1{cursor}")
        pages.append(page)
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(pages) == total + base_total
    assert all(
        p["baseline"] == {"scan_id": base, "new": total, "unchanged": 0, "fixed": base_total}
        for p in pages
    )
    found = [f for p in pages for f in p["vulnerabilities"]]
    fixed = [f for p in pages for f in p["fixed"]]
    assert [f["baseline_state"] for f in found] == ["new"] * total
    assert [f["baseline_state"] for f in fixed] == ["absent"] * base_total
    assert {f["scanner"] for f in fixed} == {"secret_scanner"}
    past = await results(client, scan_id, f"?baseline={base}&cursor={total + base_total + 1}")
    assert past.status == 400

    response = await results(client, scan_id, f"?baseline={base}&format=sarif")
    document = await response.json(content_type=SARIF)
    assert_valid_sarif(document)
    states = [r["baselineState"] for r in document["runs"][0]["results"]]
    assert states == ["new"] * total + ["absent"] * base_total


async def test_a_baseline_must_be_the_callers_own_completed_scan(client):
    scan_id = await completed_scan(client)
    foreign = await completed_scan(client, sub="mallory")
    for baseline in (foreign, "00000000-0000-0000-0000-000000000000"):
        response = await results(client, scan_id, f"?baseline={baseline}")
        assert response.status == 404
        body = await response.json()
        error_shape(body)
        assert body["error"] == "scan_not_found" and baseline in body["message"]
    for bad in ("a/b", "x" * 101, "id with spaces"):
        response = await results(client, scan_id, f"?baseline={bad}")
        assert response.status == 400, bad
        assert "'baseline'" in (await response.json())["message"]

    stalled = await start_scan(client, use_sse=True, configurations={"stall_at": 50})
    cancelled = await client.delete(f"/api/v1/scans/{stalled}", headers=auth())
    assert cancelled.status == 200
    response = await results(client, scan_id, f"?baseline={stalled}&format=sarif")
    assert response.status == 409
    assert "baseline scan" in (await response.json())["message"]


async def test_another_subjects_scan_is_404_whatever_is_asked(client):
    foreign = await completed_scan(client, sub="mallory")
    for query in ("?format=sarif", f"?baseline={foreign}", "?format=xml"):
        response = await results(client, foreign, query)
        assert response.status == 404, query


async def test_json_of_a_sarif_answer_is_strict(client):
    scan_id = await completed_scan(client, "llm_scanner")
    body = await (await results(client, scan_id, "?format=sarif")).read()
    json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} in SARIF"))


@pytest.mark.parametrize(
    "path", ["/api/v1/scans/{scan_id}/results", COLLECTIONS_API + "/{collection_id}/results"]
)
async def test_the_document_declares_the_report_parameters_and_answers(client, path):
    document = await (await client.get("/api/v1/openapi.json")).json()
    operation = document["paths"][path]["get"]
    names = {p["$ref"].rsplit("/", 1)[1] for p in operation["parameters"]}
    assert {"ReportFormat", "Baseline"} <= names
    parameters = document["components"]["parameters"]
    assert parameters["ReportFormat"]["schema"]["enum"] == ["json", "sarif"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", SARIF}
    assert content[SARIF]["schema"]["properties"]["version"]["enum"] == ["2.1.0"]
    assert {"406", "429"} <= set(operation["responses"])
    assert "limits.max_report_builds` (2)" in operation["description"]


async def test_reports_past_max_report_builds_are_429_and_json_pages_are_not(gateway):
    client = await gateway(limits={"max_report_builds": 1, "retry_after_seconds": 7})
    scan_id = await completed_scan(client)
    created = await start_collection(client, scanners=["sast_scanner", "llm_scanner"])
    await collection_events(client, created["collection_id"])
    collection = f"{COLLECTIONS_API}/{created['collection_id']}/results"
    scan = f"/api/v1/scans/{scan_id}/results"
    reports = [
        f"{scan}?format=sarif",
        f"{scan}?baseline={scan_id}",
        f"{collection}?format=sarif",
        f"{collection}?baseline={scan_id}",
    ]
    for path in reports:  # one at a time: each fits
        assert (await client.get(path, headers=auth())).status == 200, path
    async with client.app[REPORT_BUILDS]:  # the one place taken: a report is being built
        for path in reports:
            response = await client.get(path, headers=auth())
            assert response.status == 429, path
            assert response.headers["Retry-After"] == "7"
            body = await response.json()
            error_shape(body)
            assert body["error"] == "limit_exceeded"
            assert "maximum of 1 reports" in body["message"]
        for path in (scan, collection):  # the JSON pages are no report
            assert (await client.get(path, headers=auth())).status == 200, path
    assert (await client.get(reports[0], headers=auth())).status == 200
