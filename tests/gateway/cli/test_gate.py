"""The CI gate against a real gateway and mock scanner: ``--fail-on`` at and below what was
found, ``--baseline`` (only new findings count), ``--sarif`` (the file validates against the
SARIF 2.1.0 schema and what code scanning needs), for a scan and a collection; and which exit
code wins when several apply. The expected verdicts come from the gateway's own results."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import pytest
from aiohttp import web

from gateway import cli
from gateway.cli.gate import Gate, Report
from gateway.domain.models import SEVERITIES
from tests.helpers import (
    assert_valid_sarif,
    auth,
    collection_events,
    console,
    console_text,
    start_collection,
    start_scan,
    stream,
    token,
)

COLLECTIONS = "/api/v1/scan-collections"
SCANS = "/api/v1/scans"


def options(client: Any, **overrides: Any) -> cli.Options:
    values: dict[str, Any] = {
        "url": str(client.server.make_url("")),
        "token": token("alice"),
        "retry_ms": 10,
    }
    return cli.Options(**{**values, **overrides})


async def watch(
    client: Any, ident: str, gate: Gate, *, collection: bool = False, **overrides: Any
) -> tuple[int, str]:
    """``watch`` (``--collection``) of an ended scan or collection: the exit code and output."""
    out, errors = console(width=220), console(width=220)
    async with cli.open_session() as session:
        settings = options(client, **overrides)
        follow = cli.watch_collection if collection else cli.watch
        code = await follow(session, out, settings, ident, gate=gate, errors=errors)
    return code, console_text(out) + console_text(errors)


async def ended_scan(client: Any, scanner: str, **values: Any) -> str:
    scan_id = await start_scan(client, scanner=scanner, **values)
    await stream(client, scan_id)
    return scan_id


async def ended_collection(client: Any, *scanners: str, **values: Any) -> str:
    created = await start_collection(client, scanners=scanners, **values)
    await collection_events(client, created["collection_id"])
    return str(created["collection_id"])


async def severities(client: Any, path: str) -> set[str]:
    """The severities of every finding the results route serves (first page: enough here)."""
    response = await client.get(f"{path}/results?limit=1000", headers=auth())
    assert response.status == 200, await response.text()
    return {finding["severity"] for finding in (await response.json())["data"]["vulnerabilities"]}


def tripped(found: set[str], threshold: str) -> bool:
    """A finding at or above ``threshold`` (``any``: any finding at all)."""
    if threshold == "any":
        return bool(found)
    return any(SEVERITIES.index(name) <= SEVERITIES.index(threshold) for name in found)


# --- --fail-on -----------------------------------------------------------------------------------


@pytest.mark.parametrize("collection", [False, True], ids=["scan", "collection"])
async def test_fail_on_exits_6_at_and_above_what_was_found_and_0_below(client, collection):
    # No critical finding in these: every threshold from critical down to any is tried.
    if collection:
        ident = await ended_collection(client, "llm_scanner", "dast_scanner")
        path = f"{COLLECTIONS}/{ident}"
    else:
        ident = await ended_scan(client, "dast_scanner")
        path = f"{SCANS}/{ident}"
    found = await severities(client, path)
    assert "critical" not in found and found
    outcomes = {}
    for threshold in cli.FAIL_ON_CHOICES:
        code, output = await watch(client, ident, Gate(fail_on=threshold), collection=collection)
        outcomes[threshold] = code
        if tripped(found, threshold):
            assert code == cli.EXIT_FINDINGS == 6, (threshold, output)
            assert f"--fail-on {threshold}: " in output and "(exit 6)" in output
        else:
            assert code == cli.EXIT_COMPLETED, (threshold, output)
            assert f"--fail-on {threshold}: no finding" in output
    # at the highest severity found it trips; one step above it does not
    highest = min(found, key=SEVERITIES.index)
    above = SEVERITIES[SEVERITIES.index(highest) - 1]
    assert outcomes[highest] == 6 and outcomes[above] == 0


async def test_the_table_lists_the_counted_findings_first_within_max_rows(client):
    ident = await ended_collection(client, "secret_scanner", "sast_scanner", "dast_scanner")
    code, output = await watch(client, ident, Gate(fail_on="high", rows=3), collection=True)
    assert code == 6
    marked = [line for line in output.splitlines() if "▶ " in line]
    assert 0 < len(marked) <= 3
    assert all(("critical" in line or "high" in line) for line in marked)
    assert "… and " in output and "more (--max-rows 3" in output


def test_any_counts_unknown_severities_and_info_does_not():
    unknown = {"severity": "whatever"}
    assert Gate(fail_on="any").counts(unknown)
    assert not Gate(fail_on="info").counts(unknown)
    assert Gate(fail_on="info").counts({"severity": "INFO"})
    assert not Gate(fail_on="high").counts({"severity": "medium"})
    assert Gate(fail_on="high").counts({"severity": "Critical"})
    assert not Gate().counts({"severity": "critical"})  # no --fail-on: nothing counts
    report = Report()
    for finding in ({"severity": "high"}, {"severity": "low"}, unknown):
        report.take(finding, Gate(fail_on="medium"))
    assert (report.total, report.failing, report.by_severity["unknown"]) == (3, 1, 1)


# --- --baseline ----------------------------------------------------------------------------------


@pytest.mark.parametrize("collection", [False, True], ids=["scan", "collection"])
async def test_with_a_baseline_only_new_findings_count(client, collection):
    if collection:
        same = [await ended_collection(client, "secret_scanner", "sast_scanner") for _ in "ab"]
        other = await ended_collection(client, "llm_scanner")
    else:
        same = [await ended_scan(client, "secret_scanner") for _ in "ab"]
        other = await ended_scan(client, "llm_scanner")
    before, after = same
    # the same findings again: none new, so even `any` passes
    code, output = await watch(
        client, after, Gate(fail_on="any", baseline=before), collection=collection
    )
    assert code == 0, output
    assert f"--fail-on any: no new since {before} finding" in output
    assert f"Against baseline {before}: 0 new," in output and " 0 fixed." in output
    # against other findings: every one is new, the baseline's are fixed
    code, output = await watch(
        client, after, Gate(fail_on="high", baseline=other), collection=collection
    )
    assert code == 6, output
    assert f"Against baseline {other}: " in output and " 0 unchanged," in output
    code, text = await watch(
        client, after, Gate(fail_on="high", baseline=other), collection=collection, json=True
    )
    lines = [json.loads(line) for line in text.splitlines()]
    summary = lines[-1]["data"]
    findings = [line["data"] for line in lines if line["event"] == "finding"]
    assert {finding["baseline_state"] for finding in findings} == {"new"}
    assert summary["exit_code"] == 6 and summary["baseline"] == other
    assert summary["new"] == len(findings) and summary["fixed"] > 0
    counted = [f for f in findings if f["severity"] in ("critical", "high")]
    assert summary["failing"] == len(counted) > 0


async def test_an_unknown_baseline_is_the_apis_refusal(client):
    ident = await ended_scan(client, "secret_scanner")
    code, output = await watch(client, ident, Gate(fail_on="high", baseline="no-such-scan"))
    assert code == cli.EXIT_ERROR == 4
    assert "(HTTP 404)" in output


# --- --sarif -------------------------------------------------------------------------------------


@pytest.mark.parametrize("collection", [False, True], ids=["scan", "collection"])
async def test_the_sarif_report_validates(client, tmp_path, collection):
    report = tmp_path / "out" / "report.sarif"
    report.parent.mkdir()
    if collection:
        ident = await ended_collection(client, "secret_scanner", "sast_scanner", "dast_scanner")
        names = ["dast_scanner", "sast_scanner", "secret_scanner"]
    else:
        ident = await ended_scan(client, "sast_scanner")
        names = ["sast_scanner"]
    code, output = await watch(client, ident, Gate(sarif=str(report)), collection=collection)
    assert code == 0, output
    document = json.loads(report.read_bytes())
    assert_valid_sarif(document)
    assert sorted(run["tool"]["driver"]["name"] for run in document["runs"]) == names
    assert f"SARIF report written to {report} ({report.stat().st_size} bytes)." in output
    assert [path.name for path in report.parent.iterdir()] == ["report.sarif"]  # no leftovers


async def test_a_sarif_report_against_a_baseline_says_each_results_state(client, tmp_path):
    before = await ended_collection(client, "secret_scanner")
    after = await ended_collection(client, "secret_scanner", "sast_scanner")
    report = tmp_path / "report.sarif"
    code, _ = await watch(client, after, Gate(sarif=str(report), baseline=before), collection=True)
    assert code == 0
    document = json.loads(report.read_bytes())
    assert_valid_sarif(document)
    states = {
        run["tool"]["driver"]["name"]: {r["baselineState"] for r in run["results"]}
        for run in document["runs"]
    }
    assert states == {"secret_scanner": {"unchanged"}, "sast_scanner": {"new"}}


async def test_a_failed_scan_has_no_report_and_exits_1(client, tmp_path):
    ident = await ended_scan(client, "secret_scanner", use_sse=True, configurations={"fail_at": 30})
    report = tmp_path / "report.sarif"
    code, output = await watch(client, ident, Gate(sarif=str(report), fail_on="any"))
    assert code == cli.EXIT_FAILED
    assert "no SARIF written: the scan has no results" in output
    assert not report.exists()


async def test_a_failed_collection_exits_1_with_its_report_though_findings_trip(client, tmp_path):
    configurations = {"per_scanner": {"sast_scanner": {"fail_at": 40}}}
    ident = await ended_collection(
        client, "secret_scanner", "sast_scanner", configurations=configurations
    )
    report = tmp_path / "report.sarif"
    code, output = await watch(
        client, ident, Gate(sarif=str(report), fail_on="high"), collection=True
    )
    assert code == cli.EXIT_FAILED == 1, output  # how it ended wins over the gate
    assert "(exit 1)" in output
    assert_valid_sarif(json.loads(report.read_bytes()))


async def test_a_sarif_answer_that_is_not_sarif_leaves_the_file_alone(aiohttp_server, tmp_path):
    """An answer that is not a SARIF log (a proxy's page) never replaces the file."""

    async def scan(_request: web.Request) -> web.Response:
        data = {"scan_id": "s", "status": "completed"}
        return web.json_response({"success": True, "data": data})

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'id: 1\ndata: {"status": "completed"}\n\n')
        return response

    async def results(request: web.Request) -> web.Response:
        if request.query.get("format") == "sarif":
            return web.Response(text="<html>sign in</html>", content_type="application/sarif+json")
        page = {"vulnerabilities": [], "summary": {}, "total_findings": 0, "next_cursor": None}
        return web.json_response({"success": True, "data": page})

    app = web.Application()
    app.router.add_get("/api/v1/scans/s", scan)
    app.router.add_get("/api/v1/scans/s/stream", events)
    app.router.add_get("/api/v1/scans/s/results", results)
    server = await aiohttp_server(app)
    report = tmp_path / "report.sarif"
    report.write_text("the previous report")
    out = console()
    settings = cli.Options(url=str(server.make_url("")), token="t")
    async with cli.open_session() as session:
        code = await cli.watch(session, out, settings, "s", gate=Gate(sarif=str(report)))
    assert code == cli.EXIT_ERROR
    assert "did not answer JSON" in console_text(out)
    assert report.read_text() == "the previous report"
    assert [path.name for path in tmp_path.iterdir()] == ["report.sarif"]


@pytest.mark.parametrize(
    ("path", "problem"),
    [("missing/report.sarif", "does not exist"), (".", "is a directory")],
)
def test_a_sarif_path_that_cannot_be_written_is_bad_usage(tmp_path, path, problem):
    with pytest.raises(cli.CliError, match=problem) as caught:
        Gate(sarif=str(tmp_path / path))
    assert caught.value.code == cli.EXIT_ERROR


# --- the real command: a CI job's exit codes ------------------------------------------------------


async def python_m_gateway(client: Any, *args: str, **kwargs: Any) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "XPLOYT_TOKEN": token("alice"),
        "XPLOYT_URL": str(client.server.make_url("")),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **kwargs,
    )


async def test_a_ci_job_fails_on_high_and_keeps_the_sarif(client, tmp_path):
    report = tmp_path / "xployt.sarif"
    process = await python_m_gateway(
        client,
        "scan",
        "--all",
        "--repo",
        "acme/web",
        "--watch",
        "--fail-on",
        "high",
        "--sarif",
        str(report),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == cli.EXIT_FINDINGS, stderr.decode()
    output = stdout.decode()
    assert "--fail-on high: " in output and "(exit 6)" in output
    assert_valid_sarif(json.loads(report.read_bytes()))


async def test_ctrl_c_exits_130_with_the_resume_command(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    created = await start_collection(client, scanners=("secret_scanner",), use_sse=False)
    collection_id = created["collection_id"]
    process = await python_m_gateway(client, "watch", "--collection", collection_id)
    assert process.stdout is not None
    while b"connecting" not in await asyncio.wait_for(process.stdout.readline(), 30):
        pass  # the client is reading the live stream
    process.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == cli.EXIT_INTERRUPTED == 130
    assert f"resume with: python -m gateway watch --collection {collection_id}" in stderr.decode()
    await client.delete(f"{COLLECTIONS}/{collection_id}", headers=auth())
