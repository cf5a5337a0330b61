"""The demo page in a real Chromium, driven by Playwright: a dev token, mock and SSE scans
watched with EventSource and stream tickets, a dropped subscriber resumed, one 204 at the end,
cancel, polling when the stream fails, fresh tickets on ``auth_expired``, ``reset``, error
messages, and the screenshot in ``docs/demo.png``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from playwright.async_api import Browser, Page, Route

from gateway import create_app
from gateway.domain.models import ScanRecord, Status
from gateway.http.appkeys import CONFIG, STORE
from gateway.http.auth import TokenVerifier
from tests.helpers import (
    Gateway,
    MakeConfig,
    ask_streams_to_reconnect,
    auth,
    error_shape,
    merge,
    token,
)

WAIT_MS = 20_000  # every single wait; each test stays well under a minute
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "demo.png"
STREAM_PATH = re.compile(r"/api/v1/scans/(?P<scan_id>[^/]+)/stream")
# The page's defaults: a 100 ms reconnect (200 ms at most when told to) and mock scans of 10
# steps 50 ms apart.
PAGE_CONFIG: dict[str, Any] = {
    "dev_mode": True,
    "stream": {"retry_ms": 100, "reconnect_spread_ms": 100},
    "mock": {"step_delay_seconds": 0.05, "steps": 10},
}


@dataclass
class StreamRequest:
    """One request for a scan's stream, as the gateway saw it."""

    scan_id: str
    last_event_id: str | None  # the Last-Event-ID header
    query: dict[str, str]
    status: int | None = None  # once the handler returned (a stream: once it ended)


@dataclass
class Recorder:
    """Counts stream requests at the server (inserted first among the middlewares)."""

    streams: list[StreamRequest] = field(default_factory=list)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        match = STREAM_PATH.fullmatch(request.path)
        if match is None:
            return await handler(request)
        entry = StreamRequest(
            match["scan_id"], request.headers.get("Last-Event-ID"), dict(request.query)
        )
        self.streams.append(entry)
        response = await handler(request)
        entry.status = response.status
        return response

    def of(self, scan_id: str) -> list[StreamRequest]:
        return [entry for entry in self.streams if entry.scan_id == scan_id]

    def statuses(self, scan_id: str) -> list[int | None]:
        return [entry.status for entry in self.of(scan_id)]


@dataclass
class Demo:
    """The gateway serving the demo page, and one browser tab on it."""

    server: TestServer
    page: Page
    recorder: Recorder
    page_errors: list[str]

    @property
    def app(self) -> web.Application:
        return self.server.app

    def card(self, scan_id: str) -> str:
        return f'[data-scan-id="{scan_id}"]'

    async def get_token(self, subject: str = "demo") -> None:
        await self.page.fill("#subject", subject)
        await self.page.get_by_role("button", name="Get a development token").click()
        await self.page.wait_for_selector('#token-status[data-state="ready"]')

    async def start(
        self,
        scanner: str = "secret_scanner",
        repository: str = "acme/web",
        *,
        sse: bool = False,
        configurations: dict[str, Any] | None = None,
    ) -> str:
        """Start a scan from the form; its id once the page shows its card."""
        page = self.page
        await page.get_by_label("Scanner", exact=True).select_option(scanner)
        await page.get_by_label("Repository", exact=True).fill(repository)
        await page.click(f"label[for={'mode-sse' if sse else 'mode-mock'}]")
        if configurations is not None:
            if not await page.eval_on_selector("details.advanced", "d => d.open"):
                await page.click("details.advanced summary")
            await page.fill("#configurations", json.dumps(configurations))
        known = await page.evaluate("() => Object.keys(window.xployt.scans)")
        await page.get_by_role("button", name="Start scan").click()
        handle = await page.wait_for_function(
            "known => Object.keys(window.xployt.scans).find((id) => !known.includes(id))",
            arg=known,
        )
        scan_id: str = await handle.json_value()
        await page.wait_for_selector(self.card(scan_id))
        return scan_id

    async def wait_status(self, scan_id: str, status: str) -> None:
        await self.page.wait_for_selector(f'{self.card(scan_id)}[data-status="{status}"]')

    async def wait_closed(self, scan_id: str) -> None:
        """Until the scan's EventSource reached CLOSED for good."""
        await self.page.wait_for_function("id => window.xployt.scans[id].closed", arg=scan_id)

    async def record(self, scan_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self.page.evaluate("id => window.xployt.scans[id]", scan_id)
        return record

    async def stored(self, scan_id: str) -> ScanRecord:
        scan = await self.app[STORE].get_scan(scan_id)
        assert scan is not None
        return scan

    async def errors(self) -> list[str]:
        texts: list[str] = await self.page.locator("#errors .error-message").all_inner_texts()
        return texts


OpenDemo = Callable[..., Awaitable[Demo]]


@pytest.fixture
async def open_demo(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    make_config: MakeConfig,
    browser: Browser,
) -> AsyncIterator[OpenDemo]:
    """Start a gateway (config overrides on top of PAGE_CONFIG) and open its demo page."""
    demos: list[Demo] = []

    async def open_(**overrides: Any) -> Demo:
        app = create_app(make_config(**merge(PAGE_CONFIG, overrides)))
        recorder = Recorder()
        app.middlewares.insert(0, recorder.middleware)
        server = await aiohttp_server(app)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        demo = Demo(server, page, recorder, [])
        page.on("pageerror", lambda error: demo.page_errors.append(str(error)))
        await page.goto(str(server.make_url("/")))
        await page.wait_for_selector('body[data-ready="true"]')
        demos.append(demo)
        return demo

    yield open_
    for demo in demos:
        await demo.page.context.close()
        assert demo.page_errors == [], demo.page_errors


def ids_to(last: int) -> list[int]:
    return list(range(1, last + 1))


async def test_mock_and_sse_scans_complete_with_results(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    mock_id = await demo.start("secret_scanner", "acme/web")
    sse_id = await demo.start(
        "sast_scanner", "acme/api", sse=True, configurations={"step_delay": 0.05}
    )

    for scan_id in (mock_id, sse_id):
        card = demo.card(scan_id)
        await demo.wait_status(scan_id, "completed")
        await demo.page.wait_for_selector(f"{card} table.vulns tbody tr")
        stored = await demo.stored(scan_id)
        record = await demo.record(scan_id)
        assert record["ids"] == ids_to(stored.last_seq), record["ids"]
        assert record["status"] == "completed" and record["progress_percent"] == 100
        assert await demo.page.eval_on_selector(f"{card} progress", "p => p.value") == 100
        assert await demo.page.inner_text(f"{card} .percent") == "100%"
        assert await demo.page.inner_text(f"{card} .status") == "COMPLETED"  # text-transform
        page = await demo.app[STORE].findings_page(scan_id, start=0, limit=1000)
        vulnerabilities = page.vulnerabilities
        rows = demo.page.locator(f"{card} table.vulns tbody tr")
        assert await rows.count() == len(vulnerabilities) > 0
        total = await demo.page.inner_text(f"{card} .summary .total")
        assert total == f"{len(vulnerabilities)} findings"
        assert await demo.page.is_hidden(f"{card} button.cancel")
    assert (await demo.stored(mock_id)).sse_enabled is False
    assert (await demo.stored(sse_id)).sse_enabled is True
    assert await demo.page.inner_text(f"{demo.card(sse_id)} .scanner") == "SAST scanner"
    assert await demo.errors() == []


async def test_every_page_of_findings_is_shown_and_dropped_ones_are_said(
    open_demo: OpenDemo,
) -> None:
    # One finding per page: the page follows next_cursor to show them all.
    demo = await open_demo(findings={"page_size": 1, "max_per_scan": 2})
    await demo.get_token()
    scan_id = await demo.start("secret_scanner", "acme/web")
    card = demo.card(scan_id)
    await demo.wait_status(scan_id, "completed")
    await demo.page.wait_for_selector(f"{card} .summary .note")
    rows = demo.page.locator(f"{card} table.vulns tbody tr")
    assert await rows.count() == 2
    assert await demo.page.inner_text(f"{card} .summary .total") == "2 findings"
    page = await demo.app[STORE].findings_page(scan_id, start=0, limit=10)
    assert page.dropped > 0
    note = await demo.page.inner_text(f"{card} .summary .note")
    assert note == f"({page.dropped} more dropped by the gateway's limits)"
    assert await demo.errors() == []


async def test_dropped_subscriber_resumes_with_last_event_id(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    scan_id = await demo.start(
        "llm_scanner", "acme/ml", sse=True, configurations={"step_delay": 0.2, "steps": 12}
    )
    await demo.page.wait_for_function("id => window.xployt.scans[id].ids.length >= 3", arg=scan_id)
    ask_streams_to_reconnect(demo.app, scan_id)

    await demo.wait_status(scan_id, "completed")
    await demo.wait_closed(scan_id)
    record = await demo.record(scan_id)
    assert record["ids"] == ids_to((await demo.stored(scan_id)).last_seq)
    assert record["streams_opened"] == 1  # EventSource resumed by itself, same ticket
    assert record["connections"] >= 2
    streams = demo.recorder.of(scan_id)
    assert len(streams) >= 3  # the first, the resumed one(s), the final 204
    assert streams[0].last_event_id is None
    assert streams[1].last_event_id is not None and int(streams[1].last_event_id) >= 3
    assert [entry.status for entry in streams[:-1]] == [200] * (len(streams) - 1)
    assert streams[-1].status == 204


async def test_a_refused_reconnect_gets_a_fresh_ticket(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    seen: list[str] = []

    async def refuse_the_reconnect(route: Route) -> None:  # as if the ticket had run out
        seen.append(route.request.url)
        if len(seen) == 2:
            await route.fulfill(status=401, content_type="application/json", body="{}")
        else:
            await route.continue_()

    await demo.page.route("**/api/v1/scans/*/stream?*", refuse_the_reconnect)
    scan_id = await demo.start(
        "secret_scanner", "acme/web", sse=True, configurations={"step_delay": 0.2, "steps": 12}
    )
    await demo.page.wait_for_function("id => window.xployt.scans[id].ids.length >= 3", arg=scan_id)
    ask_streams_to_reconnect(demo.app, scan_id)
    await demo.wait_status(scan_id, "completed")
    await demo.wait_closed(scan_id)
    record = await demo.record(scan_id)
    assert record["ids"] == ids_to((await demo.stored(scan_id)).last_seq)
    assert record["retickets"] == 1 and record["streams_opened"] == 2
    assert record["polling"] is False
    resumed = demo.recorder.of(scan_id)[1]
    assert int(resumed.query["last_event_id"]) >= 3 and resumed.status == 200
    assert demo.recorder.statuses(scan_id)[-1] == 204


async def test_no_stream_requests_after_the_final_204(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    first = await demo.start("secret_scanner", "acme/web")
    await demo.wait_status(first, "completed")
    await demo.wait_closed(first)
    last = (await demo.stored(first)).last_seq
    assert demo.recorder.statuses(first) == [200, 204]
    assert demo.recorder.of(first)[1].last_event_id == str(last)

    # Keep the page busy well past the 100 ms retry delay, then look again: nothing more.
    second = await demo.start("dast_scanner", "acme/shop")
    await demo.wait_status(second, "completed")
    await demo.wait_closed(second)
    assert demo.recorder.statuses(first) == [200, 204]
    assert demo.recorder.statuses(second) == [200, 204]
    assert (await demo.record(first))["ids"] == ids_to(last)


async def test_cancel_from_the_page(open_demo: OpenDemo) -> None:
    demo = await open_demo(mock={"step_delay_seconds": 0.5, "steps": 20})
    await demo.get_token()
    mock_id = await demo.start("sast_scanner", "acme/slow")
    sse_id = await demo.start(
        "secret_scanner", "acme/slower", sse=True, configurations={"step_delay": 0.5, "steps": 20}
    )
    for scan_id in (mock_id, sse_id):
        card = demo.card(scan_id)
        await demo.page.wait_for_function(
            "id => window.xployt.scans[id].ids.length >= 2", arg=scan_id
        )
        await demo.page.click(f"{card} button.cancel")
        await demo.wait_status(scan_id, "cancelled")
        await demo.page.wait_for_selector(f"{card} .error-text:not([hidden])")
        assert await demo.page.is_hidden(f"{card} button.cancel")
        assert (await demo.stored(scan_id)).status is Status.CANCELLED
        await demo.wait_closed(scan_id)
        record = await demo.record(scan_id)
        assert record["ids"] == ids_to((await demo.stored(scan_id)).last_seq)
        assert record["results"] is None
    assert await demo.errors() == []


async def test_dev_token_endpoint(gateway: Gateway) -> None:
    client = await gateway(dev_mode=True)
    response = await client.post("/api/v1/dev/token")
    assert response.status == 200
    body = await response.json()
    assert body["success"] is True
    assert body["data"]["subject"] == "demo" and body["data"]["expires_in"] == 3600
    assert client.app is not None
    who = await TokenVerifier(client.app[CONFIG].jwt).verify(body["data"]["token"])
    assert who.subject == "demo" and who.expires_at is not None
    headers = {"Authorization": f"Bearer {body['data']['token']}"}
    assert (await client.get("/api/v1/scans/", headers=headers)).status == 200

    response = await client.post("/api/v1/dev/token", json={"subject": " carol "})
    assert (await response.json())["data"]["subject"] == "carol"
    bad_bodies: list[object] = [
        {"subject": ""},
        {"subject": "x" * 101},
        {"subject": 7},
        {"s": 1},
        [],
    ]
    for bad in bad_bodies:
        response = await client.post("/api/v1/dev/token", json=bad)
        assert response.status == 422, bad
        error_shape(await response.json())
    response = await client.post(
        "/api/v1/dev/token", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    response = await client.get("/api/v1/dev/token", headers=auth())
    assert response.status == 405 and response.headers["Allow"] == "POST"
    error_shape(await response.json())


async def test_dev_token_endpoint_is_a_missing_route_without_dev_mode(gateway: Gateway) -> None:
    client = await gateway()  # dev_mode defaults to false

    async def answer(method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = await client.request(method, path, **kwargs)
        body = await response.json()
        error_shape(body)
        del body["timestamp"]
        return response.status, json.loads(json.dumps(body).replace(path, "PATH"))

    for method in ("POST", "GET", "DELETE"):
        for headers in ({}, auth(), {"Authorization": "Bearer nope"}):
            kwargs: dict[str, Any] = {"headers": headers}
            if method == "POST":
                kwargs["json"] = {"subject": "mallory"}
            dev = await answer(method, "/api/v1/dev/token", **kwargs)
            missing = await answer(method, "/api/v1/no/such-route", **kwargs)
            assert dev == missing, (method, headers)
    status, body = await answer("POST", "/api/v1/dev/token", headers=auth())
    assert status == 404 and body["error"] == "not_found"
    assert body["message"] == "no route for POST PATH"
    # The page itself needs no dev mode: a pasted token works.
    response = await client.get("/")
    assert response.status == 200 and "Xployt" in await response.text()


async def test_page_and_assets_are_served(gateway: Gateway) -> None:
    client = await gateway()
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        response = await client.get(asset)
        assert response.status == 200, asset
    assert {"/static/app.js", "/static/style.css"} <= set(
        re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    )
    # Nothing from elsewhere: every linked file is one of ours, and no asset reaches out.
    assert all(link.startswith("/static/") for link in re.findall(r'(?:src|href)="([^"]*)"', html))
    for asset in ("/static/app.js", "/static/style.css"):
        text = await (await client.get(asset)).text()
        assert not re.search(r"https?://|@import|url\(", text), asset
    for missing in ("/static/index.html", "/static/nope.js", "/static/..%2fdemo.py"):
        response = await client.get(missing)
        assert response.status == 404, missing
        error_shape(await response.json())


async def test_polling_when_the_stream_fails_for_good(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()

    async def refuse(route: Route) -> None:  # EventSource closes for good on a 503
        await route.fulfill(status=503, body="")

    await demo.page.route("**/api/v1/scans/*/stream?*", refuse)
    scan_id = await demo.start("llm_scanner", "acme/ml")
    await demo.wait_status(scan_id, "completed")
    await demo.page.wait_for_selector(f"{demo.card(scan_id)} table.vulns tbody tr")
    record = await demo.record(scan_id)
    assert record["polling"] is True and record["closed"] is True
    assert record["ids"] == []
    assert demo.recorder.of(scan_id) == []  # the browser never reached the gateway's stream


async def test_auth_expired_gets_a_fresh_ticket(open_demo: OpenDemo) -> None:
    # Two-second tickets (at least one second left when issued) on a scan of about 4 s.
    demo = await open_demo(auth={"ticket_ttl_seconds": 2})
    await demo.get_token()
    scan_id = await demo.start(
        "sast_scanner", "acme/api", sse=True, configurations={"step_delay": 0.3, "steps": 12}
    )
    await demo.wait_status(scan_id, "completed")
    await demo.wait_closed(scan_id)
    record = await demo.record(scan_id)
    assert record["ids"] == ids_to((await demo.stored(scan_id)).last_seq)
    assert record["auth_expired"] >= 1
    assert record["streams_opened"] == record["auth_expired"] + 1
    resumed = [entry for entry in demo.recorder.of(scan_id) if "last_event_id" in entry.query]
    assert len(resumed) >= 1
    assert all(int(entry.query["last_event_id"]) > 0 for entry in resumed)
    # Every stream worked; the last is the 204, or a 401 when the last ticket ran out in the
    # 100 ms between the terminal event and the reconnect (harmless: EventSource stops).
    *streams, final = demo.recorder.statuses(scan_id)
    assert streams == [200] * len(streams) and final in (204, 401)


async def test_reset_takes_the_snapshot(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()

    async def unknown_id(route: Route) -> None:  # as if the page held an id the log never had
        await route.continue_(url=route.request.url + "&last_event_id=abc")

    await demo.page.route("**/api/v1/scans/*/stream?*", unknown_id, times=1)
    scan_id = await demo.start(
        "dast_scanner", "acme/shop", sse=True, configurations={"step_delay": 0.1}
    )
    await demo.wait_status(scan_id, "completed")
    await demo.wait_closed(scan_id)
    record = await demo.record(scan_id)
    assert len(record["resets"]) == 1
    reset = record["resets"][0]
    assert reset >= 1
    assert record["ids"] == list(range(reset + 1, (await demo.stored(scan_id)).last_seq + 1))
    assert demo.recorder.of(scan_id)[0].query["last_event_id"] == "abc"


async def test_api_errors_show_the_envelope_message(open_demo: OpenDemo) -> None:
    demo = await open_demo()
    await demo.get_token()
    await demo.page.click("details.advanced summary")
    await demo.page.fill("#configurations", "[]")
    await demo.page.get_by_role("button", name="Start scan").click()
    await demo.page.wait_for_selector("#errors .error-message")
    assert await demo.errors() == ["field 'configurations' must be an object, got an array"]

    await demo.page.fill("#configurations", "{")
    await demo.page.get_by_role("button", name="Start scan").click()
    await demo.page.wait_for_function("() => window.xployt.errors.length === 2")
    assert (await demo.errors())[1].startswith("Configurations must be valid JSON")

    # A pasted token the gateway refuses: its message, from the 401 envelope.
    await demo.page.fill("#token-input", token("demo", secret="another-secret-" + "0" * 32))
    await demo.page.get_by_role("button", name="Use this token").click()
    await demo.page.fill("#configurations", "{}")
    await demo.page.get_by_role("button", name="Start scan").click()
    await demo.page.wait_for_function("() => window.xployt.errors.length === 3")
    assert (await demo.errors())[2] == "token signature is invalid"
    assert await demo.page.evaluate("() => Object.keys(window.xployt.scans).length") == 0


async def test_a_pasted_token_without_dev_mode(open_demo: OpenDemo) -> None:
    demo = await open_demo(dev_mode=False)
    await demo.page.get_by_role("button", name="Get a development token").click()
    await demo.page.wait_for_selector("#errors .error-message")
    [message] = await demo.errors()
    assert message.startswith("missing bearer token (development tokens need dev_mode")

    await demo.page.get_by_label("…or paste a token").fill(f"Bearer {token('erin')}")
    await demo.page.get_by_role("button", name="Use this token").click()
    status = await demo.page.inner_text('#token-status[data-state="ready"]')
    assert "“erin”" in status
    scan_id = await demo.start("llm_scanner", "acme/ml")
    await demo.wait_status(scan_id, "completed")
    await demo.page.wait_for_selector(f"{demo.card(scan_id)} table.vulns tbody tr")
    stored = await demo.stored(scan_id)
    assert stored.owner == "erin"
    assert (await demo.record(scan_id))["ids"] == ids_to(stored.last_seq)


async def test_screenshot_of_completed_scans(open_demo: OpenDemo, tmp_path: Path) -> None:
    demo = await open_demo()
    await demo.get_token()
    failing = await demo.start(
        "dast_scanner", "acme/shop", sse=True, configurations={"step_delay": 0.05, "fail_at": 60}
    )
    sast = await demo.start(
        "sast_scanner", "acme/payments-api", sse=True, configurations={"step_delay": 0.05}
    )
    secret = await demo.start("secret_scanner", "acme/web")
    await demo.wait_status(failing, "failed")
    await demo.page.wait_for_selector(f"{demo.card(failing)} .error-text:not([hidden])")
    for scan_id in (secret, sast):
        await demo.wait_status(scan_id, "completed")
        await demo.page.wait_for_selector(f"{demo.card(scan_id)} table.vulns tbody tr")
    for scan_id in (failing, sast, secret):
        await demo.wait_closed(scan_id)
    await demo.page.evaluate("() => document.activeElement.blur()")
    await demo.page.mouse.move(0, 0)

    shot = await demo.page.screenshot(full_page=True, animations="disabled")
    (tmp_path / "demo.png").write_bytes(shot)  # the test artifact
    if os.environ.get("XPLOYT_UPDATE_SCREENSHOT") == "1":  # refresh the README's picture
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        DOCS_SCREENSHOT.write_bytes(shot)
    assert shot.startswith(b"\x89PNG")
