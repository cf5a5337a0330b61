"""The mock scanner's bench mode: a stream fed by ``POST /bench/{scan_id}/publish``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mock_scanner import MockScannerConfig, create_app
from mock_scanner.app import scan_finished
from tests.helpers import COLLECTIONS_API, Gateway, auth, start_collection, start_scan

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

FIRST = {"status": "scanning", "progress_percent": 1, "message": "bench"}
DONE = {
    "status": "completed",
    "progress_percent": 100,
    "message": "Scan complete.",
    "vulnerabilities": [],
}


def bench_body(scan_id: str = "b-1", **knobs: Any) -> dict[str, Any]:
    return {
        "scan_id": scan_id,
        "repository_name": "octo/webshop",
        "configurations": {"bench": True, **knobs},
    }


@pytest.fixture
async def client(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_app(MockScannerConfig(step_delay=0)))


async def next_block(resp: aiohttp.ClientResponse) -> list[str]:
    """The lines of the next SSE block (up to a blank line); [] at the end of the body."""
    lines: list[str] = []
    async with asyncio.timeout(5):
        while True:
            raw = await resp.content.readline()
            if not raw:
                return lines
            line = raw.decode().rstrip("\r\n")
            if not line:
                if lines:
                    return lines
                continue
            lines.append(line)


async def next_event(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The data of the next event, skipping comment-only blocks."""
    while True:
        block = await next_block(resp)
        assert block, "the stream ended"
        data = [line[5:].removeprefix(" ") for line in block if line.startswith("data:")]
        if data:
            value: dict[str, Any] = json.loads("\n".join(data))
            return value


@asynccontextmanager
async def bench_stream(
    client: Client, scan_id: str = "b-1", **knobs: Any
) -> AsyncIterator[aiohttp.ClientResponse]:
    async with client.post("/scan", json=bench_body(scan_id, **knobs)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert await next_event(resp) == FIRST
        yield resp


async def publish(client: Client, scan_id: str, payload: Any) -> aiohttp.ClientResponse:
    async with client.post(f"/bench/{scan_id}/publish", json=payload) as resp:
        await resp.read()
        return resp


async def finish(client: Client, scan_id: str) -> aiohttp.ClientResponse:
    async with client.post(f"/bench/{scan_id}/finish") as resp:
        await resp.read()
        return resp


async def test_publishes_go_out_in_order_then_finish_ends_the_stream(client: Client) -> None:
    async with bench_stream(client) as resp:
        for seq in range(3):
            answer = await publish(client, "b-1", {"t": 1000 + seq, "seq": seq, "pad": "xx"})
            assert answer.status == 204
        for seq in range(3):
            assert await next_event(resp) == {
                "status": "scanning",
                "progress_percent": 1,
                "t": 1000 + seq,
                "seq": seq,
                "pad": "xx",
            }
        assert (await finish(client, "b-1")).status == 204
        assert await next_event(resp) == DONE
        assert await next_block(resp) == []
    entries = await (await client.get("/requests")).json()
    assert entries[-1]["scan_id"] == "b-1"
    assert "closed_at" in entries[-1]


async def test_frames_are_plain_data_lines_with_the_payload_after_status(client: Client) -> None:
    async with bench_stream(client) as resp:
        await publish(client, "b-1", {"t": 5, "seq": 0})
        raw = await resp.content.readuntil(b"\n\n")
    assert raw == b'data: {"status": "scanning", "progress_percent": 1, "t": 5, "seq": 0}\n\n'


async def test_a_burst_arrives_complete_and_in_order(client: Client) -> None:
    async with bench_stream(client) as resp:
        answers = await asyncio.gather(
            *(publish(client, "b-1", {"seq": seq}) for seq in range(200))
        )
        assert {answer.status for answer in answers} == {204}
        await finish(client, "b-1")
        seqs = []
        while (event := await next_event(resp))["status"] != "completed":
            seqs.append(event["seq"])
    assert sorted(seqs) == list(range(200))


async def test_sequential_publishes_keep_their_order(client: Client) -> None:
    async with bench_stream(client) as resp:
        for seq in range(50):
            await publish(client, "b-1", {"seq": seq})
        await finish(client, "b-1")
        seqs = []
        while (event := await next_event(resp))["status"] != "completed":
            seqs.append(event["seq"])
    assert seqs == list(range(50))


async def test_payload_fields_may_override_status(client: Client) -> None:
    async with bench_stream(client) as resp:
        await publish(client, "b-1", {"status": "processing", "progress_percent": 50})
        assert await next_event(resp) == {"status": "processing", "progress_percent": 50}
        await finish(client, "b-1")


async def test_publish_without_open_stream_is_404(client: Client) -> None:
    for path in ("/bench/nobody/publish", "/bench/nobody/finish"):
        async with client.post(path, json={"t": 1, "seq": 0}) as resp:
            assert resp.status == 404
            assert resp.content_type == "application/json"
            body = await resp.json()
        assert body["error"] == "not_found"
        assert "nobody" in body["message"]


async def test_publish_after_finish_is_404(client: Client) -> None:
    async with bench_stream(client) as resp:
        assert (await finish(client, "b-1")).status == 204
        assert (await publish(client, "b-1", {"seq": 1})).status == 404
        assert (await finish(client, "b-1")).status == 404
        assert await next_event(resp) == DONE
    assert (await publish(client, "b-1", {"seq": 2})).status == 404


async def test_streams_are_per_scan(client: Client) -> None:
    async with bench_stream(client, "b-1") as one, bench_stream(client, "b-2") as two:
        await publish(client, "b-2", {"seq": 2})
        await publish(client, "b-1", {"seq": 1})
        assert (await next_event(one))["seq"] == 1
        assert (await next_event(two))["seq"] == 2
        await finish(client, "b-1")
        await finish(client, "b-2")


async def test_a_publish_to_several_scans_goes_to_the_one_its_seq_picks(client: Client) -> None:
    async with bench_stream(client, "b-1") as one, bench_stream(client, "b-2") as two:
        for seq in range(4):
            assert (await publish(client, "b-1,b-2", {"seq": seq})).status == 204
        assert [(await next_event(one))["seq"] for _ in range(2)] == [0, 2]
        assert [(await next_event(two))["seq"] for _ in range(2)] == [1, 3]
        for payload in ({"t": 1}, {"seq": "1"}, {"seq": True}):
            answer = await publish(client, "b-1,b-2", payload)
            assert answer.status == 400
            assert (await answer.json())["error"] == "invalid_body"
        assert (await publish(client, "b-1,nobody", {"seq": 1})).status == 404
        too_many = ",".join(["b-1"] * 65)
        assert (await publish(client, too_many, {"seq": 0})).status == 400
        await finish(client, "b-1")
        await finish(client, "b-2")


@pytest.mark.parametrize(
    ("body", "error"),
    [(b"{not json", "invalid_json"), (b"[1, 2]", "invalid_body"), (b'"text"', "invalid_body")],
)
async def test_bad_payload_is_400(client: Client, body: bytes, error: str) -> None:
    async with bench_stream(client) as resp:
        async with client.post("/bench/b-1/publish", data=body) as answer:
            assert answer.status == 400
            assert (await answer.json())["error"] == error
        await finish(client, "b-1")
        assert await next_event(resp) == DONE


async def test_second_bench_stream_for_a_scan_is_409(client: Client) -> None:
    async with bench_stream(client):
        async with client.post("/scan", json=bench_body()) as second:
            assert second.status == 409
            assert (await second.json())["error"] == "conflict"
        await finish(client, "b-1")


@pytest.mark.parametrize(
    "knobs", [{"bench": "yes"}, {"bench": 1}, {"bench": True, "format": "ndjson"}]
)
async def test_bad_bench_knob_is_400(client: Client, knobs: dict[str, Any]) -> None:
    body = {"scan_id": "b-1", "repository_name": "octo/webshop", "configurations": knobs}
    async with client.post("/scan", json=body) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_configuration"


async def test_bench_false_is_a_normal_run(client: Client) -> None:
    body = {"scan_id": "b-1", "repository_name": "r", "configurations": {"bench": False}}
    async with client.post("/scan", json=body) as resp:
        raw = await resp.read()
    assert raw.rstrip().endswith(b"}")
    assert b'"status": "completed"' in raw


async def test_heartbeat_and_line_ending(client: Client) -> None:
    async with bench_stream(client, heartbeat=0.02, line_ending="crlf") as resp:
        raw = await resp.content.readuntil(b": keep-alive\r\n\r\n")
        assert raw.endswith(b": keep-alive\r\n\r\n")
        await publish(client, "b-1", {"seq": 0})
        await finish(client, "b-1")
        rest = await resp.content.read()
    assert b'data: {"status": "scanning", "progress_percent": 1, "seq": 0}\r\n\r\n' in rest
    assert rest.endswith(b'"vulnerabilities": []}\r\n\r\n')


async def _start_server() -> tuple[web.AppRunner, web.Application, str]:
    app = create_app()
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, app, f"http://{host}:{port}"


async def test_a_departed_client_closes_the_bench_stream() -> None:
    runner, app, base = await _start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/scan", json=bench_body("gone")) as resp:
                assert await next_event(resp) == FIRST
            async with asyncio.timeout(3):
                await scan_finished(app, "gone").wait()
            async with session.post(f"{base}/bench/gone/publish", json={"seq": 0}) as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()


async def test_shutdown_ends_an_idle_bench_stream() -> None:
    runner, _, base = await _start_server()
    loop = asyncio.get_running_loop()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/scan", json=bench_body("idle")) as resp,
    ):
        assert await next_event(resp) == FIRST
        start = loop.time()
        await runner.cleanup()
        assert loop.time() - start < 2
        rest = await resp.content.read()
    assert b"completed" not in rest


# --- through the gateway: what the bench measures ------------------------------------------


async def test_gateway_passes_t_and_seq_through_under_extra(
    gateway: Gateway, scanner: TestServer
) -> None:
    client = await gateway()
    scan_id = await start_scan(client, use_sse=True, configurations={"bench": True})
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as stream:
        assert stream.status == 200
        statuses = []
        while (event := await next_event(stream))["status"] in ("pending", "connecting"):
            statuses.append(event["status"])
        assert event["progress_text"] == "bench"
        async with aiohttp.ClientSession() as session:
            url = scanner.make_url(f"/bench/{scan_id}/publish")
            payload = {"t": 1764000000123456789, "seq": 7, "pad": "xxxx"}
            async with session.post(url, json=payload) as resp:
                assert resp.status == 204
            block = await next_block(stream)
            async with session.post(scanner.make_url(f"/bench/{scan_id}/finish")) as resp:
                assert resp.status == 204
        assert (await next_event(stream))["status"] == "completed"
    assert statuses == ["pending", "connecting"]
    line = next(line for line in block if line.startswith("data:"))
    published = json.loads(line[5:])
    assert published["extra"] == payload
    assert published["status"] == "scanning"
    # The load generator looks for these within the first KiB of the data line.
    assert line.index('"seq":7') < 1024
    assert line.index('"t":1764000000123456789') < 1024


async def test_a_collection_stream_passes_each_scans_t_and_seq_through(
    gateway: Gateway, scanner: TestServer
) -> None:
    client = await gateway()
    scanners = ["secret_scanner", "sast_scanner"]
    created = await start_collection(
        client, scanners=scanners, configurations={"bench": True, "stamp_emit": True}
    )
    cid, scan_ids = created["collection_id"], created["scan_ids"]
    path = f"{COLLECTIONS_API}/{cid}/stream"
    async with client.get(path, headers=auth()) as stream:
        bench = 0
        while bench < len(scanners):  # until each scan has sent its first bench event
            event = await next_event(stream)
            bench += event["scan"]["progress_text"] == "bench"
        async with aiohttp.ClientSession() as session:
            url = scanner.make_url(f"/bench/{','.join(scan_ids)}/publish")
            for seq in range(4):
                async with session.post(url, json={"t": 1, "seq": seq, "pad": "x"}) as resp:
                    assert resp.status == 204
            blocks = [await next_block(stream) for _ in range(4)]
            for scan_id in scan_ids:
                async with session.post(scanner.make_url(f"/bench/{scan_id}/finish")) as resp:
                    assert resp.status == 204
    lines = [next(line for line in block if line.startswith("data:")) for block in blocks]
    events = [json.loads(line[5:]) for line in lines]
    by_seq = {event["scan"]["extra"]["seq"]: event["scan"]["scan_id"] for event in events}
    assert by_seq == {0: scan_ids[0], 1: scan_ids[1], 2: scan_ids[0], 3: scan_ids[1]}
    assert all(event["scan"]["extra"]["t"] > 1 for event in events), "stamped by the mock"
    # The load generator looks for these within the first KiB of the data line.
    assert all(line.index('"seq":') < 1024 and line.index('"t":') < 1024 for line in lines)


async def test_stamp_emit_sets_t_when_the_frame_is_written(client: Client) -> None:
    async with bench_stream(client, stamp_emit=True) as resp:
        before = time.time_ns()
        await publish(client, "b-1", {"t": 5, "seq": 0})
        event = await next_event(resp)
        after = time.time_ns()
    assert event["seq"] == 0
    assert before <= event["t"] <= after, "the mock's emit time, not the publisher's stamp"


@pytest.mark.parametrize("knobs", [{"stamp_emit": "yes"}, {"bench": False, "stamp_emit": True}])
async def test_stamp_emit_needs_a_bool_and_bench(client: Client, knobs: dict[str, Any]) -> None:
    body = bench_body(**knobs)
    async with client.post("/scan", json=body) as resp:
        assert resp.status == 400
        assert "stamp_emit" in (await resp.json())["message"]
