"""The demo page's collection card in a real Chromium, driven by Playwright: a bar per scanner
and one for the whole, findings as they arrive, the merged table at the end, the SARIF
download, a dropped stream resumed, a failed scanner, cancel."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from gateway.domain.collections import log_id
from tests.browser.demo import Demo, OpenDemo
from tests.helpers import ask_streams_to_reconnect, assert_valid_sarif, auth, read_events

COLLECTIONS = "/api/v1/scan-collections"


async def from_the_api(demo: Demo, path: str) -> Any:
    url = demo.server.make_url(path)
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=auth("demo")) as response,
    ):
        assert response.status == 200, await response.text()
        if response.content_type == "text/event-stream":
            return await read_events(response)
        return (await response.json())["data"]


async def merged(demo: Demo, collection_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        data = await from_the_api(demo, f"{COLLECTIONS}/{collection_id}/results?cursor={cursor}")
        found += data["vulnerabilities"]
        if data["next_cursor"] is None:
            return found
        cursor = data["next_cursor"]


async def test_bars_live_findings_merged_table_and_sarif(
    open_demo: OpenDemo, tmp_path: Path
) -> None:
    demo = await open_demo()
    await demo.get_token()
    # The secret scanner ends long before the SAST scanner: its findings show while the
    # collection still runs.
    slow = {"step_delay": 0.02, "steps": 4, "per_scanner": {"sast_scanner": {"step_delay": 0.4}}}
    collection_id = await demo.start_collection(
        ("secret_scanner", "sast_scanner"), sse=True, configurations=slow
    )
    card = demo.collection_card(collection_id)
    page = demo.page
    await page.wait_for_function(
        "id => { const c = window.xployt.collections[id];"
        " return c.live_findings.length > 0 && !c.terminal; }",
        arg=collection_id,
    )
    assert await page.is_visible(f"{card} .live-findings table tbody tr")
    sast = f'{card} .scanner-row[data-scanner="sast_scanner"]'
    assert await page.get_attribute(sast, "data-status") != "completed"
    assert (
        await page.get_attribute(
            f'{card} .scanner-row[data-scanner="secret_scanner"]', "data-status"
        )
        == "completed"
    )

    await demo.wait_collection(collection_id, "completed")
    await page.wait_for_selector(f"{card} .results table.vulns tbody tr")
    record = await demo.collection_record(collection_id)
    stored = await demo.stored_collection(collection_id)
    assert record["ids"] == list(range(1, stored.last_seq + 1))
    # every bar at 100%: the whole and each scanner
    assert await page.eval_on_selector(f"{card} .overall progress", "p => p.value") == 100
    assert await page.inner_text(f"{card} .overall .percent") == "100%"
    for name in ("secret_scanner", "sast_scanner"):
        row = f'{card} .scanner-row[data-scanner="{name}"]'
        assert await page.get_attribute(row, "data-status") == "completed"
        assert await page.eval_on_selector(f"{row} progress", "p => p.value") == 100
    # the live findings: every finding of the stream's events, once per fingerprint
    events = await from_the_api(demo, f"{COLLECTIONS}/{collection_id}/stream")
    streamed = [f["fingerprint"] for _, data in events for f in data["findings"]]
    assert [f["fingerprint"] for f in record["live_findings"]] == list(dict.fromkeys(streamed))
    # the merged table at the end: one row per merged finding, who reported it
    findings = await merged(demo, collection_id)
    rows = page.locator(f"{card} .results table.vulns tbody tr")
    assert await rows.count() == len(findings) == len(record["results"]) > 0
    reporters = await page.locator(f"{card} .results .reported-by").all_inner_texts()
    assert sorted(reporters) == sorted(", ".join(f["reported_by"]) for f in findings)
    # a finding's other lines beside its first (the secret scanner's line is a list)
    places = await page.locator(f"{card} .results .location").all_inner_texts()
    assert "deploy/keys/id_rsa:1 (also 27)" in places
    total = await page.inner_text(f"{card} .results .summary .total")
    assert total == f"{len(findings)} findings"
    assert await page.is_hidden(f"{card} .live-findings")
    assert await page.is_hidden(f"{card} button.cancel")

    # the SARIF download: fetched with the page's token, saved as a file
    async with page.expect_download() as started:
        await page.click(f"{card} button.sarif")
    saved = tmp_path / "report.sarif"
    download = await started.value
    await download.save_as(saved)
    assert download.suggested_filename == f"xployt-collection-{collection_id}.sarif"
    sarif = json.loads(saved.read_text())
    assert_valid_sarif(sarif)
    drivers = sorted(run["tool"]["driver"]["name"] for run in sarif["runs"])
    assert drivers == ["sast_scanner", "secret_scanner"]
    assert (await demo.collection_record(collection_id))["sarif_downloads"] == 1
    assert await demo.errors() == []


async def test_a_dropped_stream_resumes_without_a_gap(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    collection_id = await demo.start_collection(
        ("llm_scanner", "dast_scanner"), sse=True, configurations={"step_delay": 0.2, "steps": 8}
    )
    await demo.page.wait_for_function(
        "id => window.xployt.collections[id].ids.length >= 3", arg=collection_id
    )
    ask_streams_to_reconnect(demo.app, log_id(collection_id))
    await demo.wait_collection(collection_id, "completed")
    record = await demo.collection_record(collection_id)
    stored = await demo.stored_collection(collection_id)
    assert record["ids"] == list(range(1, stored.last_seq + 1))
    assert record["streams_opened"] == 1  # EventSource resumed by itself, same ticket
    assert record["connections"] >= 2
    streams = demo.recorder.of(collection_id)
    assert streams[1].last_event_id is not None and int(streams[1].last_event_id) >= 3
    assert streams[-1].status == 204


async def test_a_failed_scanner_hides_none_of_the_others_findings(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    failing = {"step_delay": 0.02, "per_scanner": {"dast_scanner": {"fail_at": 40}}}
    collection_id = await demo.start_collection(
        ("secret_scanner", "dast_scanner"), sse=True, configurations=failing
    )
    card = demo.collection_card(collection_id)
    await demo.wait_collection(collection_id, "failed")
    await demo.page.wait_for_selector(f"{card} .results table.vulns tbody tr")
    row = f'{card} .scanner-row[data-scanner="dast_scanner"]'
    assert await demo.page.get_attribute(row, "data-status") == "failed"
    assert "simulated scanner failure" in await demo.page.inner_text(f"{row} .text")
    findings = await merged(demo, collection_id)
    assert findings and all(f["reported_by"] == ["secret_scanner"] for f in findings)
    rows = demo.page.locator(f"{card} .results table.vulns tbody tr")
    assert await rows.count() == len(findings)
    note = await demo.page.inner_text(f"{card} .results .summary .note")
    assert note == "(without dast_scanner)"
    assert await demo.page.is_visible(f"{card} button.sarif")
    assert await demo.errors() == []


async def test_cancel_a_collection_from_the_page(open_demo: OpenDemo) -> None:
    demo = await open_demo(mock={"step_delay_seconds": 0.5, "steps": 20})
    await demo.get_token()
    collection_id = await demo.start_collection(("sast_scanner", "llm_scanner"))
    card = demo.collection_card(collection_id)
    await demo.page.wait_for_function(
        "id => window.xployt.collections[id].ids.length >= 3", arg=collection_id
    )
    await demo.page.click(f"{card} button.cancel")
    await demo.wait_collection(collection_id, "cancelled")
    for name in ("sast_scanner", "llm_scanner"):
        row = f'{card} .scanner-row[data-scanner="{name}"]'
        assert await demo.page.get_attribute(row, "data-status") == "cancelled"
    record = await demo.collection_record(collection_id)
    assert record["ids"] == list(
        range(1, (await demo.stored_collection(collection_id)).last_seq + 1)
    )
    assert await demo.page.is_hidden(f"{card} button.cancel")
    assert await demo.errors() == []


async def test_no_scanner_picked_is_said(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    for box in await demo.page.locator("#collection-scanners input").all():
        await box.uncheck()
    await demo.page.get_by_role("button", name="Start collection").click()
    await demo.page.wait_for_selector("#errors .error-message")
    assert await demo.errors() == ["Pick at least one scanner for the collection."]
    assert await demo.page.evaluate("() => Object.keys(window.xployt.collections)") == []


async def test_the_page_has_no_inline_code(open_demo: OpenDemo) -> None:
    """The CSP (script-src 'self', style-src 'self') would block it: none is needed."""
    demo = await open_demo()
    html = await demo.page.content()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"\son[a-z]+=", html) == []
    assert re.findall(r"\sstyle=", html) == []
