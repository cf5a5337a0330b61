"""The mock scanner's bench mode, for load tests (the ``bench`` knob).

A bench scan's stream sends one ``{"status": "scanning", "progress_percent": 1, "message":
"bench"}`` event, then stays open and sends whatever ``POST /bench/{scan_id}/publish``
receives, in order (several waiting payloads go out in one write), until ``POST
/bench/{scan_id}/finish`` ends it with a ``completed`` event. ``POST /bench/{a},{b},.../publish``
spreads one publisher over several streams (a collection's scans): each payload goes to the
one its ``seq`` picks, round robin. :class:`BenchStreams` holds the open streams of one app and
serves both routes; the routes' answers are documented in :mod:`mock_scanner.app`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final

from aiohttp import web

from mock_scanner import scenario
from mock_scanner.knobs import BadRequest, Scan, error_response
from mock_scanner.stream import ScanStream

__all__ = ["BENCH_QUEUE_MAX", "MAX_SPREAD", "BenchStreams"]

log = logging.getLogger("mock_scanner")

BENCH_QUEUE_MAX: Final = 100_000
"""Frames one bench stream may have waiting before ``publish`` answers 503."""
MAX_SPREAD: Final = 64
"""Streams one publish path may spread its payloads over."""
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

_Item = bytes | dict[str, Any] | None


class _BenchChannel:
    """What waits to go out on one open bench stream: frames, or payloads to stamp when they
    are written (``stamp_emit``); ``None`` asks it to finish."""

    def __init__(self, line_ending: str, stamp_emit: bool) -> None:
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
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

    def batch(self, item: _Item) -> tuple[list[bytes], bool]:
        """``item`` and whatever else waits, as frames; and whether the stream finishes."""
        frames: list[bytes] = []
        while item is not None:
            frames.append(self.written(item))
            if self.queue.empty():
                break
            item = self.queue.get_nowait()
        finish = item is None
        if finish:
            frames.append(self.frame(_BENCH_DONE))
        return frames, finish


async def _next_item(channel: _BenchChannel, wait: float) -> tuple[bool, _Item]:
    """(True, the next item) or (False, None) when ``wait`` seconds passed without one."""
    try:
        async with asyncio.timeout(wait):
            return True, await channel.queue.get()
    except TimeoutError:
        return False, None


async def _bench_stream(stream: ScanStream, channel: _BenchChannel) -> web.StreamResponse:
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
        got, item = await _next_item(channel, wait)
        if not got:
            if stream.gone():
                return left()
            now = loop.time()
            if beat is not None and next_beat is not None and now >= next_beat:
                if not await stream.keep_alive():
                    return left()
                next_beat = max(next_beat + beat, now)
            continue
        frames, finish = channel.batch(item)
        if not await stream.write(b"".join(frames)) or (not finish and stream.gone()):
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


class BenchStreams:
    """The open bench streams of one app, by scan id; one at most per scan."""

    def __init__(self) -> None:
        self._channels: dict[str, _BenchChannel] = {}

    def __contains__(self, scan_id: str) -> bool:
        return scan_id in self._channels

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/bench/{scan_id}/publish", self.publish)
        router.add_post("/bench/{scan_id}/finish", self.finish)

    async def serve(
        self, request: web.Request, scan: Scan, stopping: asyncio.Event
    ) -> web.StreamResponse:
        """Answer a bench scan's POST: its stream, open until finished or the client leaves."""
        channel = _BenchChannel(scan.knobs.line_ending, scan.knobs.stamp_emit)
        self._channels[scan.scan_id] = channel
        try:
            return await _bench_stream(ScanStream(request, scan, stopping), channel)
        finally:
            if self._channels.get(scan.scan_id) is channel:
                del self._channels[scan.scan_id]

    def _open(self, scan_id: str) -> _BenchChannel | None:
        channel = self._channels.get(scan_id)
        return None if channel is None or channel.finishing else channel

    async def publish(self, request: web.Request) -> web.Response:
        """Queue one payload on a bench stream (of several, the one its ``seq`` picks); kept
        cheap, it runs at hundreds per second."""
        scan_ids = request.match_info["scan_id"].split(",")
        if len(scan_ids) > MAX_SPREAD:
            return error_response(
                BadRequest("invalid_path", f"at most {MAX_SPREAD} scan ids, comma-separated")
            )
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return error_response(BadRequest("invalid_json", "the request body is not valid JSON"))
        if not isinstance(payload, dict):
            return error_response(BadRequest("invalid_body", "the payload must be a JSON object"))
        seq = payload.get("seq", 0) if len(scan_ids) == 1 else payload.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int):
            return error_response(
                BadRequest("invalid_body", "spread over several scans, a payload needs a seq")
            )
        scan_id = scan_ids[seq % len(scan_ids)]
        channel = self._open(scan_id)
        if channel is None:
            return _no_bench_stream(scan_id)
        if channel.queue.qsize() >= BENCH_QUEUE_MAX:
            return web.json_response(
                {"error": "overloaded", "message": f"{BENCH_QUEUE_MAX} frames already waiting"},
                status=503,
            )
        channel.queue.put_nowait(channel.queued({**_BENCH_EVENT, **payload}))
        return web.Response(status=204)

    async def finish(self, request: web.Request) -> web.Response:
        """End a bench stream with a ``completed`` event, after what was published before."""
        scan_id = request.match_info["scan_id"]
        channel = self._open(scan_id)
        if channel is None:
            return _no_bench_stream(scan_id)
        channel.finishing = True
        channel.queue.put_nowait(None)
        return web.Response(status=204)
