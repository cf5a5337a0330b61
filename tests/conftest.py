"""Shared fixtures: real servers on 127.0.0.1, real SQLite files, real tokens (the helpers
that are not fixtures are in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings

from gateway import create_app
from gateway.config import Config, config_from_dict
from gateway.http.logs import RedactingAccessLogger
from mock_scanner import MockScannerConfig
from mock_scanner import create_app as create_mock_scanner
from tests.helpers import SCANNERS, SECRET, Gateway, MakeConfig, merge
from tests.identity_provider import IdentityProvider
from tests.redis_server import running_redis

# Property tests (Hypothesis): `make test` runs the "ci" profile, the same examples on every run
# (derandomize, no example database) and no per-example deadline, which a loaded CI machine
# would trip at random. `pytest --hypothesis-profile explore` searches with fresh random
# examples, more of them, and remembers failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=1000, deadline=None)
settings.load_profile("ci")


@pytest.fixture
async def scanner(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    """The bundled mock scanner, for real, on a free port."""
    return await aiohttp_server(create_mock_scanner(MockScannerConfig(step_delay=0.0)))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store and bus the gateway runs on; a module runs on both with
    ``pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
async def backend_config(backend: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Config for the chosen backend: for Redis, a redis-server of the test's own."""
    if backend != "redis":
        yield {}
        return
    async with running_redis(tmp_path / "redis") as server:
        yield {"backend": "redis", "redis": {"url": server.url}}


@pytest.fixture
def make_config(tmp_path: Path, scanner: TestServer, backend_config: dict[str, Any]) -> MakeConfig:
    def make(**overrides: Any) -> Config:
        base = {
            **backend_config,
            "database": {"path": str(tmp_path / "gateway.db")},
            "jwt": {"secret": SECRET},
            "scanners": {
                name: str(scanner.make_url(f"/scanners/{name}/scan")) for name in SCANNERS
            },
            "upstream": {"idle_timeout_seconds": 10, "scan_timeout_seconds": 30},
            "stream": {"heartbeat_seconds": 15},
            "mock": {"step_delay_seconds": 0.0, "steps": 5},
        }
        return config_from_dict(merge(base, overrides))

    return make


@pytest.fixture
def gateway(
    make_config: MakeConfig, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> Gateway:
    # make_config first: its backend (a redis-server) is set up before the app, so it is
    # still there while the app shuts down.
    """Start a gateway app (config overrides as keyword arguments) and return its client."""

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        server = TestServer(create_app(make_config(**overrides)))
        # The access logger `python -m gateway` runs with.
        await server.start_server(access_log_class=RedactingAccessLogger)
        return await aiohttp_client(server)

    return start


@pytest.fixture
async def client(gateway: Gateway) -> TestClient[Any, Any]:
    return await gateway()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[Any]:
    """A real redis-server of this test's own, on a free port (skips without one)."""
    async with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def scripted_scanner(aiohttp_server):
    """A scanner that answers every scan with the given SSE frames, then ends its body."""

    async def start(frames: list[bytes]) -> str:
        async def answer(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for frame in frames:
                await response.write(frame)
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_post("/scan", answer)
        return str((await aiohttp_server(app)).make_url("/scan"))

    return start


@pytest.fixture
async def identity_provider() -> AsyncIterator[IdentityProvider]:
    """A local OpenID provider on 127.0.0.1 (discovery and a JWKS), one RS256 key published."""
    provider = IdentityProvider()
    provider.publish("RS256")
    await provider.start()
    try:
        yield provider
    finally:
        provider.release()
        await provider.stop()
