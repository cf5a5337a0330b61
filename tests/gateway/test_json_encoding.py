"""Nothing the gateway (or its CLI) writes holds NaN or an infinity: every JSON encoder
refuses them rather than write the non-JSON ``NaN``/``Infinity``."""

from __future__ import annotations

import io
import json
import math

import pytest
from aiohttp import web
from rich.console import Console

from gateway import cli
from gateway.domain.models import compact_json, strict_json
from gateway.http.appkeys import HTTP_CLIENT
from gateway.http.responses import error_middleware, ok
from tests.helpers import error_shape

NON_FINITE = [math.nan, math.inf, -math.inf]


def strict_loads(text: str | bytes) -> object:
    """Python's parser, minus the non-JSON constants it accepts by default."""

    def refuse(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("number", NON_FINITE)
def test_stored_rows_and_sse_data_refuse_non_finite_numbers(number):
    with pytest.raises(ValueError, match="JSON compliant"):
        compact_json({"progress_percent": number})
    with pytest.raises(ValueError, match="JSON compliant"):
        strict_json({"x": [number]})
    assert strict_loads(compact_json({"x": 1.5e308})) == {"x": 1.5e308}


@pytest.mark.parametrize("number", NON_FINITE)
async def test_json_responses_never_carry_non_finite_numbers(aiohttp_client, number):
    async def handler(_request: web.Request) -> web.Response:
        return ok({"score": number})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert response.status == 500
    body = strict_loads(await response.read())
    assert isinstance(body, dict)
    error_shape(body)


async def test_requests_to_scanners_refuse_non_finite_numbers(client, scanner):
    session = client.app[HTTP_CLIENT]
    url = scanner.make_url("/scan")
    for number in NON_FINITE:
        with pytest.raises(ValueError, match="JSON compliant"):
            await session.post(url, json={"configurations": {"x": number}})


async def test_cli_json_lines_stay_json_whatever_the_stream_holds(aiohttp_server):
    async def scan(_request: web.Request) -> web.Response:
        return web.Response(
            text='{"success": true, "data": {"scan_id": "s"}}',
            content_type="application/json",
        )

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        frames = [
            'id: 1\ndata: {"status": "scanning", "progress_percent": NaN}\n\n',
            'id: 2\ndata: {"status": "scanning", "score": 1e999}\n\n',
            'id: 3\ndata: {"status": "scanning", "n": [-Infinity]}\n\n',
            'id: 4\ndata: {"status": "failed", "error": "x"}\n\n',
        ]
        for frame in frames:
            await response.write(frame.encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/api/v1/scans/s", scan)
    app.router.add_get("/api/v1/scans/s/stream", events)
    server = await aiohttp_server(app)
    written = io.StringIO()
    out = Console(file=written, force_terminal=False, width=100)
    options = cli.Options(url=str(server.make_url("")), token="t", json=True)
    async with cli.open_session() as session:
        code = await cli.watch(session, out, options, "s", errors=Console(file=io.StringIO()))
    assert code == cli.EXIT_FAILED
    output = written.getvalue()
    lines = [strict_loads(line) for line in output.splitlines()]
    assert len(lines) >= 4, output


@pytest.mark.parametrize("raw", ['{"x": NaN}', '{"x": 1e999}', '{"x": [-Infinity]}'])
def test_cli_config_json_refuses_non_finite_numbers(raw):
    with pytest.raises(cli.CliError, match="--config-json") as caught:
        cli.parse_configurations(raw)
    assert caught.value.code == cli.EXIT_ERROR


async def test_cli_requests_refuse_non_finite_numbers(scanner):
    async with cli.open_session() as session:
        with pytest.raises(ValueError, match="JSON compliant"):
            await session.post(scanner.make_url("/scan"), json={"x": math.nan})
