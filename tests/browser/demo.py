"""The demo page's test harness: a gateway serving the page (stream requests recorded at the
server), and a Playwright tab on it (``open_demo``, a fixture that conftest.py exposes)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler
from playwright.async_api import Browser, Page

from gateway import create_app
from gateway.domain.collections import CollectionRecord
from gateway.domain.models import ScanRecord
from gateway.http.appkeys import COLLECTIONS, STORE
from tests.helpers import MakeConfig, merge

WAIT_MS = 20_000  # every single wait; each test stays well under a minute
# A scan's stream, or a collection's (its id then stands for the scan's in the recorder).
STREAM_PATH = re.compile(r"/api/v1/(?:scans|scan-collections)/(?P<scan_id>[^/]+)/stream")
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

    # --- scan collections ---

    def collection_card(self, collection_id: str) -> str:
        return f'[data-collection-id="{collection_id}"]'

    async def start_collection(
        self,
        scanners: tuple[str, ...],
        repository: str = "acme/web",
        *,
        sse: bool = False,
        configurations: dict[str, Any] | None = None,
    ) -> str:
        """Start a collection from its form; its id once the page shows its card."""
        page = self.page
        for box in await page.locator("#collection-scanners input").all():
            await box.set_checked(await box.get_attribute("value") in scanners)
        await page.get_by_label("Repository of the collection").fill(repository)
        mode = "collection-mode-sse" if sse else "collection-mode-mock"
        await page.click(f"label[for={mode}]")
        if configurations is not None:
            details = ".collection-form details.advanced"
            if not await page.eval_on_selector(details, "d => d.open"):
                await page.click(f"{details} summary")
            await page.fill("#collection-configurations", json.dumps(configurations))
        known = await page.evaluate("() => Object.keys(window.xployt.collections)")
        await page.get_by_role("button", name="Start collection").click()
        handle = await page.wait_for_function(
            "known => Object.keys(window.xployt.collections).find((id) => !known.includes(id))",
            arg=known,
        )
        collection_id: str = await handle.json_value()
        await page.wait_for_selector(self.collection_card(collection_id))
        return collection_id

    async def wait_collection(self, collection_id: str, status: str) -> None:
        card = self.collection_card(collection_id)
        await self.page.wait_for_selector(f'{card}[data-status="{status}"]')
        await self.page.wait_for_function(
            "id => window.xployt.collections[id].closed", arg=collection_id
        )

    async def collection_record(self, collection_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self.page.evaluate(
            "id => window.xployt.collections[id]", collection_id
        )
        return record

    async def stored_collection(self, collection_id: str) -> CollectionRecord:
        record = await self.app[COLLECTIONS].get(collection_id)
        assert record is not None
        return record


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
