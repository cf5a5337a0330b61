"""A collection's results as a report, end to end over the mock scanner on both backends:
SARIF with one run per scanner, a baseline (an earlier collection, a scan), findings two
scanners report alike merged with ``reported_by``, and a finding's other lines stored and
reported as related locations."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.report.fingerprint import VERSION
from mock_scanner import scenario
from tests.helpers import (
    BACKENDS,
    SCANNERS,
    assert_valid_sarif,
    auth,
    collection_events,
    error_shape,
    start_collection,
    start_scan,
    stream,
)
from tests.helpers import COLLECTIONS_API as API

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

SARIF = "application/sarif+json"
# The LLM scanner reports what the SAST scanner does: two tools that find the same bugs.
ALIKE = {"per_scanner": {"llm_scanner": {"findings_of": "sast_scanner"}}}


async def ended(client: TestClient[Any, Any], sub: str = "alice", **options: Any) -> str:
    """A collection run to its end; its id."""
    created = await start_collection(client, sub=sub, **options)
    await collection_events(client, created["collection_id"], sub=sub)
    return str(created["collection_id"])


async def results(client, cid, query="", headers=None, sub="alice"):
    return await client.get(f"{API}/{cid}/results{query}", headers={**auth(sub), **(headers or {})})


async def json_results(client, cid, query=""):
    response = await results(client, cid, query)
    assert response.status == 200, await response.text()
    return (await response.json())["data"]


async def sarif(client, cid, query="?format=sarif"):
    response = await results(client, cid, query)
    assert response.status == 200, await response.text()
    assert response.content_type == SARIF
    document = await response.json(content_type=SARIF)
    assert_valid_sarif(document)
    return document


def fingerprints(results: list[dict[str, Any]]) -> list[str]:
    return [result["partialFingerprints"][VERSION] for result in results]


async def test_the_sarif_of_a_collection_validates_with_one_run_per_scanner(client):
    cid = await ended(client)
    data = await json_results(client, cid)
    response = await results(client, cid, headers={"Accept": SARIF})
    assert response.content_type == SARIF
    document = await response.json(content_type=SARIF)
    assert_valid_sarif(document)
    assert await response.read() == await (await results(client, cid, "?format=sarif")).read()
    runs = document["runs"]
    assert [run["tool"]["driver"]["name"] for run in runs] == list(SCANNERS)
    assert len({run["automationDetails"]["id"] for run in runs}) == len(SCANNERS)
    outcome = {scan["scanner_name"]: scan for scan in data["scans"]}
    for run in runs:
        name = run["tool"]["driver"]["name"]
        assert run["tool"]["driver"]["informationUri"] == str(client.make_url("/api/v1/docs"))
        reported = [f for f in data["vulnerabilities"] if name in f["reported_by"]]
        assert fingerprints(run["results"]) == [f["fingerprint"] for f in reported]
        assert len(run["results"]) == outcome[name]["findings"] > 0
        assert all(r["properties"]["reported_by"] == [name] for r in run["results"])
        assert all("baselineState" not in r for r in run["results"])
    assert sum(len(run["results"]) for run in runs) == data["total_findings"]


async def test_findings_two_scanners_report_alike_are_one_with_reported_by(client):
    created = await start_collection(
        client, scanners=["sast_scanner", "llm_scanner"], configurations=ALIKE
    )
    cid = created["collection_id"]
    events = await collection_events(client, cid)
    # The stream sends each scan's findings as they come: each fingerprint twice, once a scan.
    sent = [f["fingerprint"] for _, data in events for f in data["findings"]]
    assert len(sent) == 2 * len(set(sent)) > 0
    data = await json_results(client, cid)
    assert data["total_findings"] == len(set(sent)) == events[-1][1]["summary"]["total"]
    assert [scan["findings"] for scan in data["scans"]] == [len(set(sent))] * 2
    assert {f["fingerprint"] for f in data["vulnerabilities"]} == set(sent)
    assert all(f["reported_by"] == ["llm_scanner", "sast_scanner"] for f in data["vulnerabilities"])

    document = await sarif(client, cid)
    sast, llm = document["runs"]
    assert fingerprints(sast["results"]) == fingerprints(llm["results"])
    assert sorted(fingerprints(llm["results"])) == sorted(set(sent))
    for result in sast["results"] + llm["results"]:
        assert result["properties"]["reported_by"] == ["llm_scanner", "sast_scanner"]

    # Without the knob the mock's scanners report nothing alike: nothing merges.
    apart = await json_results(
        client, await ended(client, scanners=["sast_scanner", "llm_scanner"])
    )
    assert all(len(f["reported_by"]) == 1 for f in apart["vulnerabilities"])
    assert apart["total_findings"] == sum(scan["findings"] for scan in apart["scans"])


def listed_lines(kind: str) -> dict[str, list[int]]:
    """The other lines each of the mock's findings of ``kind`` lists, by its rule."""
    return {
        raw["rule_id"]: sorted(set(raw["line"]) - {raw["line"][0]})
        for raw in scenario.findings(kind, "acme/web")
        if isinstance(raw.get("line"), list)
    }


async def test_a_findings_other_lines_are_stored_and_reported_and_survive_the_merge(client):
    # The secret scanner lists lines ([start, end]); the SAST scanner reports its findings too,
    # so each is merged from two scanners.
    expected = {rule: lines for rule, lines in listed_lines("secret_scanner").items() if lines}
    assert expected  # the mock does list other lines
    cid = await ended(
        client,
        scanners=["secret_scanner", "sast_scanner"],
        configurations={"per_scanner": {"sast_scanner": {"findings_of": "secret_scanner"}}},
    )
    data = await json_results(client, cid)
    found = {f["type"]: f for f in data["vulnerabilities"]}
    assert {rule: f["related_lines"] for rule, f in found.items() if "related_lines" in f} == (
        expected
    )
    assert all(f["reported_by"] == ["sast_scanner", "secret_scanner"] for f in found.values())

    document = await sarif(client, cid)
    for run in document["runs"]:
        for result in run["results"]:
            rule = result["ruleId"]
            where = result["locations"][0]["physicalLocation"]
            assert where["region"]["startLine"] == found[rule]["line"]
            related = result.get("relatedLocations", [])
            assert [r["physicalLocation"]["region"]["startLine"] for r in related] == (
                expected.get(rule, [])
            )
            for number, location in enumerate(related, start=1):
                assert location["id"] == number
                assert (
                    location["physicalLocation"]["artifactLocation"] == (where["artifactLocation"])
                )
                assert location["message"]["text"]


async def test_against_an_earlier_collection_findings_are_new_unchanged_or_fixed(client):
    before = await ended(client, scanners=["secret_scanner", "sast_scanner"])
    after = await ended(client, scanners=["sast_scanner", "llm_scanner"])
    counts = {
        scan["scanner_name"]: scan["findings"]
        for cid in (before, after)
        for scan in (await json_results(client, cid))["scans"]
    }
    expected = {
        "id": before,
        "kind": "collection",
        "new": counts["llm_scanner"],
        "unchanged": counts["sast_scanner"],
        "fixed": counts["secret_scanner"],
    }
    # One finding a page: the collection's findings first, then the baseline's fixed ones.
    pages, cursor = [], ""
    while True:
        page = await json_results(client, after, f"?baseline={before}&limit=1{cursor}")
        pages.append(page)
        assert page["baseline"] == expected
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    found = [f for p in pages for f in p["vulnerabilities"]]
    fixed = [f for p in pages for f in p["fixed"]]
    assert len(pages) == len(found) + len(fixed) == sum(counts.values())
    for finding in found:
        new = finding["reported_by"] == ["llm_scanner"]
        assert finding["baseline_state"] == ("new" if new else "unchanged")
    assert {f["baseline_state"] for f in fixed} == {"absent"}
    assert {tuple(f["reported_by"]) for f in fixed} == {("secret_scanner",)}
    past = await results(client, after, f"?baseline={before}&cursor={len(pages) + 1}")
    assert past.status == 400

    document = await sarif(client, after, f"?format=sarif&baseline={before}")
    states = {
        run["tool"]["driver"]["name"]: [r["baselineState"] for r in run["results"]]
        for run in document["runs"]
    }
    # The scanner only the baseline ran gets a run of its own, of its fixed findings.
    assert states == {
        "sast_scanner": ["unchanged"] * counts["sast_scanner"],
        "llm_scanner": ["new"] * counts["llm_scanner"],
        "secret_scanner": ["absent"] * counts["secret_scanner"],
    }

    same = await json_results(client, after, f"?baseline={after}")
    total = same["total_findings"]
    assert same["baseline"] == {**expected, "id": after, "new": 0, "unchanged": total, "fixed": 0}


async def test_against_a_scan_its_scanners_findings_are_unchanged_and_its_others_fixed(client):
    scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner")
    assert (await stream(client, scan_id))[-1][1]["status"] == "completed"
    scanned = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    sast = (await scanned.json())["data"]["total_findings"]
    both = await ended(client, scanners=["sast_scanner", "secret_scanner"])
    data = await json_results(client, both, f"?baseline={scan_id}")
    secret = data["total_findings"] - sast
    assert data["baseline"] == {
        "id": scan_id,
        "kind": "scan",
        "new": secret,
        "unchanged": sast,
        "fixed": 0,
    }
    other = await ended(client, scanners=["secret_scanner"])
    data = await json_results(client, other, f"?baseline={scan_id}")
    assert data["baseline"]["fixed"] == sast and data["baseline"]["new"] == secret
    assert all(f["reported_by"] == ["sast_scanner"] for f in data["fixed"])
    document = await sarif(client, other, f"?baseline={scan_id}&format=sarif")
    names = [run["tool"]["driver"]["name"] for run in document["runs"]]
    assert names == ["secret_scanner", "sast_scanner"]
    assert {r["baselineState"] for r in document["runs"][1]["results"]} == {"absent"}


async def test_a_baseline_must_be_the_callers_own_and_ended(client):
    cid = await ended(client, scanners=["secret_scanner"])
    foreign = await ended(client, scanners=["secret_scanner"], sub="mallory")
    for baseline in (foreign, "00000000-0000-0000-0000-000000000000"):
        response = await results(client, cid, f"?baseline={baseline}")
        assert response.status == 404
        body = await response.json()
        error_shape(body)
        assert body["error"] == "not_found" and baseline in body["message"]
    for bad in ("a/b", "x" * 101):
        response = await results(client, cid, f"?baseline={bad}")
        assert response.status == 400, bad
        assert "'baseline'" in (await response.json())["message"]
    running = await start_collection(
        client, scanners=["sast_scanner"], configurations={"stall_at": 50}
    )
    failed = await start_scan(client, use_sse=True, configurations={"fail_at": 30})
    await stream(client, failed)
    for baseline, words in (
        (running["collection_id"], "baseline collection"),
        (failed, "baseline scan"),
    ):
        response = await results(client, cid, f"?baseline={baseline}&format=sarif")
        assert response.status == 409, baseline
        assert words in (await response.json())["message"]
    # Another subject learns nothing of the collection, whatever it asks for.
    for query in ("?format=sarif", f"?baseline={cid}", "?format=xml"):
        response = await results(client, cid, query, sub="mallory")
        assert response.status == 404
        assert (await response.json())["error"] == "collection_not_found"


async def test_a_failed_collections_sarif_holds_the_others_findings(client):
    cid = await ended(
        client,
        scanners=["secret_scanner", "sast_scanner"],
        configurations={"per_scanner": {"sast_scanner": {"fail_at": 40}}},
    )
    document = await sarif(client, cid)
    secret, sast = document["runs"]
    assert len(secret["results"]) > 0 and sast["results"] == []


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("?format=sarif&limit=1", {}, 400),
        ("?format=sarif&cursor=0", {}, 400),
        ("?format=xml", {}, 400),
        ("", {"Accept": "text/html"}, 406),
    ],
)
async def test_what_a_report_cannot_be_is_refused(client, query, headers, status):
    cid = await ended(client, scanners=["llm_scanner"])
    response = await results(client, cid, query, headers)
    assert response.status == status
    error_shape(await response.json())
