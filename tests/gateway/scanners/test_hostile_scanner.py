"""The scanner edge against a hostile scanner: whatever it sends, the scan ends with exactly one
terminal event and a clear reason (never "internal error"), nothing of it reaches clients
that the gateway did not vet, and the gateway stays healthy for the next scan."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.domain.models import compact_json
from gateway.scanners.normalise import MAX_EXTRA_FIELDS, MAX_EXTRA_KEY, MAX_EXTRA_TEXT
from tests.helpers import auth, start_scan, stream
from tests.hostile_scanner import MODES, HostileScanner

TERMINAL = {"completed", "failed", "cancelled"}
SECRETS = ("hunter2", "sekrit")
SMALL = {"max_line_length": 65536, "max_event_bytes": 65536, "max_body_bytes": 1 << 20}


@pytest.fixture
async def hostile() -> AsyncIterator[HostileScanner]:
    server = HostileScanner()
    await server.start()
    yield server
    await server.close()


async def run(client: Any, scanner: str = "sast_scanner") -> tuple[list[dict[str, Any]], dict]:
    scan_id = await start_scan(client, use_sse=True, scanner=scanner)
    events = [data for _, data in await stream(client, scan_id)]
    response = await client.get(f"/api/v1/scans/{scan_id}", headers=auth())
    record = (await response.json())["data"]
    return events, record


def one_terminal_event(events: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    terminal = [data for data in events if data["status"] in TERMINAL]
    assert len(terminal) == 1 and events[-1] is terminal[0], events
    assert record["status"] == terminal[0]["status"]
    assert "internal error" not in str(terminal[0].get("error"))
    return terminal[0]


async def still_healthy(client: Any) -> None:
    """A normal scan (the mock scanner) completes after the attack, and /healthz answers."""
    events, _ = await run(client, scanner="secret_scanner")
    assert events[-1]["status"] == "completed"
    assert (await client.get("/healthz")).status == 200


# mode -> (upstream config overrides, the terminal status, a phrase of its error)
FAILS: dict[str, tuple[dict[str, Any], str]] = {
    "redirect_302": ({}, "answered HTTP 302, a redirect; redirects are not followed"),
    "redirect_307": ({}, "answered HTTP 307, a redirect; redirects are not followed"),
    "header_flood": ({}, "sent an invalid HTTP answer: Too many headers"),
    "huge_header": ({}, "sent an invalid HTTP answer: Got more than 8190 bytes"),
    "huge_status_line": ({}, "sent an invalid HTTP answer: Got more than 8190 bytes"),
    "error_body_with_escapes": ({}, "answered HTTP 500: [2J [31mboom ]0;owned \ufffd31m done"),
    "chunk_bad_size": ({}, "sent an invalid HTTP answer: Invalid character in chunk size"),
    "chunk_size_5000_digits": ({}, "sent an invalid HTTP answer: Chunk size overflow"),
    "chunk_size_lies": ({}, "connection to sast_scanner was lost"),
    "chunk_trailer_flood": ({}, "sent an invalid HTTP answer: Too many headers"),
    "gzip_bomb": ({}, "answered with Content-Encoding 'gzip'"),
    "huge_event": ({}, "sent an SSE event larger than 1048576 bytes"),
    "huge_line": ({}, "sent an SSE line longer than 1048576 characters"),
    "huge_ndjson_line": ({}, "sent an NDJSON line longer than 1048576 bytes"),
    "huge_json_body": ({}, "answered with a body over 16777216 bytes"),
    "slow_drip": ({"idle_timeout_seconds": 0.5}, "sent no event for 0.5 s"),
    "endless_comments": ({"idle_timeout_seconds": 0.5}, "sent no event for 0.5 s"),
    "closes_mid_event": ({}, "ended its stream without a terminal event"),
    "closes_mid_body": ({}, "connection to sast_scanner was lost"),
    "invalid_utf8": ({}, "bad \ufffd( \ufffd\ufffd\ufffd bytes"),
    "findings_json_flood": ({}, "answered with a JSON body that is more than 200000 JSON values"),
    "malformed_flood": ({}, "sent more than 1000 malformed messages"),
    "error_event_json": ({}, "disk full"),
}


@pytest.mark.parametrize("mode", sorted(FAILS))
async def test_an_attack_fails_the_scan_with_a_clear_reason(gateway, hostile, caplog, mode):
    caplog.set_level(logging.INFO)
    overrides, reason = FAILS[mode]
    url = hostile.url(mode, userinfo="scan:hunter2", query="api_key=sekrit&team=a")
    client = await gateway(
        scanners={"sast_scanner": url}, upstream={"connect_retries": 0, **overrides}
    )
    events, record = await run(client)
    last = one_terminal_event(events, record)
    assert last["status"] == "failed"
    assert last["error"] == record["error"]
    assert record["error"] == f"sast_scanner {reason}" or reason in record["error"]
    assert not any(ord(char) < 32 or 127 <= ord(char) < 160 for char in record["error"])
    assert len(record["error"]) <= 1000
    # The scanner URL's credentials are in neither the error nor the logs.
    assert not [secret for secret in SECRETS if secret in record["error"]]
    assert not [secret for secret in SECRETS if secret in caplog.text]
    # A redirect reached nothing: the only request made was the scan's POST.
    assert [(r.method, r.path.partition("?")[0]) for r in hostile.requests] == [
        ("POST", f"/{mode}")
    ]
    await still_healthy(client)


def test_every_mode_has_a_test():
    completing = {
        "ok",
        "target",
        "non_finite_numbers",
        "lone_surrogates",
        "extra_flood",
        "findings_in_one_event",
    }
    assert set(MODES) == set(FAILS) | completing


async def test_findings_past_the_room_of_a_scan_are_counted_not_read(gateway, hostile):
    """20,000 findings in one event, room for 5: the scan keeps 5 and counts the rest."""
    url = hostile.url("findings_in_one_event")
    client = await gateway(scanners={"sast_scanner": url}, findings={"max_per_scan": 5})
    events, record = await run(client)
    last = one_terminal_event(events, record)
    assert (last["status"], last["findings_dropped"]) == ("completed", 19_995)
    results = await client.get(f"/api/v1/scans/{record['scan_id']}/results", headers=auth())
    data = (await results.json())["data"]
    assert (data["total_findings"], data["findings_dropped"]) == (5, 19_995)
    ids = [v["id"] for v in data["vulnerabilities"]]
    assert ids == [f"sast_scanner-{i}" for i in (1, 2, 3, 4, 5)]


async def test_a_flood_of_malformed_messages_logs_a_bounded_number_of_lines(
    gateway, hostile, caplog
):
    caplog.set_level(logging.INFO)
    url = hostile.url("malformed_flood")
    client = await gateway(scanners={"sast_scanner": url}, upstream={"max_malformed_messages": 40})
    events, record = await run(client)
    assert "sent more than 40 malformed messages" in one_terminal_event(events, record)["error"]
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 11, "ten messages, then one line saying the rest are only counted"


async def test_attack_limits_hold_at_smaller_settings(gateway, hostile):
    client = await gateway(scanners={"sast_scanner": hostile.url("huge_event")}, upstream=SMALL)
    events, record = await run(client)
    assert one_terminal_event(events, record)["error"] == (
        "sast_scanner sent an SSE event larger than 65536 bytes"
    )


def strict_json(text: str) -> Any:
    """JSON as a browser's JSON.parse reads it: NaN and infinities are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} in the gateway's JSON")

    return json.loads(text, parse_constant=refuse)


async def test_non_finite_huge_and_deep_numbers_are_skipped_as_malformed(gateway, hostile, caplog):
    client = await gateway(scanners={"sast_scanner": hostile.url("non_finite_numbers")})
    events, record = await run(client)
    assert one_terminal_event(events, record)["status"] == "completed"
    # NaN, Infinity, -Infinity, 1e999, 5000 and 201 digits, 100000 and 100 levels deep, and
    # the first "completed" (a finding's NaN confidence): each skipped, none fatal.
    assert record["skipped_events"] == 9
    assert [data["status"] for data in events] == ["pending", "connecting", "completed"]
    reasons = "\n".join(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    for phrase in (
        "NaN is not a JSON number",
        "Infinity is not a JSON number",
        "-Infinity is not a JSON number",
        "a number out of range (1e999)",
        "a number longer than 100 characters",
        "nested deeper than 64 levels",
    ):
        assert phrase in reasons
    scan_id = record["scan_id"]
    results = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    data = strict_json(await results.text())["data"]
    assert [v["title"] for v in data["vulnerabilities"]] == ["v"]
    await still_healthy(client)


async def test_lone_surrogates_become_replacement_characters(gateway, hostile):
    client = await gateway(scanners={"sast_scanner": hostile.url("lone_surrogates")})
    events, record = await run(client)
    assert one_terminal_event(events, record)["status"] == "completed"
    assert events[2]["progress_text"] == "a\ufffdb"
    assert events[2]["extra"] == {"\ufffdkey": "v\ufffd"}
    results = await client.get(f"/api/v1/scans/{record['scan_id']}/results", headers=auth())
    (finding,) = (await results.json())["data"]["vulnerabilities"]
    assert finding["title"] == "x\ufffd"
    assert finding["file_path"] == "p\ufffd"
    assert finding["metadata"] == {"\ufffd": "\ufffd"}
    await still_healthy(client)


async def test_extra_stays_bounded_in_count_and_size(gateway, hostile):
    client = await gateway(scanners={"sast_scanner": hostile.url("extra_flood")})
    events, record = await run(client)
    assert one_terminal_event(events, record)["status"] == "completed"
    extra = events[2]["extra"]
    assert len(extra) == MAX_EXTRA_FIELDS
    assert all(len(key) <= MAX_EXTRA_KEY and key.isprintable() for key in extra)
    assert all(len(value) <= MAX_EXTRA_TEXT for value in extra.values() if isinstance(value, str))
    assert 10**99 in extra.values() and "\u20ac" * MAX_EXTRA_TEXT in extra.values()
    # Whatever the scanner sends: at most 4 bytes a character, plus quotes and separators.
    limit = MAX_EXTRA_FIELDS * (4 * (MAX_EXTRA_KEY + MAX_EXTRA_TEXT) + 6)
    assert len(compact_json(extra).encode()) <= limit
    await still_healthy(client)


async def test_readiness_does_not_follow_a_scanner_s_redirect(gateway, hostile):
    client = await gateway(
        readiness={"scanner_health_urls": {"sast_scanner": hostile.url("redirect_307")}}
    )
    response = await client.get("/readyz")
    assert response.status == 503
    checks = (await response.json())["data"]["checks"]
    assert checks["scanner:sast_scanner"] == "HTTP 307 (redirects are not followed)"
    assert [(r.method, r.path) for r in hostile.requests] == [("GET", "/redirect_307")]
