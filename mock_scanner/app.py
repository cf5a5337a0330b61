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
    behind (``BENCH_QUEUE_MAX`` frames waiting).
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
import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, NoReturn, cast

from aiohttp import ClientConnectionResetError, hdrs, web

from mock_scanner import scenario
from mock_scanner.config import MockScannerConfig

__all__ = ["create_app", "scan_finished"]

log = logging.getLogger("mock_scanner")

Format = Literal["sse", "ndjson", "json"]

_FORMATS: Final = ("sse", "ndjson", "json")
_PROGRESS_FIELDS: Final = ("progress_percent", "progress")
_LINE_ENDINGS: Final = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
_CONTENT_TYPES: Final = {
    "sse": "text/event-stream",
    "ndjson": "application/x-ndjson",
    "json": "application/json",
}
_STATUS_TEXTS: Final = {
    429: "scanner overloaded",
    500: "internal scanner error",
    502: "bad gateway",
    503: "scanner overloaded",
    504: "scanner timed out",
}
_BOM: Final = b"\xef\xbb\xbf"
_POLL_SECONDS: Final = 0.1
"""How often a waiting handler checks whether its client left or the server is stopping."""
_MIN_HEARTBEAT: Final = 0.01
_MAX_HEARTBEAT: Final = 3600.0
BENCH_QUEUE_MAX: Final = 100_000
"""Frames one bench stream may have waiting before ``publish`` answers 503."""
_BENCH_POLL_SECONDS: Final = 0.5
"""How often an idle bench stream checks whether its client left or the server is stopping."""
_BENCH_FIRST: Final = {"status": "scanning", "progress_percent": 1, "message": "bench"}
_BENCH_EVENT: Final = {"status": "scanning", "progress_percent": 1}
_BENCH_DONE: Final = {
    "status": "completed",
    "progress_percent": 100,
    "message": scenario.COMPLETED_MESSAGE,
    "vulnerabilities": [],
}


@dataclass
class _State:
    config: MockScannerConfig
    requests: deque[dict[str, Any]]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the handler serving a scan ends, however it ends (tests await these).
    finished: dict[str, asyncio.Event] = field(default_factory=dict)
    # The open bench-mode streams by scan id.
    bench: dict[str, _BenchChannel] = field(default_factory=dict)


_STATE: Final = web.AppKey("mock_scanner_state", _State)


class _BadRequest(Exception):
    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def _bad(error: str, message: str) -> NoReturn:
    raise _BadRequest(error, message)


@dataclass(frozen=True)
class _Knobs:
    step_delay: float
    steps: int
    fail_at: int | None = None
    drop_at: int | None = None
    stall_at: int | None = None
    heartbeat: float | None = None
    malformed: int = 0
    format: Format = "sse"
    progress_field: str = "progress_percent"
    line_ending: str = "\n"
    status_code: int | None = None
    content_type: str | None = None
    bom: bool = False
    bench: bool = False
    stamp_emit: bool = False


@dataclass(frozen=True)
class _Scan:
    scan_id: str
    repository_name: str
    kind: str
    knobs: _Knobs


def _int_knob(conf: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = conf.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _bad("invalid_configuration", f"configurations.{name} must be an integer in {low}..{high}")
    return value


def _float_knob(conf: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = conf.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        _bad("invalid_configuration", f"configurations.{name} must be a number in {low}..{high}")
    return float(value)


def _choice_knob(conf: dict[str, Any], name: str, choices: tuple[str, ...]) -> str | None:
    value = conf.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        _bad("invalid_configuration", f"configurations.{name} must be one of: {', '.join(choices)}")
    return value


def _parse_knobs(conf: dict[str, Any], config: MockScannerConfig) -> _Knobs:
    step_delay = _float_knob(conf, "step_delay", 0.0, config.max_step_delay)
    steps = _int_knob(conf, "steps", 1, config.max_steps)
    heartbeat = _float_knob(conf, "heartbeat", _MIN_HEARTBEAT, _MAX_HEARTBEAT)
    fmt = _choice_knob(conf, "format", _FORMATS)
    field_name = _choice_knob(conf, "progress_field", _PROGRESS_FIELDS)
    ending = _choice_knob(conf, "line_ending", tuple(_LINE_ENDINGS))
    content_type = conf.get("content_type")
    if content_type is not None and (
        not isinstance(content_type, str)
        or not content_type.strip()
        or len(content_type) > 200
        or not content_type.isprintable()
    ):
        _bad(
            "invalid_configuration",
            "configurations.content_type must be a non-empty printable string of at most 200 "
            "characters",
        )
    bom = conf.get("bom")
    if bom is not None and not isinstance(bom, bool):
        _bad("invalid_configuration", "configurations.bom must be true or false")
    bench = conf.get("bench")
    if bench is not None and not isinstance(bench, bool):
        _bad("invalid_configuration", "configurations.bench must be true or false")
    if bench and fmt not in (None, "sse"):
        _bad("invalid_configuration", "configurations.bench needs format sse")
    stamp_emit = conf.get("stamp_emit")
    if stamp_emit is not None and (not isinstance(stamp_emit, bool) or (stamp_emit and not bench)):
        _bad(
            "invalid_configuration",
            "configurations.stamp_emit must be a bool, true only with bench",
        )
    return _Knobs(
        step_delay=config.step_delay if step_delay is None else step_delay,
        steps=config.steps if steps is None else steps,
        fail_at=_int_knob(conf, "fail_at", 0, 100),
        drop_at=_int_knob(conf, "drop_at", 0, 100),
        stall_at=_int_knob(conf, "stall_at", 0, 100),
        heartbeat=heartbeat,
        malformed=_int_knob(conf, "malformed", 0, config.max_malformed) or 0,
        format=cast(Format, "sse" if fmt is None else fmt),
        progress_field="progress_percent" if field_name is None else field_name,
        line_ending=_LINE_ENDINGS["lf" if ending is None else ending],
        status_code=_int_knob(conf, "status_code", 400, 599),
        content_type=content_type,
        bom=bool(bom),
        bench=bool(bench),
        stamp_emit=bool(stamp_emit),
    )


def _parse_scan(
    raw: bytes, path_kind: str | None, query_kind: str | None, state: _State
) -> tuple[_Scan | None, _BadRequest | None, dict[str, Any]]:
    """The scan a request asks for, or what is wrong with it, and its ``/requests`` entry."""
    body: Any = None
    error: _BadRequest | None = None
    try:
        body = json.loads(raw)
    except ValueError:
        error = _BadRequest("invalid_json", "the request body is not valid JSON")
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    kind: Any = path_kind
    if kind is None:
        kind = fields.get("scanner", query_kind)
        if kind is None:
            kind = state.config.default_kind
    scan_id = fields.get("scan_id")
    entry = {
        "scan_id": scan_id if isinstance(scan_id, str) else None,
        "kind": kind if isinstance(kind, str) else None,
        "received_at": datetime.now(UTC).isoformat(),
    }
    if error is not None:
        return None, error, entry
    try:
        return _validate(body, kind, state.config), None, entry
    except _BadRequest as exc:
        return None, exc, entry


def _validate(body: Any, kind: Any, config: MockScannerConfig) -> _Scan:
    if not isinstance(body, dict):
        _bad("invalid_body", "the request body must be a JSON object")
    for name in ("scan_id", "repository_name"):
        value = body.get(name)
        if value is None:
            _bad("missing_field", f"{name} is required")
        if not isinstance(value, str) or not value.strip():
            _bad("invalid_field", f"{name} must be a non-empty string")
    conf = body.get("configurations")
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        _bad("invalid_field", "configurations must be a JSON object")
    if not isinstance(kind, str):
        _bad("invalid_field", "scanner must be a string")
    if kind not in scenario.SCANNER_KINDS:
        _bad(
            "unknown_scanner",
            f"unknown scanner kind {kind!r}; expected one of: {', '.join(scenario.SCANNER_KINDS)}",
        )
    return _Scan(body["scan_id"], body["repository_name"], kind, _parse_knobs(conf, config))


def _error_response(exc: _BadRequest) -> web.Response:
    return web.json_response({"error": exc.error, "message": exc.message}, status=400)


class _Stream:
    """Writes one scan's events in the requested format and notices a departed client."""

    def __init__(self, request: web.Request, scan: _Scan, stopping: asyncio.Event) -> None:
        self.request = request
        self.scan = scan
        self.knobs = scan.knobs
        self.stopping = stopping
        self.response: web.StreamResponse | None = None

    @property
    def content_type(self) -> str:
        return self.knobs.content_type or _CONTENT_TYPES[self.knobs.format]

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing() or self.stopping.is_set()

    async def start(self) -> bool:
        """Send the headers (and BOM) of a streamed answer; a JSON answer waits for its end."""
        if self.knobs.format == "json":
            return True
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: self.content_type,
                hdrs.CACHE_CONTROL: "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        self.response = response
        try:
            await response.prepare(self.request)
        except (ConnectionResetError, ClientConnectionResetError):
            return False
        return not self.knobs.bom or await self._write(_BOM)

    async def _write(self, data: bytes) -> bool:
        assert self.response is not None
        try:
            await self.response.write(data)
        except (ConnectionResetError, ClientConnectionResetError):
            return False
        return True

    def _frame(self, data: str) -> bytes:
        if self.knobs.format == "ndjson":
            return f"{data}\n".encode()
        eol = self.knobs.line_ending
        return f"data: {data}{eol}{eol}".encode()

    async def event(self, payload: dict[str, Any]) -> bool:
        """Send one event; the terminal event of a JSON answer becomes the whole body."""
        if self.knobs.format == "json":
            if payload["status"] in ("completed", "failed"):
                data = json.dumps(payload)
                if self.knobs.malformed:
                    data = data[: len(data) // 2] + " oops"
                body = (_BOM if self.knobs.bom else b"") + data.encode()
                self.response = web.Response(
                    body=body, headers={hdrs.CONTENT_TYPE: self.content_type}
                )
            return True
        return await self._write(self._frame(json.dumps(payload)))

    async def malformed(self, status: str, percent: int) -> bool:
        if self.knobs.format == "json":
            return True
        data = f'{{"status": "{status}", "{self.knobs.progress_field}": {percent}, oops'
        return await self._write(self._frame(data))

    async def wait(self, seconds: float | None) -> bool:
        """Wait ``seconds`` (``None``: until the client leaves), sending heartbeats if asked.

        Returns False as soon as the client is gone or the server is stopping.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = None if seconds is None else now + seconds
        beat = self.knobs.heartbeat if self.knobs.format == "sse" else None
        next_beat = None if beat is None else now + beat
        while True:
            if self.gone():
                return False
            now = loop.time()
            if deadline is not None and now >= deadline:
                await asyncio.sleep(0)  # stay fair to other connections even with no delay
                return not self.gone()
            if next_beat is not None and beat is not None and now >= next_beat:
                eol = self.knobs.line_ending
                if not await self._write(f": keep-alive{eol}{eol}".encode()):
                    return False
                next_beat = max(next_beat + beat, now)
            wake = now + _POLL_SECONDS
            if deadline is not None:
                wake = min(wake, deadline)
            if next_beat is not None:
                wake = min(wake, next_beat)
            await asyncio.sleep(max(0.0, wake - now))

    def drop(self) -> None:
        """End the connection without finishing the body (or without any answer at all)."""
        transport = self.request.transport
        if transport is not None:
            # close() flushes what was written, then closes: the chunked body never gets its
            # terminating chunk, so the client sees the payload end early.
            transport.close()


async def _run(request: web.Request, scan: _Scan, stopping: asyncio.Event) -> web.StreamResponse:
    knobs = scan.knobs
    stream = _Stream(request, scan, stopping)
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
            payload["vulnerabilities"] = scenario.findings(scan.kind, scan.repository_name)
        if not await stream.event(payload):
            return left(percent)
        if not final and malformed_left > 0:
            malformed_left -= 1
            if not await stream.malformed(status, percent):
                return left(percent)
    assert stream.response is not None
    return stream.response


class _BenchChannel:
    """What waits to go out on one open bench stream: frames, or payloads to stamp when they
    are written (``stamp_emit``); ``None`` asks it to finish."""

    def __init__(self, line_ending: str, stamp_emit: bool) -> None:
        self.queue: asyncio.Queue[bytes | dict[str, Any] | None] = asyncio.Queue()
        self.eol = line_ending
        self.stamp_emit = stamp_emit
        self.finishing = False

    def frame(self, payload: dict[str, Any]) -> bytes:
        eol = self.eol
        return f"data: {json.dumps(payload)}{eol}{eol}".encode()

    def queued(self, payload: dict[str, Any]) -> bytes | dict[str, Any]:
        return payload if self.stamp_emit else self.frame(payload)

    def written(self, item: bytes | dict[str, Any]) -> bytes:
        if isinstance(item, bytes):
            return item
        return self.frame({**item, "t": time.time_ns()})


async def _bench(request: web.Request, scan: _Scan, state: _State) -> web.StreamResponse:
    channel = _BenchChannel(scan.knobs.line_ending, scan.knobs.stamp_emit)
    state.bench[scan.scan_id] = channel
    try:
        return await _bench_stream(_Stream(request, scan, state.stopping), channel)
    finally:
        if state.bench.get(scan.scan_id) is channel:
            del state.bench[scan.scan_id]


async def _bench_stream(stream: _Stream, channel: _BenchChannel) -> web.StreamResponse:
    """The first event, then every published frame (batched when several wait), then the end."""
    scan_id = stream.scan.scan_id
    log.info("scan %s: bench mode, waiting for publishes", scan_id)

    def left() -> web.StreamResponse:
        log.info("scan %s: bench stream ended: client gone or server stopping", scan_id)
        return stream.response or web.Response(status=499)

    if not await stream.start() or not await stream.event(dict(_BENCH_FIRST)):
        return left()
    loop = asyncio.get_running_loop()
    beat = stream.knobs.heartbeat
    next_beat = None if beat is None else loop.time() + beat
    while True:
        wait = _BENCH_POLL_SECONDS
        if next_beat is not None:
            wait = max(0.0, min(wait, next_beat - loop.time()))
        item: bytes | dict[str, Any] | None
        try:
            async with asyncio.timeout(wait):
                item = await channel.queue.get()
        except TimeoutError:
            if stream.gone():
                return left()
            now = loop.time()
            if beat is not None and next_beat is not None and now >= next_beat:
                eol = channel.eol
                if not await stream._write(f": keep-alive{eol}{eol}".encode()):
                    return left()
                next_beat = max(next_beat + beat, now)
            continue
        frames: list[bytes] = []
        while item is not None:
            frames.append(channel.written(item))
            if channel.queue.empty():
                break
            item = channel.queue.get_nowait()
        finish = item is None
        if finish:
            frames.append(channel.frame(_BENCH_DONE))
        if not await stream._write(b"".join(frames)) or (not finish and stream.gone()):
            return left()
        if finish:
            log.info("scan %s: bench stream finished", scan_id)
            assert stream.response is not None
            return stream.response


def _no_bench_stream(scan_id: str) -> web.Response:
    return web.json_response(
        {"error": "not_found", "message": f"no open bench stream for scan {scan_id!r}"},
        status=404,
    )


async def _bench_publish(request: web.Request) -> web.Response:
    """Queue one payload on a bench stream; kept cheap, it runs at hundreds per second."""
    scan_id = request.match_info["scan_id"]
    channel = request.app[_STATE].bench.get(scan_id)
    if channel is None or channel.finishing:
        return _no_bench_stream(scan_id)
    try:
        payload = json.loads(await request.read())
    except ValueError:
        return _error_response(_BadRequest("invalid_json", "the request body is not valid JSON"))
    if not isinstance(payload, dict):
        return _error_response(_BadRequest("invalid_body", "the payload must be a JSON object"))
    if channel.queue.qsize() >= BENCH_QUEUE_MAX:
        return web.json_response(
            {"error": "overloaded", "message": f"{BENCH_QUEUE_MAX} frames already waiting"},
            status=503,
        )
    channel.queue.put_nowait(channel.queued({**_BENCH_EVENT, **payload}))
    return web.Response(status=204)


async def _bench_finish(request: web.Request) -> web.Response:
    """End a bench stream with a ``completed`` event, after what was published before."""
    scan_id = request.match_info["scan_id"]
    channel = request.app[_STATE].bench.get(scan_id)
    if channel is None or channel.finishing:
        return _no_bench_stream(scan_id)
    channel.finishing = True
    channel.queue.put_nowait(None)
    return web.Response(status=204)


async def _scan(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    raw = await request.read()
    scan, error, entry = _parse_scan(
        raw, request.match_info.get("kind"), request.query.get("kind"), state
    )
    state.requests.append(entry)
    if error is not None:
        return _error_response(error)
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
            return await _bench(request, scan, state)
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
    app.router.add_post("/bench/{scan_id}/publish", _bench_publish)
    app.router.add_post("/bench/{scan_id}/finish", _bench_finish)
    return app
