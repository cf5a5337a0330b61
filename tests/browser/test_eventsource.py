"""The README's EventSource recipes in a real browser: ticket, cookie, query token; each
stream ends with one 204 and EventSource stops; the seed's header option is ignored."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from aiohttp import web

from gateway import create_app
from tests.helpers import token

PAGE = Path(__file__).with_name("page.html")


async def test_eventsource_with_each_credential(aiohttp_server, make_config, chromium):
    result: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    async def report(request: web.Request) -> web.Response:
        result.set_result(json.loads(await request.text()))
        return web.Response(text="ok")

    site = web.Application()
    site.router.add_get("/", page)
    site.router.add_post("/result", report)
    page_server = await aiohttp_server(site)
    origin = str(page_server.make_url("")).rstrip("/")

    stream_answers: Counter[int] = Counter()

    @web.middleware
    async def count_streams(request, handler):
        response = await handler(request)
        if request.path.endswith("/stream"):
            stream_answers[response.status] += 1
        return response

    # A short retry hint: the reconnect that meets the 204 comes at once.
    app = create_app(make_config(cors={"allowed_origins": [origin]}, stream={"retry_ms": 50}))
    app.middlewares.insert(0, count_streams)
    gateway = await aiohttp_server(app)
    gateway_url = str(gateway.make_url("")).rstrip("/")

    url = f"{origin}/?gateway={gateway_url}&token={token('browser')}"
    async with chromium(url):
        results = await asyncio.wait_for(result, 60)

    assert "error" not in results, results
    expected = list(range(1, len(results["ticket"]["ids"]) + 1))
    assert len(expected) > 3
    for way in ("ticket", "cookie", "query"):
        assert results[way] == {"ids": expected, "closed": True}, way
    assert results["session"] == 200
    assert results["seedHeaders"] == {"ids": [], "closed": True}
    # Three streams ran to the end; each reconnect got one 204 and EventSource stopped.
    assert stream_answers == Counter({200: 3, 204: 3, 401: 1})
