"""A hostile scanner for ``bench/flood.py``: one flood shape per process, on 127.0.0.1.

``python bench/flood_scanner.py --port P --shape SHAPE --bytes N --seconds T`` answers every
``POST /scan`` with the shape's stream until N bytes of payload (before gzip) have been written,
T seconds have passed, or the gateway closes the connection, whichever comes first.
``GET /stats`` says how the last answer went (bytes on the wire, bytes before gzip, why it
stopped). Every write waits for the socket to drain, so the scanner never runs ahead of what the
gateway reads.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Final

from aiohttp import web

SSE: Final = "text/event-stream"
NDJSON: Final = "application/x-ndjson"
LINE: Final = 64 * 1024  # one SSE data line of the long event: far below max_line_length
DESCRIPTION: Final = 900_000  # one finding's description
BATCH: Final = 1000  # small events per write


@dataclass(frozen=True)
class Shape:
    content_type: str
    pieces: Callable[[], Iterator[bytes]]
    ending: bytes = b""  # written after the flood unless the gateway hung up
    gzip: bool = False


def long_sse_event() -> Iterator[bytes]:
    """``data:`` lines, 1 MiB per write, never followed by the blank line that ends an event."""
    line = b"data: " + b"x" * LINE + b"\n"
    while True:
        yield line * 16


def long_ndjson_line() -> Iterator[bytes]:
    """One JSON object that never closes and a line that never ends."""
    yield b'{"status": "scanning", "progress_text": "'
    while True:
        yield b"x" * (1024 * 1024)


def findings(prefix: bytes, suffix: bytes) -> Iterator[bytes]:
    """One message per finding, each finding with a 0.9 MB description."""
    description = "y" * DESCRIPTION
    for n in itertools.count(1):
        finding = {"id": f"flood-{n}", "severity": "high", "title": f"Flood finding {n}"}
        message = {"findings": [{**finding, "description": description}]}
        yield prefix + json.dumps(message).encode() + suffix


def small_events(prefix: bytes, suffix: bytes) -> Iterator[bytes]:
    """Progress messages whose text differs each time, so none is dropped as a repeat."""
    for start in itertools.count(0, BATCH):
        yield b"".join(
            prefix
            + json.dumps(
                {"status": "scanning", "progress_percent": 50, "progress_text": f"event {n}"}
            ).encode()
            + suffix
            for n in range(start, start + BATCH)
        )


TINY: Final = b'{"title": "f"},'  # one small finding, 15 bytes


def tiny_findings_events() -> Iterator[bytes]:
    """Events just under 1 MiB, each a list of about 70,000 small findings (as many objects as
    the gateway's value bound lets through): room for the first 10,000 only."""
    per_event = (1024 * 1024 - 64) // len(TINY)
    event = b'data: {"findings": [' + TINY * per_event + b'{"title": "f"}]}\n\n'
    while True:
        yield event


def tiny_findings_body() -> Iterator[bytes]:
    """One JSON body of 15 MiB of small findings (under max_body_bytes): a million objects."""
    yield b'{"status": "completed", "findings": ['
    for _ in range(15):
        yield TINY * (1024 * 1024 // len(TINY))


SSE_DONE: Final = b'data: {"status": "completed", "progress_text": "Flood over."}\n\n'
NDJSON_DONE: Final = b'{"status": "completed", "progress_text": "Flood over."}\n'

SHAPES: Final[dict[str, Shape]] = {
    "sse-long-event": Shape(SSE, long_sse_event),
    "sse-findings": Shape(SSE, lambda: findings(b"data: ", b"\n\n"), SSE_DONE),
    "sse-many-events": Shape(SSE, lambda: small_events(b"data: ", b"\n\n"), SSE_DONE),
    "ndjson-long-line": Shape(NDJSON, long_ndjson_line),
    "ndjson-findings": Shape(NDJSON, lambda: findings(b"", b"\n"), NDJSON_DONE),
    "ndjson-many-events": Shape(NDJSON, lambda: small_events(b"", b"\n"), NDJSON_DONE),
    "gzip-sse-long-event": Shape(SSE, long_sse_event, gzip=True),
    "sse-tiny-findings": Shape(SSE, tiny_findings_events, SSE_DONE),
    "json-tiny-findings": Shape("application/json", tiny_findings_body, b'{"title": "f"}]}'),
}


@dataclass
class Stats:
    shape: str
    sent_bytes: int = 0  # on the wire (gzip'd for the gzip shape), without HTTP chunk framing
    raw_bytes: int = 0  # before gzip
    stopped_by: str = ""  # "bytes", "time" or "closed"
    done: bool = False
    accept_encoding: str = ""


class Flood:
    def __init__(self, shape: str, limit: int, seconds: float) -> None:
        self.shape = SHAPES[shape]
        self.limit = limit
        self.seconds = seconds
        self.stats = Stats(shape)

    async def scan(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.stats = Stats(
            self.stats.shape, accept_encoding=request.headers.get("Accept-Encoding", "")
        )
        response = web.StreamResponse()
        response.content_type = self.shape.content_type
        if self.shape.gzip:
            response.headers["Content-Encoding"] = "gzip"
        await response.prepare(request)
        try:
            self.stats.stopped_by = await self.flood(response)
            await response.write_eof()
        except ConnectionError:
            self.stats.stopped_by = "closed"
        self.stats.done = True
        return response

    async def flood(self, response: web.StreamResponse) -> str:
        """Write the shape's pieces until a bound; then its ending. Returns the bound hit."""
        packer = zlib.compressobj(9, zlib.DEFLATED, 31) if self.shape.gzip else None
        deadline = time.monotonic() + self.seconds
        stopped_by = "bytes"
        for piece in self.shape.pieces():
            if self.stats.raw_bytes >= self.limit:
                break
            if time.monotonic() >= deadline:
                stopped_by = "time"
                break
            await self.send(response, piece, packer)
        await self.send(response, self.shape.ending, packer, last=True)
        return stopped_by

    async def send(
        self, response: web.StreamResponse, piece: bytes, packer: Any, last: bool = False
    ) -> None:
        """Write ``piece`` (gzip'd through ``packer`` when there is one) and count it."""
        data = piece if packer is None else packer.compress(piece)
        if packer is not None and last:
            data += packer.flush()
        if data:
            await response.write(data)
        self.stats.sent_bytes += len(data)
        self.stats.raw_bytes += len(piece)

    async def report(self, _request: web.Request) -> web.Response:
        return web.json_response(asdict(self.stats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    flood = Flood(args.shape, args.bytes, args.seconds)
    app = web.Application()
    app.router.add_post("/scan", flood.scan)
    app.router.add_get("/stats", flood.report)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
