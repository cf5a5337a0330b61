"""SSE mode against the real mock scanner: every dialect it speaks, every fault it can show."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, TransferEncodingError

from gateway.config import UpstreamConfig
from gateway.domain.errors import UpstreamFault
from gateway.scanners.client import UpstreamError, clean_text, redact_url, stream_scan
from tests.helpers import auth, start_scan, stream


async def run(client, configurations, scanner="sast_scanner"):
    scan_id = await start_scan(client, use_sse=True, scanner=scanner, configurations=configurations)
    events = await stream(client, scan_id)
    record = (await (await client.get(f"/api/v1/scans/{scan_id}", headers=auth())).json())["data"]
    return scan_id, events, record


@pytest.mark.parametrize(
    "configurations",
    [
        {"format": "ndjson"},
        {"format": "json"},
        {"line_ending": "crlf"},
        {"line_ending": "cr"},
        {"bom": True},
        {"progress_field": "progress"},
        {"heartbeat": 0.01, "step_delay": 0.03},
    ],
    ids=["ndjson", "single-json", "crlf", "cr", "bom", "progress-alias", "heartbeats"],
)
async def test_every_dialect_completes_with_results(client, configurations):
    scan_id, events, record = await run(client, configurations)
    assert events[-1][1]["status"] == "completed"
    assert record["status"] == "completed"
    assert record["skipped_events"] == 0
    if configurations.get("format") != "json":
        percents = [data["progress_percent"] for _, data in events[2:-1]]
        assert percents and all(0 < p < 100 for p in percents)
    results = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    assert (await results.json())["data"]["vulnerabilities"]


async def test_malformed_events_are_counted_and_skipped(client):
    _, events, record = await run(client, {"malformed": 3})
    assert events[-1][1]["status"] == "completed"
    assert record["skipped_events"] == 3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FAULTS: dict[str, tuple[dict, dict, str]] = {
    "scanner-error-event": ({"fail_at": 40}, {}, "simulated scanner failure"),
    "http-status": ({"status_code": 503}, {}, "answered HTTP 503: scanner overloaded"),
    "content-type": ({"content_type": "text/html"}, {}, "unsupported content type 'text/html'"),
    "dropped": ({"drop_at": 50}, {}, "sast_scanner"),
    "idle-timeout": (
        {"stall_at": 30, "heartbeat": 0.02},
        {"upstream": {"idle_timeout_seconds": 0.3}},
        "sent no event for 0.3 s",
    ),
    "line-too-long": ({}, {"upstream": {"max_line_length": 40}}, "line longer than 40"),
    "ndjson-line-too-long": (
        {"format": "ndjson"},
        {"upstream": {"max_line_length": 40}},
        "NDJSON line longer than 40 bytes",
    ),
    "scan-timeout": (
        {"step_delay": 0.1, "steps": 50},
        {"upstream": {"scan_timeout_seconds": 0.4}},
        "scan exceeded its 0.4 s limit",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_upstream_faults_end_the_scan_failed_with_a_reason(gateway, fault):
    configurations, overrides, reason = FAULTS[fault]
    client = await gateway(**overrides)
    _, events, record = await run(client, configurations)
    last = events[-1][1]
    assert last["status"] == "failed"
    assert reason in last["error"]
    assert last["progress_text"] == last["error"] or fault == "scanner-error-event"
    assert record["status"] == "failed"
    assert record["error"] == last["error"]
    assert record["finished_at"] is not None
    ids = [event_id for event_id, _ in events]
    assert ids == list(range(1, len(ids) + 1))


async def test_stream_ending_without_terminal_event_fails(gateway, scripted_scanner):
    # A scanner that closes its body cleanly mid-scan (a shutdown, a proxy) without completing.
    url = await scripted_scanner([b'data: {"status": "scanning", "progress_percent": 10}\n\n'])
    client = await gateway(scanners={"sast_scanner": url})
    _, events, record = await run(client, {})
    assert [data["status"] for _, data in events] == ["pending", "connecting", "scanning", "failed"]
    assert "ended its stream without a terminal event" in record["error"]
    assert record["progress_percent"] == 10


async def test_connection_refused_fails_with_reason(gateway):
    url = f"http://127.0.0.1:{closed_port()}/scan"
    client = await gateway(scanners={"sast_scanner": url}, upstream={"connect_retries": 0})
    _, events, record = await run(client, {})
    assert events[-1][1]["status"] == "failed"
    assert record["error"].startswith("cannot connect to sast_scanner")


async def test_scanner_gets_the_scan_and_its_configurations(client, scanner):
    scan_id, events, _ = await run(client, {"steps": 2, "custom": {"depth": 3}})
    assert events[-1][1]["status"] == "completed"
    from aiohttp import ClientSession

    async with ClientSession() as session, session.get(scanner.make_url("/requests")) as response:
        received = await response.json()
    assert [(r["scan_id"], r["kind"]) for r in received] == [(scan_id, "sast_scanner")]


async def test_scanner_specific_scalars_reach_clients_under_extra(gateway, scripted_scanner):
    # The same status and percent twice: each message still becomes an event.
    frames = [
        f'data: {{"status": "scanning", "progress_percent": 10, "seq": {seq}, '
        f'"worker": "w-{seq}"}}\n\n'.encode()
        for seq in (1, 2)
    ]
    url = await scripted_scanner(
        [*frames, b'data: {"status": "completed", "vulnerabilities": []}\n\n']
    )
    client = await gateway(scanners={"sast_scanner": url})
    _, events, _ = await run(client, {})
    extras = [data.get("extra") for _, data in events]
    assert extras == [None, None, {"seq": 1, "worker": "w-1"}, {"seq": 2, "worker": "w-2"}, None]


async def test_more_scans_than_aiohttp_s_default_pool_run_at_once(gateway):
    """Each running scan holds an upstream connection; the 101st must not wait for one."""
    count = 110
    client = await gateway(
        limits={
            "max_running_scans": count,
            "max_running_scans_per_subject": count,
            "max_streams_per_subject": count,
            "scan_start_burst": count,
        },
        upstream={"connect_timeout_seconds": 1, "connect_retries": 0},
    )
    # Each scan holds its connection well beyond the connect timeout.
    config = {"step_delay": 1, "steps": 3}
    scan_ids = [await start_scan(client, use_sse=True, configurations=config) for _ in range(count)]
    results = await asyncio.gather(*(stream(client, scan_id) for scan_id in scan_ids))
    failures = [events[-1][1] for events in results if events[-1][1]["status"] != "completed"]
    assert failures == []


@pytest.fixture
async def hostile():
    from tests.hostile_scanner import HostileScanner

    server = HostileScanner()
    await server.start()
    yield server
    await server.close()


@pytest.mark.parametrize("content_type", ["text/event-stream", "application/x-ndjson", "json"])
async def test_a_body_written_in_small_pieces_reads_as_written_whole(
    gateway, hostile, content_type
):
    """The scanner writes each dialect's body in pieces of 1 to 16 bytes, a few ms apart, so
    the gateway's reads split lines, events and characters."""
    from tests.gateway.scanners.test_messages import BODIES, JSON_BODY

    body = JSON_BODY if content_type == "json" else BODIES[content_type]
    rng = random.Random(content_type)
    pieces, start = [], 0
    while start < len(body):
        size = rng.randint(1, 16)
        pieces.append(body[start : start + size])
        start += size
    url = hostile.script(
        "pieces", "application/json" if content_type == "json" else content_type, pieces
    )
    client = await gateway(scanners={"sast_scanner": url})
    scan_id, events, record = await run(client, {})
    assert [data["status"] for _, data in events] == [
        "pending",
        "connecting",
        "scanning",
        "scanning",
        "completed",
    ]
    assert events[2][1]["progress_text"] == "Analyse du dépôt…"
    assert record["skipped_events"] == (0 if content_type == "json" else 1)
    results = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    (finding,) = (await results.json())["data"]["vulnerabilities"]
    assert (finding["title"], finding["line"]) == ("日本語 🔒", 3)


async def test_the_scan_request_asks_for_an_unencoded_body(gateway, hostile):
    client = await gateway(scanners={"sast_scanner": hostile.url("ok")})
    _, events, _ = await run(client, {})
    assert events[-1][1]["status"] == "completed"
    (request,) = hostile.requests
    assert request.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://user:pw@host:8080/scan?api_key=s3&x=", "http://host:8080/scan?api_key=***&x=***"),
        ("https://host/p?token", "https://host/p?token=***"),
        ("http://host/p#frag", "http://host/p"),
        ("http://[bad/", "<url>"),
    ],
)
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted


def test_clean_text_redacts_urls_and_removes_controls():
    text = (
        "400, message='x', url=URL('http://u:hunter2@h/scan?api_key=sekrit') "
        "\x1b[31mred\x1b[0m\r\nnext\x85line\x00"
    )
    assert clean_text(text) == (
        "400, message='x', url=URL('http://h/scan?api_key=***') [31mred [0m next line"
    )
    assert len(clean_text("x" * 5000)) == 1000


def test_an_upstream_error_message_is_always_clean():
    error = UpstreamError(UpstreamFault.HTTP, "failed: http://a:b@h/?k=v \x1b]0;title\x07")
    assert error.message == str(error) == "failed: http://h/?k=*** ]0;title"


class _PayloadFails:
    """A scanner's answer whose body read fails as aiohttp's does when the connection closes:
    a ClientPayloadError, its cause what the HTTP parser said at the end of the data."""

    status = 200
    content_type = "text/event-stream"
    headers: dict[str, str] = {}  # noqa: RUF012 (read only)

    def __init__(self, cause: Exception) -> None:
        self.cause = cause

    @property
    def content(self) -> _PayloadFails:
        return self

    async def iter_any(self) -> AsyncIterator[bytes]:
        yield b'data: {"status": "scanning"}\n\n'
        error = aiohttp.ClientPayloadError("Response payload is not completed")
        error.__cause__ = self.cause
        raise error

    def post(self, *args: object, **kwargs: object) -> _PayloadFails:
        return self

    async def __aenter__(self) -> _PayloadFails:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(
    ("cause", "kind", "error"),
    [
        (BadHttpMessage("Too many headers"), "protocol", "s sent an invalid HTTP answer"),
        (TransferEncodingError("Not enough data"), "dropped", "connection to s was lost"),
    ],
)
async def test_a_refusal_noticed_at_the_end_of_the_data_is_the_same_fault(cause, kind, error):
    """Whether aiohttp's parser refuses an answer while reading it or as the connection closes
    (a trailer flood, depending on timing), the scan fails with the same reason; a body cut
    short is a lost connection."""
    messages = stream_scan(_PayloadFails(cause), "s", "http://s/scan", {}, UpstreamConfig())  # type: ignore[arg-type]
    assert await anext(messages) == {"status": "scanning"}
    with pytest.raises(UpstreamError) as info:
        await anext(messages)
    assert info.value.kind == kind
    assert info.value.message.startswith(error)


async def test_each_scan_has_a_connection_of_its_own(gateway, aiohttp_server):
    """A scanner's answer decides how its connection ends (a 204 kept alive, a body cut
    short); the next scan to the same scanner never starts on what the last one left."""
    peers: list[object] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"status": "completed"}\n\n')
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/scan", answer)
    url = str((await aiohttp_server(app)).make_url("/scan"))
    client = await gateway(scanners={"sast_scanner": url})
    for _ in range(3):
        scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner")
        assert (await stream(client, scan_id))[-1][1]["status"] == "completed"
    assert len(peers) == 3 and len(set(map(str, peers))) == 3, peers
