"""Asking the identity provider: bounded in size and time, redirects on the same origin only,
nothing decoded that was encoded; and Cache-Control read as RFC 9111 says."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable

import pytest
from aiohttp import web

from gateway.config import config_from_dict
from gateway.identity.provider import MAX_REDIRECTS, ProviderError, fetch, max_age, provider_session

BODY = json.dumps({"keys": []}).encode()


def jwt_config(**extra):
    return config_from_dict(
        {
            "jwt": {
                "algorithms": ["RS256"],
                "jwks_url": "http://127.0.0.1:1/jwks",
                "jwks_timeout_seconds": 0.5,
                "jwks_max_bytes": 1000,
                **extra,
            }
        }
    ).jwt


@pytest.fixture
async def served(aiohttp_server):
    """An app on 127.0.0.1 with the given routes (each a function making its answer, or a
    behaviour's name); what it was asked, in order."""
    stalled = asyncio.Event()

    async def start(routes: dict[str, Callable[[], web.Response] | str]):
        asked: list[str] = []

        async def answer(request: web.Request) -> web.StreamResponse:
            asked.append(request.path)
            what = routes[request.path]
            if what == "stall":
                await stalled.wait()  # set when the test ends
            if what == "chunked":
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                await response.prepare(request)
                for _ in range(20):
                    await response.write(b" " * 100)
                return response
            assert callable(what)
            return what()

        app = web.Application()
        for path in routes:
            app.router.add_get(path, answer)
        return await aiohttp_server(app), asked

    yield start
    stalled.set()


def json_answer(
    body: bytes = BODY, headers: dict[str, str] | None = None
) -> Callable[[], web.Response]:
    head = {"Content-Type": "application/json", **(headers or {})}
    return lambda: web.Response(body=body, headers=head)


def redirect(location: str, status: int = 302) -> Callable[[], web.Response]:
    return lambda: web.Response(status=status, headers={"Location": location})


async def fetched(server, path: str, **config):
    async with provider_session(jwt_config(**config)) as session:
        return await fetch(session, str(server.make_url(path)), jwt_config(**config))


async def failure(server, path: str, **config) -> str:
    with pytest.raises(ProviderError) as info:
        await fetched(server, path, **config)
    message = str(info.value)
    assert "?" not in message, "no query in a message"
    return message


async def test_an_answer_and_its_cache_lifetime(served):
    server, _ = await served(
        {"/jwks": json_answer(headers={"Cache-Control": "public, max-age=60"})}
    )
    answer = await fetched(server, "/jwks")
    assert (answer.body, answer.max_age) == (BODY, 60)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_on_the_same_origin_is_followed(served, status):
    server, asked = await served({"/jwks": redirect("/moved?x=1", status), "/moved": json_answer()})
    assert (await fetched(server, "/jwks")).body == BODY
    assert asked == ["/jwks", "/moved"]


async def test_a_redirect_to_another_origin_is_not_followed(served):
    other, elsewhere = await served({"/target": json_answer()})
    # Another port on the same host is another origin.
    server, asked = await served({"/jwks": redirect(str(other.make_url("/target?t=secret")))})
    message = await failure(server, "/jwks")
    assert "redirected to another origin" in message and "secret" not in message
    assert elsewhere == [] and asked == ["/jwks"]


async def test_redirects_are_bounded_and_need_a_location(served):
    server, asked = await served(
        {"/loop": redirect("/loop"), "/nowhere": lambda: web.Response(status=302)}
    )
    assert f"more than {MAX_REDIRECTS} redirects" in await failure(server, "/loop")
    assert len(asked) == MAX_REDIRECTS + 1
    assert "redirected to another origin" in await failure(server, "/nowhere")


async def test_answers_are_bounded_in_size(served):
    server, _ = await served(
        {
            "/exact": json_answer(b" " * 996 + b"[1]\n"),
            "/declared": json_answer(b" " * 1001),
            "/chunked": "chunked",
        }
    )
    assert len((await fetched(server, "/exact")).body) == 1000
    assert "answer over 1000 bytes (jwt.jwks_max_bytes)" in await failure(server, "/declared")
    assert "answer over 1000 bytes" in await failure(server, "/chunked")


async def test_answers_are_bounded_in_time(served):
    server, _ = await served({"/stall": "stall"})
    loop = asyncio.get_running_loop()
    began = loop.time()
    message = await failure(server, "/stall", jwks_timeout_seconds=0.2)
    assert "no answer within 0.2 s (jwt.jwks_timeout_seconds)" in message
    assert loop.time() - began < 2


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (lambda: web.json_response({"error": "x"}, status=500), "answered HTTP 500"),
        (lambda: web.Response(body=b"<html>", content_type="text/html"), "answered text/html"),
        (
            json_answer(gzip.compress(BODY), {"Content-Encoding": "gzip"}),
            "answered with Content-Encoding gzip",
        ),
    ],
)
async def test_unusable_answers_are_errors(served, answer, needle):
    server, _ = await served({"/jwks": answer})
    assert needle in await failure(server, "/jwks")


async def test_a_provider_that_does_not_listen_is_an_error(served):
    server, _ = await served({"/jwks": json_answer()})
    url = str(server.make_url("/jwks"))
    await server.close()
    async with provider_session(jwt_config()) as session:
        with pytest.raises(ProviderError, match="ClientConnectorError"):
            await fetch(session, url, jwt_config())


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Cache-Control": "max-age=600"}, 600),
        ({"Cache-Control": "public, max-age=600, must-revalidate"}, 600),
        ({"Cache-Control": 'max-age="30"'}, 30),
        ({"Cache-Control": "MAX-AGE=30"}, 30),
        ({"Cache-Control": "max-age=600", "Age": "100"}, 500),
        ({"Cache-Control": "max-age=60", "Age": "100"}, 0),
        ({"Cache-Control": "max-age=60", "Age": "x"}, 60),
        ({"Cache-Control": "no-store, max-age=600"}, 0),
        ({"Cache-Control": "no-cache"}, 0),
        ({"Cache-Control": "max-age=-1"}, None),
        ({"Cache-Control": "max-age=1e3"}, None),
        ({"Cache-Control": "max-age=" + "9" * 11}, None),
        ({"Cache-Control": "max-age=" + "9" * 10}, 9_999_999_999),
        ({"Cache-Control": "max-age=\u0661\u0662"}, None),  # Arabic-Indic digits
    ],
)
def test_max_age(headers, seconds):
    assert max_age(headers) == seconds
