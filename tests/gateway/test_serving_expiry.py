"""Credential expiry in a real ``python -m gateway`` process, on the loop it serves on (uvloop,
``server.uvloop``): the streams of one token expire together, each says so, and each gives its
place in the limits back. (The rest of the suite runs the app on asyncio's own loop.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer

from tests.gateway.test_replicas import Replica
from tests.gateway.test_serving import BENCH, DEADLINE, gateway_config, start_scan
from tests.helpers import auth, token
from tests.processes import ProcessLog, free_port, gateway_process

STREAMS = 8


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


async def open_streams(http: ClientSession, url: str, headers: dict[str, str]) -> list[int]:
    responses: list[ClientResponse] = []
    for _ in range(STREAMS):
        responses.append(await http.get(url, headers=headers))
    statuses = [response.status for response in responses]
    for response in responses:
        response.close()
    return statuses


async def test_streams_of_one_token_expire_together_and_give_their_places_back(
    tmp_path: Path, scanner: TestServer, http: ClientSession
) -> None:
    port, log = free_port(), ProcessLog()
    config = gateway_config(
        tmp_path, scanner, limits={"max_streams_per_subject": STREAMS}, logging={"level": "INFO"}
    )
    async with gateway_process(config, port, log) as process:
        gateway = Replica(port, process, log)
        assert any("event loop: uvloop" in line for line in log), "served on uvloop"
        scan_id = await start_scan(http, gateway, BENCH)
        url = f"{gateway.scans}/{scan_id}/stream"
        expiring = {"Authorization": f"Bearer {token('alice', ttl=3)}"}
        responses = [await http.get(url, headers=expiring) for _ in range(STREAMS)]
        assert [response.status for response in responses] == [200] * STREAMS
        # Each stream ends, saying why, once the token expires.
        bodies = await asyncio.wait_for(
            asyncio.gather(*(response.read() for response in responses)), DEADLINE
        )
        assert all(b"event: auth_expired" in body for body in bodies)
        # Every place was given back: a fresh token opens as many again.
        assert await open_streams(http, url, auth()) == [200] * STREAMS
