"""The API docs page (``GET /api/v1/docs``) in a real Chromium, driven by Playwright: every
documented operation and schema is rendered, under the page's Content-Security-Policy, with
nothing loaded from elsewhere, and a link to an operation opens it."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, ConsoleMessage

from gateway.http.openapi import DOCS_PATH, OPENAPI_PATH
from tests.helpers import Gateway

WAIT_MS = 20_000  # every single wait
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operations(document: dict[str, Any]) -> list[str]:
    """``METHOD /path`` of every documented operation, sorted."""
    return sorted(
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    )


async def test_the_docs_page_renders_every_operation_and_schema(
    gateway: Gateway, browser: Browser
) -> None:
    client = await gateway()
    document = await (await client.get(OPENAPI_PATH)).json()
    origin = str(client.make_url("/"))
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: ConsoleMessage) -> None:  # a CSP violation is reported here
        if message.type in ("error", "warning"):
            errors.append(message.text)

    page.on("console", console)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        response = await page.goto(str(client.make_url(DOCS_PATH)))
        assert response is not None and response.status == 200
        await page.wait_for_selector("details.op")

        assert await page.title() == "Xployt scan gateway · API"
        assert await page.inner_text("h1") == document["info"]["title"]
        # The script's own text, decoded as the page is (UTF-8).
        version = f"OpenAPI {document['openapi']} · version {document['info']['version']}"
        assert (await page.inner_text("h1 + p.muted")).startswith(version)
        assert sorted(await page.locator(".toc li code").all_inner_texts()) == operations(document)
        paths = await page.locator("details.op > summary .path").all_inner_texts()
        assert sorted(set(paths)) == sorted(document["paths"])
        sections = await page.eval_on_selector_all(
            "section[id^='schema-']", "sections => sections.map((s) => s.id)"
        )
        assert sections == [f"schema-{name}" for name in document["components"]["schemas"]]
        # The stylesheet applies: the page's width and the method badges' colours.
        assert await page.eval_on_selector("main", "m => getComputedStyle(m).maxWidth") == "1040px"
        badge = "span.method.delete"
        colour = await page.eval_on_selector(badge, "b => getComputedStyle(b).backgroundColor")
        assert colour == "rgb(179, 38, 30)"

        # A link in the table of contents opens the operation it points at.
        assert not await page.eval_on_selector("#op-getDocs", "d => d.open")
        await page.click(".toc a[href='#op-getDocs']")
        await page.wait_for_function("() => document.getElementById('op-getDocs').open")
    finally:
        await context.close()
    assert errors == []
    assert requested and all(url.startswith(origin) for url in requested), requested
