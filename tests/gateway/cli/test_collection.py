"""``scan --scanners``/``--all`` and ``watch --collection`` against a real gateway and mock
scanner on 127.0.0.1: the lines a CI log gets, the bars a terminal gets, ``--json``, a stream
dropped mid-run, how each ending exits. The gate (``--fail-on``, ``--sarif``, ``--baseline``)
is ``test_gate``.

The cli functions run in-process on a rich Console over a StringIO; ``python -m gateway`` runs
as a subprocess where the argument parsing is the point. Nothing waits on a timer: the tests
wait for what the client has printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from gateway import cli
from gateway.cli.findings import table_row
from gateway.domain.collections import log_id
from gateway.domain.models import SEVERITIES
from tests.helpers import (
    SCANNERS,
    Lines,
    ask_streams_to_reconnect,
    auth,
    collection_events,
    console,
    console_json,
    console_text,
    start_collection,
    token,
)

COLLECTIONS = "/api/v1/scan-collections"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LABEL = re.compile(r"^(?:\[reset\] )?\s*(\d+)  ")


def options(client: Any, **overrides: Any) -> cli.Options:
    values: dict[str, Any] = {
        "url": str(client.server.make_url("")),
        "token": token("alice"),
        "retry_ms": 10,
    }
    return cli.Options(**{**values, **overrides})


async def run(
    client: Any,
    command: cli.CollectionCommand,
    out: Any = None,
    *,
    errors: Any = None,
    gate: cli.Gate | None = None,
    **overrides: Any,
) -> tuple[int, Any, Any]:
    out = out or console(width=200)
    errors = errors or console()
    async with cli.open_session() as session:
        settings = options(client, **overrides)
        code = await cli.scan_collection(session, out, settings, command, errors=errors, gate=gate)
    return code, out, errors


async def results(client: Any, collection_id: str) -> list[dict[str, Any]]:
    """Every merged finding of an ended collection, page after page."""
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        path = f"{COLLECTIONS}/{collection_id}/results?cursor={cursor}"
        response = await client.get(path, headers=auth())
        assert response.status == 200, await response.text()
        data = (await response.json())["data"]
        found += data["vulnerabilities"]
        if data["next_cursor"] is None:
            return found
        cursor = data["next_cursor"]


def labels(output: str) -> list[int]:
    """The event ids at the start of the printed lines, in order."""
    return [int(match[1]) for line in output.splitlines() if (match := _LABEL.match(line))]


def command(*scanners: str, **values: Any) -> cli.CollectionCommand:
    return cli.CollectionCommand("acme/web", scanners=scanners, watch=True, **values)


# --- what a CI log gets --------------------------------------------------------------------------


async def test_a_collection_in_a_ci_log_one_line_per_event_then_the_findings_table(client):
    code, out, errors = await run(client, command("secret_scanner", "sast_scanner"))
    output = console_text(out)
    assert code == cli.EXIT_COMPLETED == 0, console_text(errors) + output
    collection_id = output.splitlines()[0]
    # no redraw: no carriage return, no cursor movement, nothing printed twice
    assert "\r" not in output and "\x1b" not in output
    events = await collection_events(client, collection_id)
    assert labels(output) == [seq for seq, _ in events]
    for seq, data in events:
        scan = data["scan"]
        assert re.search(rf"^\s*{seq}  {scan['scanner_name']}\s+{scan['status']}", output, re.M)
        if data["findings"]:
            line = next(line for line in output.splitlines() if labels(line) == [seq])
            assert f"+{len(data['findings'])} finding" in line
    last = events[-1][1]
    assert last["collection"]["status"] == "completed"
    assert f"Collection {collection_id} completed" in output
    # each scanner's outcome, then the merged findings: severity, file:line, rule, title
    assert "Scanners" in output and "secret_scanner" in output
    merged = await results(client, collection_id)
    assert len(merged) > 3
    for finding in merged:
        row = table_row(finding)
        pattern = r"\s+│\s+".join(
            re.escape(row[key]) for key in ("severity", "location", "rule", "title")
        )
        assert re.search(pattern, output), (row, output)
    total = last["summary"]["total"]
    assert total == len(merged)
    by_severity = last["summary"]["by_severity"]
    counts = ", ".join(f"{by_severity.get(name, 0)} {name}" for name in SEVERITIES)
    assert f"{total} findings: {counts}." in output


def test_a_findings_row_reads_the_finding_as_sarif_does():
    row = table_row(
        {
            "severity": "HIGH",
            "file_path": "file:///src/app/./db/../queries.py",
            "line": [88, 90],
            "type": "sql-injection",
            "title": "SQL built from input",
        }
    )
    assert row == {
        "severity": "high",
        "location": "src/app/queries.py:88 (also 90)",
        "rule": "sql-injection",
        "title": "SQL built from input",
    }
    assert table_row({"severity": "whatever", "title": 3})["location"] == "-"
    assert table_row({"line": "7"})["location"] == "line 7"
    assert table_row({"file_path": "a.py"})["location"] == "a.py"


def test_a_findings_row_names_the_other_lines_and_counts_past_five():
    assert table_row({"file_path": "a.py", "line": 3, "related_lines": [9, 4]})["location"] == (
        "a.py:3 (also 4, 9)"
    )
    many = table_row({"file_path": "a.py", "line": "10-30"})["location"]
    assert many == "a.py:10 (also 11, 12, 13, 14, 15 and 15 more)"


async def test_all_asks_for_every_scanner_the_gateway_has(client):
    code, out, errors = await run(client, cli.CollectionCommand("acme/web", watch=False))
    assert code == 0, console_text(errors)
    collection_id = console_text(out).strip()
    response = await client.get(f"{COLLECTIONS}/{collection_id}", headers=auth())
    assert (await response.json())["data"]["scanners"] == sorted(SCANNERS)
    await collection_events(client, collection_id)


async def test_on_a_terminal_a_bar_per_scanner_and_one_for_the_whole(client):
    out = console(terminal=True, width=160)
    code, out, _ = await run(client, command("llm_scanner", "dast_scanner"), out)
    output = _ANSI.sub("", console_text(out))
    assert code == 0, output
    # the live display's last frame: both scanners and the whole, each done at 100%
    for name in ("llm_scanner", "dast_scanner", "all"):
        assert re.search(rf"✓ {name}\s+completed\s.*100%", output), output
    assert re.search(r"✓ all\s+completed\s.*100%.*2 of 2 scanners ended", output), output


# --- --json --------------------------------------------------------------------------------------


async def test_json_lines_every_event_every_merged_finding_then_the_summary(gateway):
    client = await gateway(findings={"page_size": 2})  # results and events come a page at a time
    code, out, errors = await run(client, command(*SCANNERS), json=True)
    assert code == 0, console_text(errors)
    lines = console_json(out)  # every line is JSON: no bar, no table
    created, *rest, summary = lines
    collection_id = created["data"]["collection_id"]
    assert created["event"] == "created" and created["data"]["scan_ids"]
    events = [(line["id"], line["data"]) for line in rest if line["event"] == "message"]
    assert events == await collection_events(client, collection_id)
    findings = [line["data"] for line in rest if line["event"] == "finding"]
    assert findings == await results(client, collection_id)
    assert summary["event"] == "summary"
    assert summary["data"]["status"] == "completed" and summary["data"]["exit_code"] == 0
    assert summary["data"]["findings"] == len(findings)
    assert summary["data"]["summary"] == events[-1][1]["summary"]
    assert [scan["scanner_name"] for scan in summary["data"]["scans"]] == list(SCANNERS)


# --- a dropped stream ----------------------------------------------------------------------------


@pytest.mark.parametrize("json_mode", [True, False])
async def test_a_stream_dropped_mid_run_resumes_without_a_duplicate_or_a_gap(gateway, json_mode):
    client = await gateway(
        mock={"step_delay_seconds": 0.05, "steps": 6},
        stream={"retry_ms": 10, "reconnect_spread_ms": 0},
    )
    collection: dict[str, str] = {}
    dropped: list[int] = []

    def on_line(line: str) -> None:
        if json_mode:
            payload = json.loads(line)
            if payload["event"] == "created":
                collection["id"] = payload["data"]["collection_id"]
            seen = [payload["id"]] if payload["event"] == "message" else []
        elif not collection:  # the first line: the id of the collection it started
            collection["id"] = line.strip()
            return
        else:
            seen = labels(line)
        if not dropped and seen == [3]:
            # Right after the client got event 3: the gateway ends the stream with a retry
            # hint, as at shutdown; the collection goes on.
            ask_streams_to_reconnect(client.app, log_id(collection["id"]))
            dropped.append(3)

    out, errors = console(Lines(on_line), width=200), console()
    code, out, errors = await run(
        client, command("secret_scanner", "llm_scanner"), out, errors=errors, json=json_mode
    )
    assert code == 0, console_text(errors)
    assert dropped == [3]
    # (events that came in the same read as event 3 were already taken)
    resumed = re.search(
        r"reconnecting in 0\.01s after event (\d+)", console_text(errors if json_mode else out)
    )
    assert resumed is not None and int(resumed[1]) >= 3
    stored = [seq for seq, _ in await collection_events(client, collection["id"])]
    assert stored[-1] > 3
    if json_mode:
        printed = [line["id"] for line in console_json(out) if line["event"] == "message"]
    else:
        printed = labels(console_text(out))
    assert printed == stored


# --- how it ends ---------------------------------------------------------------------------------


async def test_a_failed_collection_exits_1_and_still_shows_the_others_findings(client):
    configurations = {"per_scanner": {"sast_scanner": {"fail_at": 40}}}
    wanted = command("secret_scanner", "sast_scanner", use_sse=True, configurations=configurations)
    code, out, _ = await run(client, wanted)
    output = console_text(out)
    assert code == cli.EXIT_FAILED == 1, output
    collection_id = output.splitlines()[0]
    assert f"Collection {collection_id} failed" in output
    assert re.search(r"sast_scanner\s+│\s+failed\s+│.*simulated scanner failure", output)
    merged = await results(client, collection_id)
    assert merged and all(finding["reported_by"] == ["secret_scanner"] for finding in merged)
    for finding in merged:
        assert table_row(finding)["title"] in output


async def test_a_collection_cancelled_while_watching_exits_2(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})  # waits after "connecting"
    created = await start_collection(client, scanners=("secret_scanner",), use_sse=False)
    collection_id = created["collection_id"]
    connecting = asyncio.Event()

    def seen(line: str) -> None:
        if "connecting" in line:
            connecting.set()

    out = console(Lines(seen))

    async def follow() -> int:
        async with cli.open_session() as session:
            return await cli.watch_collection(session, out, options(client), collection_id)

    watcher = asyncio.create_task(follow())
    await asyncio.wait_for(connecting.wait(), 10)
    response = await client.delete(f"{COLLECTIONS}/{collection_id}", headers=auth())
    assert response.status == 200
    code = await asyncio.wait_for(watcher, 15)
    assert code == cli.EXIT_CANCELLED == 2, console_text(out)
    assert f"Collection {collection_id} cancelled" in console_text(out)


async def test_watching_an_ended_collection_after_its_last_event_reads_it_and_exits(client):
    created = await start_collection(client, scanners=("dast_scanner",))
    events = await collection_events(client, created["collection_id"])
    async with cli.open_session() as session:
        out = console(width=200)
        code = await cli.watch_collection(
            session, out, options(client), created["collection_id"], last_event_id=str(len(events))
        )
    assert code == 0, console_text(out)
    assert "The stream has already ended; reading the collection." in console_text(out)
    assert labels(console_text(out)) == []  # no event: the findings only
    for finding in await results(client, created["collection_id"]):
        assert table_row(finding)["title"] in console_text(out)


async def test_an_unknown_scanner_is_the_apis_refusal_exit_4(client):
    code, out, errors = await run(client, command("secret_scanner", "nope_scanner"))
    assert code == cli.EXIT_ERROR == 4
    assert console_text(out) == ""
    assert "nope_scanner" in console_text(errors) and "(HTTP 400)" in console_text(errors)


async def test_a_refused_token_exits_3_and_an_unknown_collection_4(client):
    bad = token("alice", secret="another-secret-" + "x" * 40)
    code, _, errors = await run(client, command("secret_scanner"), token=bad)
    assert code == cli.EXIT_AUTH == 3
    assert "token signature is invalid (HTTP 401)" in console_text(errors)
    async with cli.open_session() as session:
        out = console()
        code = await cli.watch_collection(session, out, options(client), "no-such-collection")
    assert code == cli.EXIT_ERROR
    assert "(HTTP 404)" in console_text(out)


async def test_an_unreachable_gateway_exits_5(unused_tcp_port):
    settings = cli.Options(url=f"http://127.0.0.1:{unused_tcp_port}", token="t")
    out = console()
    async with cli.open_session() as session:
        code = await cli.scan_collection(session, out, settings, command("secret_scanner"))
    assert code == cli.EXIT_UNREACHABLE == 5
    assert f"cannot reach the gateway at http://127.0.0.1:{unused_tcp_port}" in console_text(out)


async def test_an_expired_token_says_how_to_resume_the_collection(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    created = await start_collection(client, scanners=("secret_scanner",), use_sse=False)
    collection_id = created["collection_id"]
    errors = console()
    settings = options(client, token=token(ttl=3), json=True)
    async with cli.open_session() as session:
        code = await cli.watch_collection(
            session, console(), settings, collection_id, errors=errors
        )
    assert code == cli.EXIT_AUTH_EXPIRED
    resume = f"python -m gateway watch --collection {collection_id} --last-event-id "
    assert resume in console_text(errors)
    await client.delete(f"{COLLECTIONS}/{collection_id}", headers=auth())


# --- the real command ----------------------------------------------------------------------------


async def python_m_gateway(client: Any, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "XPLOYT_TOKEN": token("alice"),
        "XPLOYT_URL": str(client.server.make_url("")),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_python_m_gateway_scan_scanners_watch(client):
    code, stdout, stderr = await python_m_gateway(
        client,
        "scan",
        "--scanners",
        "secret_scanner, dast_scanner",
        "--repo",
        "acme/web",
        "--watch",
    )
    assert code == 0, stderr
    collection_id = stdout.splitlines()[0]
    events = await collection_events(client, collection_id)
    assert labels(stdout) == [seq for seq, _ in events]
    assert "Findings" in stdout and "\r" not in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scanners", " , "], "--scanners needs at least one scanner name"),
        (["--scanner", "a", "--all"], "not allowed with argument"),
        (["--all", "--fail-on", "severe", "--watch"], "invalid choice: 'severe'"),
        (["--all", "--fail-on", "high"], "need --watch"),
        (["--all", "--watch", "--baseline", "../x"], "--baseline must be a scan or collection"),
        (["--all", "--watch", "--max-rows", "-1"], "--max-rows must be between"),
    ],
)
async def test_bad_usage_exits_4(client, args, message):
    code, stdout, stderr = await python_m_gateway(client, "scan", "--repo", "acme/web", *args)
    assert code == cli.EXIT_ERROR == 4, stderr
    assert message in stderr
    assert stdout == ""  # nothing started
    response = await client.get(COLLECTIONS, headers=auth())
    assert (await response.json())["data"] == []


async def test_control_characters_from_the_gateway_never_reach_the_terminal(aiohttp_server):
    """Scanner names, texts, errors and findings are the scanners' words: none of their escape
    sequences reaches the terminal, in lines, bars, tables or JSON."""
    nasty = "Cloning\x1b]52;c;cm0gLXJmIC8=\x07 repo\x1b[2J\u009b31m"
    finding = {"title": nasty, "severity": "high", "file_path": nasty, "type": nasty}

    async def collection(_request: web.Request) -> web.Response:
        data = {"id": "c", "repository_name": nasty, "scanners": [nasty]}
        return web.json_response({"success": True, "data": data})

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for seq, status in ((1, "running"), (2, "failed")):
            scan = {
                "scanner_name": nasty,
                "status": "failed",
                "progress_text": nasty,
                "error": nasty,
            }
            data = {
                "collection": {"status": status, "progress_percent": 50},
                "scan": scan,
                "findings": [finding],
            }
            await response.write(f"id: {seq}\ndata: {json.dumps(data)}\n\n".encode())
        return response

    async def results(_request: web.Request) -> web.Response:
        outcome = {"scanner_name": nasty, "status": "failed", "error": nasty, "findings": 1}
        page = {
            "collection_id": nasty,
            "status": "failed",
            "vulnerabilities": [{**finding, "reported_by": [nasty]}],
            "summary": {"total": 1, "by_severity": {"high": 1}},
            "total_findings": 1,
            "scans": [outcome],
            "next_cursor": None,
        }
        return web.json_response({"success": True, "data": page})

    app = web.Application()
    app.router.add_get(f"{COLLECTIONS}/c", collection)
    app.router.add_get(f"{COLLECTIONS}/c/stream", events)
    app.router.add_get(f"{COLLECTIONS}/c/results", results)
    server = await aiohttp_server(app)
    settings = cli.Options(url=str(server.make_url("")), token="t")
    for terminal, json_mode in ((False, False), (True, False), (False, True)):
        out = console(terminal=terminal, width=200)
        async with cli.open_session() as session:
            code = await cli.watch_collection(
                session, out, replace(settings, json=json_mode), "c", errors=out
            )
        assert code == cli.EXIT_FAILED
        output = console_text(out)
        assert "Cloning" in output
        # (rich's own styling uses ESC; the scanners' sequences are neutralised or escaped)
        for sequence in ("\x1b]52;", "\x07", "\x9b", "\u009b", "\x1b[2J"):
            assert sequence not in output, (terminal, json_mode)
