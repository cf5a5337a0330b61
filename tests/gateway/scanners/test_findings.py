"""What one scanner can make the gateway keep: findings bounded in size, in number and in bytes
per scan, results read a page at a time, and a bounded event log.

The unit tests check each bound at the limit and one past it; the gateway tests run a scripted
scanner against the real app on both backends.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from gateway.config import FindingsConfig
from gateway.scanners.findings import TRUNCATED, FindingsBudget, encoded_size
from gateway.scanners.vulnerability import normalise_vulnerability
from tests.helpers import BACKENDS, auth, error_shape, start_scan, stream

LIMITS = FindingsConfig(max_field_chars=100, max_metadata_bytes=200, max_metadata_depth=3)


def finding(**fields: Any) -> dict[str, Any]:
    return normalise_vulnerability(fields, scanner="sast_scanner", index=0, limits=LIMITS)


# --------------------------------------------------------------------------- one finding


@pytest.mark.parametrize(
    "field", ["title", "description", "code_snippet", "remediation", "file_path", "type", "id"]
)
def test_a_text_field_at_the_limit_is_kept_whole(field):
    kept = finding(**{"title": "t", field: "x" * 100})
    assert kept[field] == "x" * 100
    assert "truncated_fields" not in kept


@pytest.mark.parametrize(
    "field", ["title", "description", "code_snippet", "remediation", "file_path", "type", "id"]
)
def test_a_text_field_past_the_limit_is_cut_with_a_visible_marker(field):
    cut = finding(**{"title": "t", field: "x" * 101})
    assert len(cut[field]) == 100
    assert cut[field] == "x" * (100 - len(TRUNCATED)) + TRUNCATED
    assert cut["truncated_fields"] == [field]


def test_every_field_cut_is_named():
    cut = finding(title="t" * 500, description="d" * 500, confidence="c" * 500)
    assert cut["truncated_fields"] == ["title", "description", "confidence"]
    assert all(len(cut[name]) == 100 for name in cut["truncated_fields"])


def nested(levels: int) -> Any:
    """``levels - 1`` dicts, one inside the other: with the metadata around them, ``levels``."""
    value: Any = "leaf"
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def test_metadata_at_the_depth_limit_is_kept():
    kept = finding(title="t", extra=nested(3))  # metadata and two dicts: 3 levels
    assert kept["metadata"] == {"extra": {"k": {"k": "leaf"}}}
    assert "truncated_fields" not in kept


def test_metadata_past_the_depth_limit_is_cut_with_the_marker():
    cut = finding(title="t", extra=nested(4), flat=1)
    assert cut["metadata"] == {"extra": {"k": {"k": TRUNCATED}}, "flat": 1}
    assert cut["truncated_fields"] == ["metadata"]


def test_metadata_lists_count_as_levels_and_their_strings_are_cut():
    cut = finding(title="t", notes=[["deep"], "s" * 150])
    assert cut["metadata"] == {"notes": [["deep"], "s" * (100 - len(TRUNCATED)) + TRUNCATED]}
    assert cut["truncated_fields"] == ["metadata"]
    cut = finding(title="t", notes=[[["deeper"]]])
    assert cut["metadata"] == {"notes": [[TRUNCATED]]}


def metadata_of_size(size: int) -> dict[str, Any]:
    """Metadata whose compact JSON is exactly ``size`` bytes: {"a":"...","b":"..."}."""
    text = size - len('{"a":"","b":""}')
    metadata = {"a": "x" * (text // 2), "b": "y" * (text - text // 2)}
    assert encoded_size(metadata) == size
    return metadata


def test_metadata_at_the_byte_limit_is_kept():
    raw = {"title": "t", **metadata_of_size(200)}
    kept = normalise_vulnerability(raw, scanner="s", index=0, limits=LIMITS)
    assert kept["metadata"] == metadata_of_size(200)
    assert "truncated_fields" not in kept


def test_metadata_past_the_byte_limit_keeps_the_keys_that_fit():
    raw = {"title": "t", **metadata_of_size(201), "c": 1}
    cut = normalise_vulnerability(raw, scanner="s", index=0, limits=LIMITS)
    assert cut["metadata"] == {"a": raw["a"], "c": 1}, "b does not fit after a; c still does"
    assert encoded_size(cut["metadata"]) <= 200
    assert cut["truncated_fields"] == ["metadata"]


def test_huge_numbers_in_strings_are_not_handed_to_int():
    # int() refuses strings of more than 4300 digits: that used to crash the scan.
    digits = "7" * 5000
    kept = normalise_vulnerability(
        {"title": "t", "line": digits, "column": digits, "cwe": f"CWE-{digits}"},
        scanner="s",
        index=0,
    )
    assert (kept["line"], kept["column"], kept["cwe"]) == (None, None, None)
    assert set(kept["metadata"]) == {"line", "column", "cwe"}


def test_positions_and_cwes_past_their_range_are_not_positions():
    kept = normalise_vulnerability(
        {"title": "t", "line": 2**31 - 1, "column": 2**31, "cwe": 10**6 + 1}, scanner="s", index=0
    )
    assert (kept["line"], kept["column"], kept["cwe"]) == (2**31 - 1, None, None)


# --------------------------------------------------------------------------- one scan


def small(index: int) -> dict[str, Any]:
    return {"id": f"f{index}", "severity": "low"}


def test_the_count_bound_keeps_exactly_max_per_scan():
    budget = FindingsBudget(FindingsConfig(max_per_scan=3))
    budget.add([small(i) for i in range(3)])
    assert (len(budget.kept), budget.dropped) == (3, 0)
    budget.add([small(3), small(4)])
    assert [f["id"] for f in budget.kept] == ["f0", "f1", "f2"]
    assert budget.dropped == 2


def test_the_byte_bound_keeps_the_first_findings_that_fit_then_drops_every_later_one():
    size = encoded_size(small(0))
    budget = FindingsBudget(FindingsConfig(max_bytes_per_scan=2 * size))
    budget.add([small(0), small(1)])
    assert (len(budget.kept), budget.bytes, budget.dropped) == (2, 2 * size, 0)
    budget = FindingsBudget(FindingsConfig(max_bytes_per_scan=2 * size + 1))
    budget.add([small(0), {"id": "big", "description": "x" * 50}, small(1)])
    assert [f["id"] for f in budget.kept] == ["f0"], "after one is dropped, the rest are too"
    assert budget.dropped == 2


# --------------------------------------------------------------------------- the gateway


def findings(count: int, severity: str = "high") -> list[dict[str, Any]]:
    return [{"id": f"f{i}", "title": f"finding {i}", "severity": severity} for i in range(count)]


async def run_scripted(gateway, scripted_scanner, messages, **overrides):
    url = await scripted_scanner([f"data: {json.dumps(m)}\n\n".encode() for m in messages])
    client = await gateway(scanners={"sast_scanner": url}, **overrides)
    scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner")
    events = await stream(client, scan_id)
    return client, scan_id, events


async def results(client, scan_id, query: str = "") -> tuple[int, dict[str, Any]]:
    response = await client.get(f"/api/v1/scans/{scan_id}/results{query}", headers=auth())
    body = await response.json()
    if response.status != 200:
        error_shape(body)
        return response.status, body
    return 200, body["data"]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_findings_past_the_count_are_dropped_counted_and_said(gateway, scripted_scanner):
    messages = [
        {"status": "scanning", "vulnerabilities": findings(3)},
        {"status": "scanning", "vulnerabilities": findings(4, "low")},
        {"status": "completed"},
    ]
    client, scan_id, events = await run_scripted(
        gateway, scripted_scanner, messages, findings={"max_per_scan": 5}
    )
    done = events[-1][1]
    assert done["status"] == "completed"
    assert done["findings_dropped"] == 2
    assert done["summary"]["high"] == 3 and done["summary"]["low"] == 2
    assert "5 vulnerabilities found; 2 more dropped" in done["progress_text"]
    status, data = await results(client, scan_id)
    assert status == 200
    assert [v["id"] for v in data["vulnerabilities"]] == ["f0", "f1", "f2", "f0", "f1"]
    assert (data["total_findings"], data["findings_dropped"], data["truncated"]) == (5, 2, True)
    assert data["next_cursor"] is None


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_findings_at_the_count_are_all_kept(gateway, scripted_scanner):
    messages = [{"status": "completed", "vulnerabilities": findings(5)}]
    client, scan_id, events = await run_scripted(
        gateway, scripted_scanner, messages, findings={"max_per_scan": 5}
    )
    assert events[-1][1]["findings_dropped"] == 0
    _, data = await results(client, scan_id)
    assert (data["total_findings"], data["findings_dropped"], data["truncated"]) == (5, 0, False)


async def test_findings_past_the_byte_bound_are_dropped(gateway, scripted_scanner):
    one = encoded_size(normalise_vulnerability(findings(1)[0], scanner="sast_scanner", index=0))
    messages = [{"status": "completed", "vulnerabilities": findings(3)}]
    client, scan_id, events = await run_scripted(
        gateway, scripted_scanner, messages, findings={"max_bytes_per_scan": 2 * one + 1}
    )
    assert events[-1][1]["findings_dropped"] == 1
    _, data = await results(client, scan_id)
    assert [v["id"] for v in data["vulnerabilities"]] == ["f0", "f1"]


async def test_a_huge_description_over_many_data_lines_comes_back_cut(gateway, aiohttp_server):
    """The audit's case: one finding of megabytes, one field per ``data:`` line."""
    piece = "d" * 900_000
    lines = [
        '{"status": "completed", "vulnerabilities": [{"title": "big",',
        f'"description": "{piece}",',
        *(f'"note{i}": "{piece}",' for i in range(8)),
        '"last": 1}]}',
    ]
    frame = "".join(f"data: {line}\n" for line in lines) + "\n"

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(frame.encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/scan", answer)
    url = str((await aiohttp_server(app)).make_url("/scan"))
    bounds = {"max_field_chars": 1000, "max_metadata_bytes": 1000}
    # The event (about 8 MB) passes the upstream event cap here, so the findings bounds act.
    upstream = {"max_event_bytes": 16 * 1024 * 1024}
    client = await gateway(scanners={"sast_scanner": url}, findings=bounds, upstream=upstream)
    scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner")
    assert (await stream(client, scan_id))[-1][1]["status"] == "completed"
    response = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    assert len(await response.read()) < 5000, "not the megabyte the scanner sent"
    vuln = (await response.json())["data"]["vulnerabilities"][0]
    assert len(vuln["description"]) == 1000 and vuln["description"].endswith(TRUNCATED)
    assert vuln["truncated_fields"] == ["description", "metadata"]
    assert vuln["metadata"] == {"last": 1}, "the notes do not fit in max_metadata_bytes"


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_results_come_a_page_at_a_time_with_the_summary_of_all(gateway, scripted_scanner):
    messages = [
        {"status": "scanning", "vulnerabilities": findings(4, "high")},
        {"status": "completed", "vulnerabilities": findings(3, "low")},
    ]
    client, scan_id, _ = await run_scripted(
        gateway, scripted_scanner, messages, findings={"page_size": 3, "max_page_size": 5}
    )
    seen: list[str] = []
    cursors: list[str | None] = []
    query = ""
    for _ in range(5):  # bounded: 7 findings in pages of 3
        status, data = await results(client, scan_id, query)
        assert status == 200, data
        assert data["summary"]["high"] == 4 and data["summary"]["low"] == 3
        assert data["total_findings"] == 7
        seen += [v["title"] + "/" + v["severity"] for v in data["vulnerabilities"]]
        cursors.append(data["next_cursor"])
        if data["next_cursor"] is None:
            break
        query = f"?cursor={data['next_cursor']}"
    assert cursors == ["3", "6", None]
    expected = [f"finding {i}/high" for i in range(4)] + [f"finding {i}/low" for i in range(3)]
    assert seen == expected
    _, data = await results(client, scan_id, "?limit=5&cursor=2")
    assert len(data["vulnerabilities"]) == 5 and data["next_cursor"] is None
    _, data = await results(client, scan_id, "?cursor=7")  # the end: an empty last page
    assert (data["vulnerabilities"], data["next_cursor"]) == ([], None)


async def test_a_page_ends_at_its_byte_bound_and_the_cursor_carries_on(gateway, scripted_scanner):
    messages = [{"status": "completed", "vulnerabilities": findings(5, "high")}]
    client, scan_id, _ = await run_scripted(
        gateway, scripted_scanner, messages, findings={"max_page_bytes": 64}
    )
    seen: list[str] = []
    for _ in range(10):  # bounded: 5 findings, each bigger than 64 bytes, one a page
        status, data = await results(client, scan_id, f"?cursor={len(seen)}")
        assert status == 200, data
        assert len(data["vulnerabilities"]) == 1 and data["total_findings"] == 5
        seen += [v["title"] for v in data["vulnerabilities"]]
        if data["next_cursor"] is None:
            break
        assert data["next_cursor"] == str(len(seen))
    assert seen == [f"finding {i}" for i in range(5)]


async def test_the_first_page_keeps_the_shape_of_before(client):
    scan_id = await start_scan(client)
    await stream(client, scan_id)
    _, data = await results(client, scan_id)
    old = {"scan_id", "scanner_name", "repository_name", "status", "vulnerabilities", "summary"}
    assert old <= set(data)
    assert set(data) - old == {"total_findings", "findings_dropped", "truncated", "next_cursor"}
    assert data["total_findings"] == len(data["vulnerabilities"]) > 0
    assert sum(data["summary"].values()) == data["total_findings"]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=6",  # max_page_size is 5
        "?limit=-1",
        "?limit=abc",
        "?limit=1.5",
        "?limit=" + "9" * 5000,
        "?limit=%EF%BC%91",  # a full-width digit one
        "?cursor=-1",
        "?cursor=abc",
        "?cursor=8",  # past the 7 findings
        "?cursor=" + "9" * 5000,
        "?cursor=" + "9" * 13,
        "?cursor=%D9%A3",  # an Arabic-Indic three
    ],
)
async def test_every_bad_limit_or_cursor_is_400(gateway, scripted_scanner, query):
    messages = [{"status": "completed", "vulnerabilities": findings(7)}]
    client, scan_id, _ = await run_scripted(
        gateway, scripted_scanner, messages, findings={"page_size": 3, "max_page_size": 5}
    )
    status, body = await results(client, scan_id, query)
    assert status == 400, body
    assert body["error"] == "bad_request"
    assert len(body["message"]) < 200, "a 5000-digit value is not echoed whole"


async def test_a_5000_digit_limit_on_the_scan_list_is_400(client):
    response = await client.get("/api/v1/scans/?limit=" + "9" * 5000, headers=auth())
    assert response.status == 400
    error_shape(await response.json())


async def test_cut_findings_pages_and_the_completed_event_match_the_document(
    gateway, scripted_scanner
):
    from tests.gateway.http.test_openapi import conforms, served, validator

    big = {"title": "t" * 200, "deep": nested(12), "severity": "high"}
    messages = [{"status": "completed", "vulnerabilities": [big, *findings(4)]}]
    client, scan_id, events = await run_scripted(
        gateway,
        scripted_scanner,
        messages,
        findings={"max_per_scan": 3, "max_field_chars": 100, "page_size": 2},
    )
    document = await served(client)
    path = "/api/v1/scans/{scan_id}/results"
    for query in ("", "?cursor=2", "?cursor=abc"):
        response = await client.get(f"/api/v1/scans/{scan_id}/results{query}", headers=auth())
        body = await response.json()
        conforms(document, "GET", path, response.status, response.headers, body)
    first = (await results(client, scan_id))[1]
    assert first["vulnerabilities"][0]["truncated_fields"] == ["title", "metadata"]
    event = validator(document, {"$ref": "#/components/schemas/Event"})
    for _, data in events:
        event.validate(data)
    assert events[-1][1]["findings_dropped"] == 2


# --------------------------------------------------------------------------- events


def progress(count: int) -> list[dict[str, Any]]:
    return [{"status": "scanning", "progress_percent": i + 1} for i in range(count)]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_scan_that_reaches_max_events_exactly_completes(gateway, scripted_scanner):
    # pending, connecting, 7 progress events and completed: 10.
    messages = [*progress(7), {"status": "completed"}]
    _, _, events = await run_scripted(
        gateway, scripted_scanner, messages, limits={"max_events_per_scan": 10}
    )
    assert [event_id for event_id, _ in events] == list(range(1, 11))
    assert events[-1][1]["status"] == "completed"


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_scan_past_max_events_fails_and_its_log_stays_within_it(gateway, scripted_scanner):
    messages = [*progress(8), {"status": "completed"}]
    client, scan_id, events = await run_scripted(
        gateway, scripted_scanner, messages, limits={"max_events_per_scan": 10}
    )
    assert [event_id for event_id, _ in events] == list(range(1, 11))
    last = events[-1][1]
    assert last["status"] == "failed"
    assert "too many events" in last["error"] and "at most 10" in last["error"]
    assert last["progress_percent"] == 7
    record = await (await client.get(f"/api/v1/scans/{scan_id}", headers=auth())).json()
    assert record["data"]["last_event_id"] == 10


async def test_the_smallest_log_still_ends_with_a_terminal_event(gateway, scripted_scanner):
    # Only the terminal event may take the last place, so the log never passes the bound and
    # always ends, whatever the scanner does.
    messages = progress(50)
    _, _, events = await run_scripted(
        gateway, scripted_scanner, messages, limits={"max_events_per_scan": 3}
    )
    assert [(event_id, data["status"]) for event_id, data in events] == [
        (1, "pending"),
        (2, "connecting"),
        (3, "failed"),
    ]


def test_max_events_per_scan_must_hold_pending_connecting_and_the_end():
    from gateway.config import ConfigError, config_from_dict

    config_from_dict({"limits": {"max_events_per_scan": 3}})
    with pytest.raises(ConfigError, match=r"limits\.max_events_per_scan"):
        config_from_dict({"limits": {"max_events_per_scan": 2}})
