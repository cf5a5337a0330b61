"""Tests of the bundled mock scanner service (``mock_scanner``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mock_scanner import MockScannerConfig, create_app, scenario
from mock_scanner.__main__ import main

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

KINDS = scenario.SCANNER_KINDS
RUNNING = {"initializing", "cloning", "analyzing", "scanning", "processing", "saving"}
REPO = "octo/webshop"
BOM = b"\xef\xbb\xbf"


def scan_body(scan_id: str = "scan-1", kind: str | None = None, **knobs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "scan_id": scan_id,
        "repository_name": REPO,
        "configurations": {"step_delay": 0, **knobs},
    }
    if kind is not None:
        body["scanner"] = kind
    return body


def sse_data(raw: bytes) -> list[str]:
    """The ``data`` of each SSE event in ``raw`` (comment-only blocks left out)."""
    text = raw.decode("utf-8").removeprefix("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line.startswith("data:")]
        if lines:
            out.append("\n".join(line[5:].removeprefix(" ") for line in lines))
    return out


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(data) for data in sse_data(raw)]


def check_run(
    events: list[dict[str, Any]], kind: str, steps: int = 8, field: str = "progress_percent"
) -> None:
    *progress, last = events
    assert len(progress) == steps
    percents = [event[field] for event in progress]
    assert percents == sorted(set(percents))
    assert all(0 <= p < 100 for p in percents)
    assert all(event["status"] in RUNNING and event["message"] for event in progress)
    assert all(set(event) == {"status", field, "message"} for event in progress)
    assert last == {
        "status": "completed",
        field: 100,
        "message": "Scan complete.",
        "vulnerabilities": scenario.findings(kind, REPO),
    }


@pytest.fixture
async def client(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_app(MockScannerConfig(step_delay=0)))


async def post(
    client: Client, body: Any, path: str = "/scan"
) -> tuple[aiohttp.ClientResponse, bytes]:
    async with client.post(path, json=body) as resp:
        return resp, await resp.read()


# --- the normal run ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_default_sse_run(client: Client, kind: str) -> None:
    resp, raw = await post(client, scan_body(kind=kind))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert raw.startswith(b"data: {")
    assert b"\r" not in raw
    check_run(sse_events(raw), kind)


async def test_default_kind_is_secret_scanner(client: Client) -> None:
    _, raw = await post(client, scan_body())
    check_run(sse_events(raw), "secret_scanner")


@pytest.mark.parametrize("kind", KINDS)
async def test_per_kind_route(client: Client, kind: str) -> None:
    resp, raw = await post(client, scan_body(), f"/scanners/{kind}/scan")
    assert resp.status == 200
    check_run(sse_events(raw), kind)


async def test_path_kind_wins_over_body(client: Client) -> None:
    _, raw = await post(client, scan_body(kind="llm_scanner"), "/scanners/dast_scanner/scan")
    check_run(sse_events(raw), "dast_scanner")


async def test_query_kind(client: Client) -> None:
    _, raw = await post(client, scan_body(), "/scan?kind=sast_scanner")
    check_run(sse_events(raw), "sast_scanner")


async def test_body_kind_wins_over_query(client: Client) -> None:
    _, raw = await post(client, scan_body(kind="llm_scanner"), "/scan?kind=sast_scanner")
    check_run(sse_events(raw), "llm_scanner")


async def test_steps_knob(client: Client) -> None:
    _, raw = await post(client, scan_body(steps=3))
    check_run(sse_events(raw), "secret_scanner", steps=3)


async def test_progress_field(client: Client) -> None:
    _, raw = await post(client, scan_body(progress_field="progress"))
    events = sse_events(raw)
    check_run(events, "secret_scanner", field="progress")
    assert all("progress_percent" not in event for event in events)


async def test_findings_of_reports_another_kinds_findings(client: Client) -> None:
    _, raw = await post(client, scan_body(kind="llm_scanner", findings_of="sast_scanner"))
    *progress, last = sse_events(raw)
    assert last["vulnerabilities"] == scenario.findings("sast_scanner", REPO)
    assert last["vulnerabilities"] != scenario.findings("llm_scanner", REPO)
    # Only the findings: the progress is still the scan's own kind's.
    assert progress[0]["message"] == scenario.progress_steps("llm_scanner", 8, REPO)[0][2]


async def test_step_delay_is_applied(client: Client) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    _, raw = await post(client, scan_body(steps=2, step_delay=0.1))
    assert loop.time() - start >= 0.19  # waits before the second progress and the final event
    check_run(sse_events(raw), "secret_scanner", steps=2)


async def test_healthz(client: Client) -> None:
    async with client.get("/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


# --- faults --------------------------------------------------------------------------------


async def test_fail_at(client: Client) -> None:
    resp, raw = await post(client, scan_body(fail_at=50))
    assert resp.status == 200
    *progress, last = sse_events(raw)
    assert [event["progress_percent"] for event in progress] == [11, 22, 33, 44]
    assert last["status"] == "failed"
    assert last["progress_percent"] == 55
    assert last["message"]
    assert "fail_at=50" in last["error"]


async def test_fail_at_100_fails_instead_of_completing(client: Client) -> None:
    _, raw = await post(client, scan_body(fail_at=100, progress_field="progress"))
    *progress, last = sse_events(raw)
    assert len(progress) == 8
    assert last["status"] == "failed"
    assert last["progress"] == 100


async def test_drop_at(client: Client) -> None:
    received = b""
    error: Exception | None = None
    async with client.post("/scan", json=scan_body(drop_at=50)) as resp:
        assert resp.status == 200
        try:
            async for chunk in resp.content.iter_any():
                received += chunk
        except aiohttp.ClientPayloadError as exc:
            error = exc
    events = sse_events(received)
    assert [event["progress_percent"] for event in events] == [11, 22, 33, 44]
    assert all(event["status"] != "completed" for event in events)
    assert error is not None  # the chunked body never got its terminating chunk


async def test_drop_at_json_format_sends_no_answer(client: Client) -> None:
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.post("/scan", json=scan_body(drop_at=0, format="json")) as resp:
            await resp.read()


async def test_malformed(client: Client) -> None:
    _, raw = await post(client, scan_body(malformed=3))
    data = sse_data(raw)
    assert len(data) == 12
    bad = []
    for index, item in enumerate(data):
        try:
            json.loads(item)
        except ValueError:
            bad.append(index)
    assert bad == [1, 3, 5]  # one after each of the first three progress events
    assert data[1] == '{"status": "initializing", "progress_percent": 11, oops'
    good = [json.loads(item) for index, item in enumerate(data) if index not in bad]
    check_run(good, "secret_scanner")


async def test_malformed_more_than_steps(client: Client) -> None:
    _, raw = await post(client, scan_body(steps=2, malformed=4))
    data = sse_data(raw)
    assert len(data) == 2 + 4 + 1
    json.loads(data[-1])
    assert sum(1 for item in data if item.endswith("oops")) == 4


async def test_ndjson(client: Client) -> None:
    resp, raw = await post(client, scan_body(kind="sast_scanner", format="ndjson"))
    assert resp.headers["Content-Type"] == "application/x-ndjson"
    assert raw.endswith(b"\n")
    lines = raw.decode().split("\n")[:-1]
    check_run([json.loads(line) for line in lines], "sast_scanner")


async def test_ndjson_malformed(client: Client) -> None:
    _, raw = await post(client, scan_body(format="ndjson", malformed=1))
    lines = raw.decode().splitlines()
    assert lines[1].endswith("oops")
    check_run([json.loads(line) for i, line in enumerate(lines) if i != 1], "secret_scanner")


async def test_json(client: Client) -> None:
    resp, raw = await post(client, scan_body(kind="llm_scanner", format="json"))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(raw) == {
        "status": "completed",
        "progress_percent": 100,
        "message": "Scan complete.",
        "vulnerabilities": scenario.findings("llm_scanner", REPO),
    }


async def test_json_fail_at(client: Client) -> None:
    _, raw = await post(client, scan_body(format="json", fail_at=30))
    result = json.loads(raw)
    assert result["status"] == "failed"
    assert result["progress_percent"] == 33


async def test_json_malformed_and_bom(client: Client) -> None:
    _, raw = await post(client, scan_body(format="json", malformed=1, bom=True))
    assert raw.startswith(BOM)
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_crlf(client: Client) -> None:
    _, raw = await post(client, scan_body(line_ending="crlf"))
    assert raw.startswith(b"data: {")
    assert raw.endswith(b"}\r\n\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n")
    check_run(sse_events(raw), "secret_scanner")


async def test_cr(client: Client) -> None:
    _, raw = await post(client, scan_body(line_ending="cr"))
    assert b"\n" not in raw
    assert raw.endswith(b"}\r\r")
    check_run(sse_events(raw), "secret_scanner")


async def test_bom(client: Client) -> None:
    _, raw = await post(client, scan_body(bom=True))
    assert raw.startswith(BOM + b"data: {")
    assert raw.count(BOM) == 1
    check_run(sse_events(raw), "secret_scanner")


@pytest.mark.parametrize(("code", "text"), [(503, "scanner overloaded"), (418, "scanner error")])
async def test_status_code(client: Client, code: int, text: str) -> None:
    resp, raw = await post(client, scan_body(status_code=code))
    assert resp.status == code
    assert raw.decode() == text
    assert resp.content_type == "text/plain"


async def test_content_type_override(client: Client) -> None:
    resp, raw = await post(client, scan_body(content_type="text/html; charset=latin-1"))
    assert resp.headers["Content-Type"] == "text/html; charset=latin-1"
    check_run(sse_events(raw), "secret_scanner")


async def test_content_type_override_with_status_code(client: Client) -> None:
    resp, _ = await post(client, scan_body(status_code=502, content_type="text/html"))
    assert resp.status == 502
    assert resp.headers["Content-Type"] == "text/html"


async def test_stall_at(client: Client) -> None:
    resp = await client.post("/scan", json=scan_body(stall_at=50))
    try:
        assert resp.status == 200
        events: list[dict[str, Any]] = []
        while len(events) < 4:
            line = await resp.content.readline()
            assert line, "stream ended before the stall"
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
        assert [event["progress_percent"] for event in events] == [11, 22, 33, 44]
        assert await resp.content.readline() == b"\n"  # the end of the fourth event
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(resp.content.readline(), 0.3)
    finally:
        resp.close()


async def test_heartbeat_while_stalling(client: Client) -> None:
    resp = await client.post("/scan", json=scan_body(stall_at=0, heartbeat=0.02))
    try:
        lines = [await resp.content.readline() for _ in range(6)]
    finally:
        resp.close()
    assert lines == [b": keep-alive\n", b"\n"] * 3


async def test_heartbeat_between_steps(client: Client) -> None:
    _, raw = await post(client, scan_body(steps=2, step_delay=0.12, heartbeat=0.03))
    assert raw.count(b": keep-alive\n\n") >= 4
    assert raw.startswith(b"data: ")
    check_run(sse_events(raw), "secret_scanner", steps=2)


async def test_ndjson_ignores_heartbeat(client: Client) -> None:
    _, raw = await post(
        client, scan_body(format="ndjson", steps=1, step_delay=0.06, heartbeat=0.01)
    )
    assert b"keep-alive" not in raw
    assert len(raw.splitlines()) == 2


# --- the request log -----------------------------------------------------------------------


async def test_requests_records_each_post(client: Client) -> None:
    async with client.get("/requests") as resp:
        assert await resp.json() == []
    await post(client, scan_body("a"))
    await post(client, scan_body("b"), "/scanners/dast_scanner/scan")
    await post(client, scan_body("c", status_code=500))
    await post(client, {"repository_name": REPO})
    async with client.get("/requests") as resp:
        entries = await resp.json()
    assert [(e["scan_id"], e["kind"]) for e in entries] == [
        ("a", "secret_scanner"),
        ("b", "dast_scanner"),
        ("c", "secret_scanner"),
        (None, "secret_scanner"),
    ]
    assert all(set(e) <= {"scan_id", "kind", "received_at", "closed_at"} for e in entries)
    assert all(e["received_at"].endswith("+00:00") for e in entries)


async def test_request_log_is_bounded(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_app(MockScannerConfig(max_recorded_requests=2)))
    for scan_id in ("a", "b", "c"):
        await post(client, scan_body(scan_id, status_code=503))
    async with client.get("/requests") as resp:
        assert [e["scan_id"] for e in await resp.json()] == ["b", "c"]


async def test_apps_do_not_share_state(aiohttp_client: ClientFactory) -> None:
    one = await aiohttp_client(create_app())
    two = await aiohttp_client(create_app())
    await post(one, scan_body(status_code=503))
    async with two.get("/requests") as resp:
        assert await resp.json() == []


# --- bad requests --------------------------------------------------------------------------


BAD_BODIES: list[tuple[str, Any, str, str]] = [
    ("not json", b"{nope", "invalid_json", "JSON"),
    ("not utf-8", b"\xff\xfe{", "invalid_json", "JSON"),
    ("array", [], "invalid_body", "object"),
    ("string", "scan", "invalid_body", "object"),
    ("no scan_id", {"repository_name": REPO}, "missing_field", "scan_id"),
    ("empty scan_id", {"scan_id": " ", "repository_name": REPO}, "invalid_field", "scan_id"),
    ("int scan_id", {"scan_id": 7, "repository_name": REPO}, "invalid_field", "scan_id"),
    ("no repository", {"scan_id": "s"}, "missing_field", "repository_name"),
    (
        "empty repository",
        {"scan_id": "s", "repository_name": ""},
        "invalid_field",
        "repository_name",
    ),
    (
        "configurations list",
        {"scan_id": "s", "repository_name": REPO, "configurations": []},
        "invalid_field",
        "configurations",
    ),
    (
        "unknown scanner",
        {"scan_id": "s", "repository_name": REPO, "scanner": "zap"},
        "unknown_scanner",
        "'zap'",
    ),
    (
        "scanner not a string",
        {"scan_id": "s", "repository_name": REPO, "scanner": 3},
        "invalid_field",
        "scanner",
    ),
]

BAD_KNOBS: list[tuple[str, Any]] = [
    ("steps", 0),
    ("steps", 1001),
    ("steps", "3"),
    ("steps", True),
    ("steps", 2.5),
    ("step_delay", -1),
    ("step_delay", 31),
    ("step_delay", "fast"),
    ("step_delay", float("nan")),
    ("fail_at", 101),
    ("drop_at", -1),
    ("stall_at", "50"),
    ("heartbeat", 0),
    ("malformed", -1),
    ("malformed", 101),
    ("format", "xml"),
    ("progress_field", "pct"),
    ("line_ending", "\n"),
    ("status_code", 200),
    ("status_code", 600),
    ("content_type", ""),
    ("content_type", "text/plain\r\nX-Evil: 1"),
    ("bom", "yes"),
    ("findings_of", "zap"),
    ("findings_of", 1),
]


async def expect_400(resp: aiohttp.ClientResponse, error: str, mention: str) -> None:
    assert resp.status == 400
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    assert mention in body["message"]


@pytest.mark.parametrize(
    ("body", "error", "mention"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_body(client: Client, body: Any, error: str, mention: str) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with client.post(
        "/scan", data=data, headers={"Content-Type": "application/json"}
    ) as resp:
        await expect_400(resp, error, mention)


@pytest.mark.parametrize(("knob", "value"), BAD_KNOBS, ids=[f"{k}={v!r}" for k, v in BAD_KNOBS])
async def test_bad_knob(client: Client, knob: str, value: Any) -> None:
    # NaN is not standard JSON but Python's json module writes and reads it.
    async with client.post("/scan", json=scan_body(**{knob: value})) as resp:
        await expect_400(resp, "invalid_configuration", f"configurations.{knob}")


async def test_unknown_kind_in_path(client: Client) -> None:
    async with client.post("/scanners/zap/scan", json=scan_body()) as resp:
        await expect_400(resp, "unknown_scanner", "secret_scanner")


async def test_unknown_kind_in_query(client: Client) -> None:
    async with client.post("/scan?kind=zap", json=scan_body()) as resp:
        await expect_400(resp, "unknown_scanner", "'zap'")


async def test_unknown_configuration_keys_are_ignored(client: Client) -> None:
    _, raw = await post(client, scan_body(depth="full", rules=["a"]))
    check_run(sse_events(raw), "secret_scanner")


async def test_configurations_may_be_missing(client: Client) -> None:
    _, raw = await post(
        client, {"scan_id": "s", "repository_name": REPO, "scanner": "sast_scanner"}
    )
    check_run(sse_events(raw), "sast_scanner")


async def test_get_scan_is_405(client: Client) -> None:
    async with client.get("/scan") as resp:
        assert resp.status == 405


# --- disconnects and shutdown without handler cancellation -----------------------------------


async def _start_server() -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(), handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


class _LogWatch(logging.Handler):
    """Sets ``seen`` once the ``mock_scanner`` logger emits a line containing ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.mark.parametrize(
    "knobs", [{"stall_at": 0}, {"step_delay": 5}, {"step_delay": 0.05, "heartbeat": 0.01}]
)
async def test_handler_notices_client_leaving(
    caplog: pytest.LogCaptureFixture, knobs: dict[str, Any]
) -> None:
    caplog.set_level(logging.INFO, logger="mock_scanner")
    watch = _LogWatch("scan gone: stream ended")
    logging.getLogger("mock_scanner").addHandler(watch)
    runner, base = await _start_server()
    try:
        async with aiohttp.ClientSession() as session:
            body = scan_body("gone", steps=50, **knobs)
            async with session.post(f"{base}/scan", json=body) as resp:
                assert resp.status == 200
                if "stall_at" not in knobs:
                    assert (await resp.content.readline()).startswith(b"data: ")
        async with asyncio.timeout(2):
            await watch.seen.wait()
    finally:
        logging.getLogger("mock_scanner").removeHandler(watch)
        await runner.cleanup()


async def test_shutdown_ends_stalled_stream() -> None:
    runner, base = await _start_server()
    loop = asyncio.get_running_loop()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/scan", json=scan_body(stall_at=50)) as resp,
    ):
        assert (await resp.content.readline()).startswith(b"data: ")
        start = loop.time()
        await runner.cleanup()
        assert loop.time() - start < 2
        rest = await resp.content.read()
    assert b"completed" not in rest


# --- scenario -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 6, 7, 8, 20, 99])
def test_progress_steps(kind: str, steps: int) -> None:
    result = scenario.progress_steps(kind, steps, "owner/repo")
    assert len(result) == steps
    percents = [percent for _, percent, _ in result]
    assert all(b > a for a, b in itertools.pairwise(percents))
    assert all(0 < p < 100 for p in percents)
    assert all(status in RUNNING for status, _, _ in result)
    assert all(isinstance(message, str) and message.endswith("...") for _, _, message in result)
    assert result == scenario.progress_steps(kind, steps, "owner/repo")  # deterministic


@pytest.mark.parametrize("kind", KINDS)
def test_progress_steps_phases_in_order(kind: str) -> None:
    statuses = [status for status, _, _ in scenario.progress_steps(kind, 12, "owner/repo")]
    order = ["initializing", "cloning", "analyzing", "scanning", "processing", "saving"]
    assert statuses == sorted(statuses, key=order.index)
    assert statuses[0] == "initializing"
    assert statuses[-1] == "saving"
    assert "scanning" in statuses
    if kind != "dast_scanner":
        assert ("cloning", "Cloning owner/repo...") in [
            (s, m) for s, _, m in scenario.progress_steps(kind, 12, "owner/repo")
        ]


def test_progress_steps_many_steps() -> None:
    percents = [p for _, p, _ in scenario.progress_steps("secret_scanner", 1000)]
    assert len(percents) == 1000
    assert percents == sorted(percents)
    assert percents[0] >= 0
    assert percents[-1] < 100


def test_progress_steps_default_repository_and_messages() -> None:
    messages = [m for _, _, m in scenario.progress_steps("secret_scanner", 8, "octo/shop")]
    assert "Cloning octo/shop..." in messages
    assert any("files for secrets" in m for m in messages)


def test_progress_steps_rejects_unknown_kind_and_bad_steps() -> None:
    with pytest.raises(ValueError, match="secret_scanner, sast_scanner, llm_scanner, dast_scanner"):
        scenario.progress_steps("zap", 8)
    with pytest.raises(ValueError, match="steps"):
        scenario.progress_steps("secret_scanner", 0)


@pytest.mark.parametrize("kind", KINDS)
def test_findings(kind: str) -> None:
    found = scenario.findings(kind, REPO)
    assert 2 <= len(found) <= 4
    assert all(isinstance(item, dict) and item.get("severity") for item in found)
    json.dumps(found)
    found[0]["mutated"] = True
    assert "mutated" not in scenario.findings(kind, REPO)[0]


def test_findings_shapes_vary_by_kind() -> None:
    secret = scenario.findings("secret_scanner", REPO)[0]
    assert secret["line"] == [12, 12]
    assert secret["severity"] == "HIGH"
    assert "rule_id" in secret
    sast = scenario.findings("sast_scanner", REPO)
    assert sast[0]["cwe"] == "CWE-89"
    assert sast[0]["severity"] == "critical"
    assert {"check_id", "file_path", "line_number", "column", "code_snippet", "remediation"} <= set(
        sast[0]
    )
    assert any(item["severity"] == "Medium" for item in sast)
    llm = scenario.findings("llm_scanner", REPO)
    assert llm[0]["confidence"] == 0.82
    assert {item["severity"] for item in llm} == {"moderate", "info"}
    dast = scenario.findings("dast_scanner", REPO)
    assert all(isinstance(item["cwe"], int) for item in dast)
    assert any(item["severity"] == "Low" for item in dast)
    assert dast[0]["url"].startswith("https://webshop.")


def test_findings_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="dast_scanner"):
        scenario.findings("zap", REPO)


# --- configuration and command line ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": 0},
        {"steps": 1001},
        {"step_delay": -0.1},
        {"step_delay": 31.0},
        {"default_kind": "zap"},
        {"max_recorded_requests": 0},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be"):
        MockScannerConfig(**kwargs)


def test_config_defaults() -> None:
    config = MockScannerConfig()
    assert (config.step_delay, config.steps, config.max_steps, config.max_step_delay) == (
        0.5,
        8,
        1000,
        30.0,
    )


def test_main_rejects_bad_step_delay(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--step-delay", "-1"])
    assert "step_delay" in capsys.readouterr().err
