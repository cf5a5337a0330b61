"""The mock scanner's HTTP application.

Routes
------
``POST /scan``
    Start a scan. The kind comes from the body's optional ``"scanner"`` field, else the query's
    ``?kind=``, else the configured default (``secret_scanner``).
``POST /scanners/{kind}/scan``
    The same with the kind in the path (which wins over body and query), so each scanner can be
    given its own full URL, e.g. ``http://127.0.0.1:8001/scanners/sast_scanner/scan``.
``GET /healthz``
    ``200 {"status": "ok"}``.
``GET /requests``
    A JSON list with one ``{"scan_id", "kind", "received_at"}`` per scan POST received, valid or
    not (``null`` where the body did not say), oldest first; ``closed_at`` is added once a
    streamed answer has ended, however it ended.
``POST /bench/{scan_id}/publish``
    Bench mode (see the ``bench`` knob): the body, one JSON object, goes out at once on that
    scan's open stream as ``{"status": "scanning", "progress_percent": 1, ...its fields...}``.
    ``204`` when queued; ``404 {"error": "not_found", ...}`` when no bench stream of that scan
    is open; ``400`` when the body is not a JSON object; ``503`` when the stream is too far
    behind (``BENCH_QUEUE_MAX`` frames waiting). Several scan ids, comma-separated (at most
    ``MAX_SPREAD``), spread one publisher over their streams: a payload goes to the one at its
    ``seq`` modulo their count (``400`` without an integer ``seq``), as a collection's scans.
``POST /bench/{scan_id}/finish``
    Bench mode: the stream sends a ``completed`` event (no findings) and ends. ``204``, or
    ``404`` as above.

The scan body is ``{"scan_id": str, "repository_name": str, "configurations": {}}``
(``configurations`` optional). A body that is not JSON, not an object, lacks a non-empty
``scan_id`` or ``repository_name``, has a ``configurations`` that is not an object, names an
unknown kind or holds a bad knob value gets ``400 {"error": code, "message": text}``.

Events
------
Progress: ``{"status": s, "progress_percent": p, "message": text}`` with ``s`` one of
initializing, cloning, analyzing, scanning, processing, saving and ``p`` below 100, increasing.
Last: ``{"status": "completed", "progress_percent": 100, "message": "Scan complete.",
"vulnerabilities": [...]}`` or, with ``fail_at``, ``{"status": "failed", "progress_percent": p,
"message": text, "error": text}``. SSE frames are ``data: <json>`` plus a blank line, with no
``event:`` or ``id:`` field.

Knobs
-----
All optional, read from ``configurations``; other keys there are ignored.

``step_delay`` (number >= 0, at most 30 s by default)
    Seconds before each event after the first (default 0.5).
``steps`` (int 1..1000)
    Progress events before the final one (default 8).
``fail_at`` (int 0..100)
    At the first event whose percent is >= N (the final event counts as 100), send a
    ``failed`` event with that percent instead and end the stream normally.
``drop_at`` (int 0..100)
    At the first event whose percent is >= N, close the connection with no terminal event: the
    chunked body never ends properly, so the client sees a payload error / early end.
``stall_at`` (int 0..100)
    At the first event whose percent is >= N, send nothing more (except heartbeats) until the
    client goes away or the server shuts down.
``heartbeat`` (number > 0)
    SSE only: send a ``: keep-alive`` comment every that many seconds while waiting between
    events or stalling.
``malformed`` (int 0..100)
    Send that many events that are not valid JSON (``data: {"status": "scanning", ... oops``),
    one after each of the first progress events; any left over go just before the last event.
    With ``format: json`` any value > 0 makes the body itself broken JSON.
``format`` ("sse" | "ndjson" | "json")
    ``sse`` (default) is ``text/event-stream``; ``ndjson`` is ``application/x-ndjson``, one JSON
    object per ``\\n``-terminated line, same timing; ``json`` waits through the same timing and
    answers one ``application/json`` body holding only the last event.
``progress_field`` ("progress_percent" | "progress")
    The key the percent is sent under, in every event.
``line_ending`` ("lf" | "crlf" | "cr")
    SSE only: the line terminator of every frame.
``status_code`` (int 400..599)
    Answer at once with that status and a short text body (e.g. 503 ``scanner overloaded``).
``content_type`` (non-empty string)
    Send this Content-Type instead of the format's own.
``bom`` (bool)
    Start the body with a UTF-8 byte order mark.
``bench`` (bool)
    Bench mode, for load tests: send one ``{"status": "scanning", "progress_percent": 1,
    "message": "bench"}`` event, then stay open and send whatever ``POST
    /bench/{scan_id}/publish`` receives, in order, until ``POST /bench/{scan_id}/finish``.
    Only ``heartbeat``, ``line_ending`` and ``bom`` apply with it (``format`` must be ``sse``);
    the other knobs are ignored. One open bench stream per scan id (a second POST gets
    ``409``).
``findings_of`` (a scanner kind)
    Report the findings a scanner of that kind reports (in its shape) instead of this kind's:
    two scanners then report the same findings, as two tools that find one bug alike do.
``stamp_emit`` (bool, with ``bench``)
    Set each published payload's ``t`` to the time the mock writes it to the stream
    (nanoseconds since the epoch, as the harness's publisher stamps it), so a subscriber's
    latency is measured from the scanner's emit rather than from the publish.

When several of ``drop_at``, ``stall_at`` and ``fail_at`` apply to the same event they are
checked in that order. A client that disconnects mid-stream ends the handler at its next write
or wait; with ``handler_cancellation`` the cancellation simply propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import hdrs, web

from mock_scanner import scenario
from mock_scanner.bench import BenchStreams
from mock_scanner.config import MockScannerConfig
from mock_scanner.knobs import Scan, error_response, parse_scan
from mock_scanner.stream import ScanStream

__all__ = ["create_app", "scan_finished"]

log = logging.getLogger("mock_scanner")

_STATUS_TEXTS: Final = {
    429: "scanner overloaded",
    500: "internal scanner error",
    502: "bad gateway",
    503: "scanner overloaded",
    504: "scanner timed out",
}


@dataclass
class _State:
    config: MockScannerConfig
    requests: deque[dict[str, Any]]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the handler serving a scan ends, however it ends (tests await these).
    finished: dict[str, asyncio.Event] = field(default_factory=dict)
    # The open bench-mode streams by scan id.
    bench: BenchStreams = field(default_factory=BenchStreams)


_STATE: Final = web.AppKey("mock_scanner_state", _State)


async def _run(request: web.Request, scan: Scan, stopping: asyncio.Event) -> web.StreamResponse:
    knobs = scan.knobs
    stream = ScanStream(request, scan, stopping)
    steps = scenario.progress_steps(scan.kind, knobs.steps, scan.repository_name)
    field_name = knobs.progress_field
    checkpoints: list[tuple[str, int, str]] = [
        *steps,
        ("completed", 100, scenario.COMPLETED_MESSAGE),
    ]
    malformed_left = knobs.malformed
    log.info(
        "scan %s: %s for %s (%d steps)", scan.scan_id, scan.kind, scan.repository_name, knobs.steps
    )

    def left(percent: int) -> web.StreamResponse:
        log.info(
            "scan %s: stream ended at %d%%: client gone or server stopping", scan.scan_id, percent
        )
        return stream.response or web.Response(status=499)

    if not await stream.start():
        return left(0)
    for index, (status, percent, message) in enumerate(checkpoints):
        if index > 0 and not await stream.wait(knobs.step_delay):
            return left(percent)
        if knobs.drop_at is not None and percent >= knobs.drop_at:
            log.info("scan %s: dropping the connection at %d%%", scan.scan_id, percent)
            stream.drop()
            return stream.response or web.Response(status=499)
        if knobs.stall_at is not None and percent >= knobs.stall_at:
            log.info("scan %s: stalling at %d%%", scan.scan_id, percent)
            await stream.wait(None)
            return left(percent)
        if knobs.fail_at is not None and percent >= knobs.fail_at:
            failed = {
                "status": "failed",
                field_name: percent,
                "message": f"Scan failed at {percent}%.",
                "error": f"simulated scanner failure (fail_at={knobs.fail_at})",
            }
            if not await stream.event(failed):
                return left(percent)
            break
        final = status == "completed"
        if final:
            while malformed_left > 0:
                malformed_left -= 1
                if not await stream.malformed("scanning", steps[-1][1]):
                    return left(percent)
        payload: dict[str, Any] = {"status": status, field_name: percent, "message": message}
        if final:
            reported = knobs.findings_of or scan.kind
            payload["vulnerabilities"] = scenario.findings(reported, scan.repository_name)
        if not await stream.event(payload):
            return left(percent)
        if not final and malformed_left > 0:
            malformed_left -= 1
            if not await stream.malformed(status, percent):
                return left(percent)
    assert stream.response is not None
    return stream.response


async def _scan(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    raw = await request.read()
    scan, error, entry = parse_scan(
        raw, request.match_info.get("kind"), request.query.get("kind"), state.config
    )
    state.requests.append(entry)
    if error is not None:
        return error_response(error)
    assert scan is not None
    knobs = scan.knobs
    if knobs.status_code is not None:
        text = _STATUS_TEXTS.get(knobs.status_code, "scanner error")
        response = web.Response(status=knobs.status_code, text=text)
        if knobs.content_type is not None:
            response.headers[hdrs.CONTENT_TYPE] = knobs.content_type
        return response
    if knobs.bench and scan.scan_id in state.bench:
        return web.json_response(
            {"error": "conflict", "message": f"scan {scan.scan_id!r} already has a bench stream"},
            status=409,
        )
    done = state.finished.setdefault(scan.scan_id, asyncio.Event())
    try:
        if knobs.bench:
            return await state.bench.serve(request, scan, state.stopping)
        return await _run(request, scan, state.stopping)
    finally:
        entry["closed_at"] = datetime.now(UTC).isoformat()
        done.set()


def scan_finished(app: web.Application, scan_id: str) -> asyncio.Event:
    """An event set once the scanner has stopped serving ``scan_id`` (its connection closed)."""
    return app[_STATE].finished.setdefault(scan_id, asyncio.Event())


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _requests(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[_STATE].requests))


def create_app(config: MockScannerConfig | None = None) -> web.Application:
    """A fresh mock scanner application; each one has its own request log."""
    config = config or MockScannerConfig()
    app = web.Application()
    state = _State(config=config, requests=deque(maxlen=config.max_recorded_requests))
    app[_STATE] = state

    async def on_shutdown(_app: web.Application) -> None:
        # Lets stalled and waiting handlers end instead of holding up the shutdown.
        state.stopping.set()

    app.on_shutdown.append(on_shutdown)
    app.router.add_post("/scan", _scan)
    app.router.add_post("/scanners/{kind}/scan", _scan)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/requests", _requests)
    state.bench.add_routes(app.router)
    return app
