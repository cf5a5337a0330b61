"""The command-line client against a real gateway and mock scanner on 127.0.0.1.

The cli functions run in-process with a plain (non-terminal) rich Console on a StringIO; one
test runs ``python -m gateway`` as a subprocess. Nothing waits on a timer: the tests wait for
what the client has printed (a StringIO that signals on each line) or for the gateway's log.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jwt
import pytest
from aiohttp import web
from rich.console import Console

from gateway import cli
from gateway.config import config_from_dict
from gateway.http.appkeys import STORE
from gateway.http.auth import TokenVerifier
from tests.helpers import SECRET, ask_streams_to_reconnect, auth, start_scan, stream, token
from tests.keys import public_pem

SEVERITY_NAMES = ("critical", "high", "medium", "low", "info", "unknown")


class Lines(io.StringIO):
    """A console file that calls ``on_line`` with each complete line as it is written."""

    def __init__(self, on_line: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.on_line = on_line
        self._partial = ""

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.on_line is not None:
            *complete, self._partial = (self._partial + text).split("\n")
            for line in complete:
                self.on_line(line)
        return written


def console(file: io.StringIO | None = None) -> Console:
    return Console(file=file or io.StringIO(), force_terminal=False, width=100)


def text(target: Console) -> str:
    file = target.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def options(client: Any, **overrides: Any) -> cli.Options:
    values: dict[str, Any] = {
        "url": str(client.server.make_url("")),
        "token": token("alice"),
        "retry_ms": 10,
    }
    return cli.Options(**{**values, **overrides})


def json_lines(target: Console) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text(target).splitlines()]


def event_ids(lines: list[dict[str, Any]]) -> list[int]:
    return [line["id"] for line in lines if line["event"] in ("message", "reset")]


async def run_scan(client: Any, request: cli.ScanCommand, **overrides: Any) -> tuple[int, Console]:
    out = console()
    async with cli.open_session() as session:
        code = await cli.scan(session, out, options(client, **overrides), request)
    return code, out


async def run_watch(
    client: Any, scan_id: str, out: Console | None = None, **overrides: Any
) -> tuple[int, Console]:
    out = out or console()
    last = overrides.pop("last_event_id", None)
    errors = overrides.pop("errors", console() if overrides.get("json") else None)
    async with cli.open_session() as session:
        code = await cli.watch(
            session, out, options(client, **overrides), scan_id, last_event_id=last, errors=errors
        )
    return code, out


# --- outcomes and exit codes -------------------------------------------------------------------


async def test_scan_and_watch_in_mock_mode_completes_with_a_severity_summary(client):
    request = cli.ScanCommand("secret_scanner", "acme/web", watch=True)
    code, out = await run_scan(client, request)
    output = text(out)
    assert code == cli.EXIT_COMPLETED == 0, output
    scan_id = output.splitlines()[0]
    scan = await client.app[STORE].get_scan(scan_id)
    assert scan is not None and scan.status == "completed"
    # one line per event, then the bar at 100%, then the summary
    assert "pending" in output and "connecting" in output
    assert "100%" in output
    assert f"Scan {scan_id} completed:" in output
    assert "Findings by severity" in output
    for name in SEVERITY_NAMES:
        assert name in output
    results = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    count = len((await results.json())["data"]["vulnerabilities"])
    assert count > 0
    assert f"completed: {count} findings." in output


async def test_scan_without_watch_prints_the_id_or_the_created_json(client):
    code, out = await run_scan(client, cli.ScanCommand("secret_scanner", "acme/web"))
    assert code == 0
    scan_id = text(out).strip()
    assert (await client.app[STORE].get_scan(scan_id)) is not None
    code, out = await run_scan(client, cli.ScanCommand("sast_scanner", "acme/api"), json=True)
    assert code == 0
    [line] = json_lines(out)
    assert line["event"] == "created" and line["id"] is None
    assert line["data"]["status"] == "pending"
    assert line["data"]["stream_url"].endswith(f"/{line['data']['scan_id']}/stream")
    await stream(client, scan_id)
    await stream(client, line["data"]["scan_id"])


async def test_failing_sse_scan_exits_1_with_the_error(client):
    request = cli.ScanCommand(
        "secret_scanner",
        "acme/web",
        use_sse=True,
        configurations=cli.parse_configurations('{"fail_at": 50}'),
        watch=True,
    )
    code, out = await run_scan(client, request)
    output = text(out)
    assert code == cli.EXIT_FAILED == 1, output
    assert "failed: simulated scanner failure (fail_at=50)" in output
    assert "Findings by severity" not in output


async def test_scan_cancelled_while_watching_exits_2(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})  # waits after "connecting"
    scan_id = await start_scan(client)
    connecting = asyncio.Event()

    def seen(line: str) -> None:
        if "connecting" in line:
            connecting.set()

    out = console(Lines(seen))
    watcher = asyncio.create_task(run_watch(client, scan_id, out))
    await asyncio.wait_for(connecting.wait(), 10)  # the client is reading the live stream
    response = await client.delete(f"/api/v1/scans/{scan_id}", headers=auth())
    assert response.status == 200
    code, _ = await asyncio.wait_for(watcher, 10)
    output = text(out)
    assert code == cli.EXIT_CANCELLED == 2, output
    assert f"Scan {scan_id} was cancelled." in output


# --- --json ------------------------------------------------------------------------------------


async def test_json_lines_have_consecutive_ids_and_end_with_the_summary(client):
    request = cli.ScanCommand("llm_scanner", "acme/web", watch=True)
    code, out = await run_scan(client, request, json=True)
    assert code == 0
    lines = json_lines(out)  # every line is JSON: no bar, no table
    assert lines[0]["event"] == "created"
    events = [line for line in lines if line["event"] == "message"]
    ids = event_ids(lines)
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) >= 5
    assert events[0]["data"]["status"] == "pending"
    assert events[-1]["data"]["status"] == "completed"
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["id"] is None
    assert summary["data"]["status"] == "completed"
    assert summary["data"]["exit_code"] == 0
    assert summary["data"]["findings"] == sum(summary["data"]["summary"].values()) > 0
    assert set(summary["data"]["summary"]) == set(SEVERITY_NAMES)


async def test_resume_across_a_disconnect_repeats_and_skips_nothing(gateway):
    client = await gateway(
        mock={"step_delay_seconds": 0.1, "steps": 6},
        stream={"retry_ms": 10, "reconnect_spread_ms": 0},  # the hint exactly, for the check below
    )
    scan_id = await start_scan(client)
    dropped: list[int] = []

    def on_line(line: str) -> None:
        if not dropped and json.loads(line).get("id") == 3:
            # Mid-watch, right after the client got event 3: the gateway ends the stream with a
            # retry hint, as at shutdown. The scan goes on.
            ask_streams_to_reconnect(client.app, scan_id)
            dropped.append(3)

    out, errors = console(Lines(on_line)), console()
    code, _ = await run_watch(client, scan_id, out, json=True, errors=errors, retry_ms=5000)
    assert code == 0, text(errors)
    assert dropped == [3]
    lines = json_lines(out)
    ids = event_ids(lines)
    assert ids == list(range(1, len(ids) + 1))
    assert ids[-1] > 3
    stored = await client.app[STORE].events_after(scan_id, 0, limit=100)
    assert ids == [event.seq for event in stored]
    assert lines[-1]["event"] == "summary"
    # the reconnect waited the server's retry hint (10 ms), not the client's default
    assert "reconnecting in 0.01s after event 3" in text(errors)


# --- finished scans, 204, reset ------------------------------------------------------------------


async def test_watching_a_finished_scan_prints_its_events_and_exits_0(client):
    scan_id = await start_scan(client, scanner="dast_scanner")
    events = await stream(client, scan_id)
    code, out = await run_watch(client, scan_id)
    output = text(out)
    assert code == 0, output
    for seq, data in events:
        assert f"{seq:>4}  {data['status']}" in output
    assert "Findings by severity" in output
    code, out = await run_watch(client, scan_id, json=True)
    assert code == 0
    lines = json_lines(out)
    assert [(line["id"], line["data"]) for line in lines[:-1]] == events
    assert lines[-1]["data"]["status"] == "completed"


async def test_watch_after_the_final_id_gets_204_and_reports_the_final_status(client):
    scan_id = await start_scan(client)
    last = (await stream(client, scan_id))[-1][0]
    code, out = await run_watch(client, scan_id, last_event_id=str(last))
    output = text(out)
    assert code == 0, output
    assert "already ended" in output
    assert f"Scan {scan_id} completed:" in output
    assert "Findings by severity" in output
    code, out = await run_watch(client, scan_id, last_event_id=str(last), json=True)
    assert code == 0
    [line] = json_lines(out)  # no event: only the summary
    assert line["event"] == "summary" and line["data"]["status"] == "completed"


async def test_204_on_a_failed_scan_exits_1_with_its_error(client):
    scan_id = await start_scan(client, use_sse=True, configurations={"fail_at": 30})
    last = (await stream(client, scan_id))[-1][0]
    code, out = await run_watch(client, scan_id, last_event_id=str(last), json=True)
    assert code == 1
    [line] = json_lines(out)
    assert line["data"]["status"] == "failed"
    assert line["data"]["error"] == "simulated scanner failure (fail_at=30)"


async def test_unknown_last_event_id_adopts_the_reset_snapshot(client):
    scan_id = await start_scan(client)
    events = await stream(client, scan_id)
    code, out = await run_watch(client, scan_id, last_event_id="abc", json=True)
    assert code == 0
    reset, summary = json_lines(out)
    assert reset["event"] == "reset"
    assert reset["id"] == events[-1][0]
    assert reset["data"]["status"] == "completed"
    assert "unknown Last-Event-ID" in reset["data"]["reason"]
    assert summary["data"]["status"] == "completed"
    code, out = await run_watch(client, scan_id, last_event_id="abc")
    assert code == 0
    assert "[reset]" in text(out)


# --- errors ------------------------------------------------------------------------------------


async def test_bad_token_is_an_api_error(client):
    errors = console()
    out = console()
    bad = token("alice", secret="another-secret-" + "x" * 40)
    async with cli.open_session() as session:
        request = cli.ScanCommand("secret_scanner", "acme/web", watch=True)
        code = await cli.scan(session, out, options(client, token=bad), request, errors=errors)
        assert code == cli.EXIT_ERROR == 4
        assert "error: token signature is invalid (HTTP 401)" in text(errors)
        assert text(out) == ""
        minted = options(client, token=bad, token_minted=True)
        code = await cli.watch(session, out, minted, "some-scan", errors=errors)
        assert code == 4
        assert "not accept: pass --token or set XPLOYT_TOKEN" in text(errors)


async def test_api_errors_print_the_envelope_message(client):
    code, out = await run_scan(client, cli.ScanCommand("nope_scanner", "acme/web"))
    assert code == 4
    assert "error: " in text(out) and "nope_scanner" in text(out) and "(HTTP 400)" in text(out)
    code, out = await run_watch(client, "no-such-scan")
    assert code == 4
    assert "(HTTP 404)" in text(out)


async def test_expired_token_while_watching_exits_3(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    errors = console()
    # Valid for the first request and the stream, then the gateway ends it: auth_expired.
    code, out = await run_watch(client, scan_id, json=True, errors=errors, token=token(ttl=3))
    assert code == cli.EXIT_AUTH_EXPIRED == 3
    message = text(errors)
    assert "token expired" in message and "cannot refresh" in message
    assert f"python -m gateway watch {scan_id} --last-event-id 2 --token NEW_TOKEN" in message
    lines = json_lines(out)
    assert lines[-1]["event"] == "auth_expired"
    assert lines[-1]["data"]["last_event_id"] == 2
    await client.delete(f"/api/v1/scans/{scan_id}", headers=auth())


async def test_gives_up_after_max_attempts(aiohttp_server):
    """A stream that keeps answering 503: a bounded number of attempts, then exit 5."""
    attempts = []

    async def scan(_request: web.Request) -> web.Response:
        return web.json_response({"success": True, "data": {"scan_id": "s", "status": "scanning"}})

    async def broken(request: web.Request) -> web.Response:
        attempts.append(request.headers.get("Last-Event-ID"))
        return web.json_response({"success": False, "message": "overloaded"}, status=503)

    app = web.Application()
    app.router.add_get("/api/v1/scans/s", scan)
    app.router.add_get("/api/v1/scans/s/stream", broken)
    server = await aiohttp_server(app)
    out, errors = console(), console()
    settings = cli.Options(url=str(server.make_url("")), token="t", retry_ms=1, max_attempts=3)
    async with cli.open_session() as session:
        code = await cli.watch(session, out, settings, "s", last_event_id="7", errors=errors)
    assert code == cli.EXIT_UNREACHABLE == 5
    assert attempts == ["7", "7", "7"]
    assert "gave up watching scan s after 3 consecutive failed attempts" in text(errors)
    assert "overloaded (HTTP 503)" in text(errors)
    assert "python -m gateway watch s --last-event-id 7" in text(errors)


async def test_progress_resets_the_attempt_count_and_broken_streams_resume(aiohttp_server):
    """503, 503, an event then an abrupt close, 503, 503, the terminal event: never three
    failures in a row, so a limit of 3 is not reached; every reconnect resumes after event 1."""
    plan = ["503", "503", "event-then-drop", "503", "503", "terminal"]
    seen: list[str | None] = []

    async def scan(_request: web.Request) -> web.Response:
        return web.json_response({"success": True, "data": {"scan_id": "s", "status": "scanning"}})

    async def flaky(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Last-Event-ID"))
        step = plan[len(seen) - 1]
        if step == "503":
            return web.json_response({"success": False, "message": "busy"}, status=503)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if step == "event-then-drop":
            await response.write(b'retry: 1\n\nid: 1\ndata: {"status": "scanning"}\n\n')
            assert request.transport is not None
            request.transport.close()  # no terminating chunk: the client sees a broken body
            return response
        data = {"scan_id": "s", "status": "failed", "error": "boom"}
        await response.write(f"id: 2\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/api/v1/scans/s", scan)
    app.router.add_get("/api/v1/scans/s/stream", flaky)
    server = await aiohttp_server(app)
    out, errors = console(), console()
    settings = cli.Options(
        url=str(server.make_url("")), token="t", retry_ms=1, max_attempts=3, json=True
    )
    async with cli.open_session() as session:
        code = await cli.watch(session, out, settings, "s", errors=errors)
    assert code == cli.EXIT_FAILED, text(errors)
    assert seen == [None, None, None, "1", "1", "1"]
    assert event_ids(json_lines(out)) == [1, 2]
    assert json_lines(out)[-1]["data"]["error"] == "boom"
    # the count restarted after event 1 arrived, then the connection dropped
    assert (
        "the connection dropped mid-stream; reconnecting in 0.001s after event 1 (attempt 1/3)"
        in (text(errors))
    )
    assert "gave up" not in text(errors)


async def test_a_url_that_is_not_the_gateway_is_an_error(aiohttp_server):
    async def scan(_request: web.Request) -> web.Response:
        return web.json_response({"success": True, "data": {"scan_id": "s"}})

    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/api/v1/scans/s", scan)
    app.router.add_get("/api/v1/scans/s/stream", html)
    server = await aiohttp_server(app)
    out = console()
    settings = cli.Options(url=str(server.make_url("")), token="t")
    async with cli.open_session() as session:
        assert await cli.watch(session, out, settings, "s") == cli.EXIT_ERROR
    assert "answered text/html, not an event stream" in text(out)


async def test_control_characters_from_the_stream_never_reach_the_terminal(aiohttp_server):
    nasty = "Cloning\x1b]52;c;cm0gLXJmIC8=\x07 repo\x1b[2J\u009b31m"

    async def scan(_request: web.Request) -> web.Response:
        return web.json_response(
            {"success": True, "data": {"scan_id": "s", "repository_name": nasty}}
        )

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for seq, status in ((1, "cloning"), (2, "failed")):
            data = {"status": status, "progress_text": nasty, "error": nasty}
            await response.write(f"id: {seq}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/api/v1/scans/s", scan)
    app.router.add_get("/api/v1/scans/s/stream", events)
    server = await aiohttp_server(app)
    settings = cli.Options(url=str(server.make_url("")), token="t")
    for json_mode in (False, True):
        out = Console(file=io.StringIO(), force_terminal=True, width=100)
        async with cli.open_session() as session:
            code = await cli.watch(session, out, replace(settings, json=json_mode), "s")
        assert code == cli.EXIT_FAILED
        output = text(out)
        assert "Cloning" in output
        # (rich's own styling uses ESC; the scanner's sequences are neutralised or escaped)
        for sequence in ("\x1b]52;", "\x07", "\x9b", "\u009b", "\x1b[2J"):
            assert sequence not in output


async def test_an_already_expired_token_exits_3(client):
    now = int(time.time())
    expired = jwt.encode({"sub": "alice", "iat": now - 60, "exp": now - 30}, SECRET)
    code, out = await run_watch(client, "any-scan", token=expired)
    assert code == cli.EXIT_AUTH_EXPIRED
    assert "token has expired (HTTP 401)" in text(out)
    assert "cannot refresh a bearer token" in text(out)


async def test_unreachable_gateway_exits_5(unused_tcp_port):
    out = console()
    settings = cli.Options(url=f"http://127.0.0.1:{unused_tcp_port}", token="t")
    async with cli.open_session() as session:
        code = await cli.scan(session, out, settings, cli.ScanCommand("s", "a/b", watch=True))
    assert code == 5
    assert f"cannot reach the gateway at http://127.0.0.1:{unused_tcp_port}" in text(out)


# --- settings ----------------------------------------------------------------------------------


def test_url_and_token_defaults():
    config = config_from_dict({"server": {"port": 8123}, "jwt": {"secret": SECRET}})

    def load() -> Any:
        return config

    assert cli.resolve_url(None, {}, load) == "http://127.0.0.1:8123"
    assert cli.resolve_url(None, {"XPLOYT_URL": "http://gw:1"}, load) == "http://gw:1"
    assert cli.resolve_url("http://x:2", {"XPLOYT_URL": "http://gw:1"}, load) == "http://x:2"
    assert cli.resolve_token("t1", {"XPLOYT_TOKEN": "t2"}, load, "cli") == ("t1", False)
    assert cli.resolve_token(None, {"XPLOYT_TOKEN": "t2"}, load, "cli") == ("t2", False)
    minted, was_minted = cli.resolve_token(None, {}, load, "bob")
    assert was_minted
    assert asyncio.run(TokenVerifier(config.jwt).verify(minted)).subject == "bob"


def test_no_token_without_an_hmac_secret():
    config = config_from_dict(
        {"jwt": {"algorithms": ["ES256"], "public_key": public_pem("ec-p256")}}
    )
    with pytest.raises(cli.CliError, match="pass --token or set XPLOYT_TOKEN") as caught:
        cli.resolve_token(None, {}, lambda: config, "cli")
    assert caught.value.code == 4


@pytest.mark.parametrize("raw", ["[1]", "{nope", '"x"'])
def test_config_json_must_be_an_object(raw):
    with pytest.raises(cli.CliError, match="--config-json") as caught:
        cli.parse_configurations(raw)
    assert caught.value.code == 4


# --- the real command --------------------------------------------------------------------------


async def test_python_m_gateway_scan_watch_json(client):
    env = {
        **os.environ,
        "XPLOYT_TOKEN": token("alice"),
        "XPLOYT_URL": str(client.server.make_url("")),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "scan",
        "--scanner",
        "secret_scanner",
        "--repo",
        "acme/web",
        "--watch",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    assert lines[0]["event"] == "created"
    assert event_ids(lines) == list(range(1, len(lines) - 1))
    assert lines[-1]["event"] == "summary"
    assert lines[-1]["data"]["status"] == "completed"
    assert lines[-1]["data"]["findings"] > 0


async def test_python_m_gateway_usage_errors_exit_4(client):
    env = {**os.environ, "XPLOYT_TOKEN": token("alice")}
    for args in (["watch"], ["scan", "--scanner", "x", "--repo", "a/b", "--config-json", "[]"]):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 4, stderr.decode()
        assert b"error:" in stderr


async def test_the_summary_counts_every_finding_not_only_the_first_page(gateway):
    client = await gateway(findings={"page_size": 1})
    request = cli.ScanCommand("secret_scanner", "acme/web", watch=True)
    code, out = await run_scan(client, request, json=True)
    assert code == 0
    summary = json_lines(out)[-1]["data"]
    assert summary["findings"] == sum(summary["summary"].values()) > 1
    assert summary["findings_dropped"] == 0
    code, out = await run_scan(client, request)
    assert f"completed: {summary['findings']} findings." in text(out)


async def test_findings_the_gateway_dropped_are_said(gateway):
    client = await gateway(findings={"max_per_scan": 1})
    code, out = await run_scan(client, cli.ScanCommand("secret_scanner", "acme/web", watch=True))
    assert code == 0
    assert "completed: 1 finding." in text(out)
    assert "more findings were dropped: past the gateway's limits" in text(out)
