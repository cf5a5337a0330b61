"""Properties of the scanner edge: whatever bytes a scanner sends, in whatever chunks.

Two layers. The pure one feeds a body to the readers through a stand-in for aiohttp's response
(``FakeSession``), cut into chunks at arbitrary places: the messages read, and the error that
ends the read, must not depend on where the cuts fall, and nothing but an ``UpstreamError`` may
come out. The end-to-end one puts a scripted scanner on 127.0.0.1 behind a real gateway: every
scan ends with exactly one terminal event, never "internal error in the gateway", and every
frame and body the gateway sends to clients about it is strict JSON.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.config import config_from_dict
from gateway.scanners.client import Malformed, UpstreamError, stream_scan
from gateway.scanners.sse_parser import SSEEvent, SSELineTooLong, SSEParser
from tests.helpers import auth, error_shape, start_scan
from tests.hostile import DIALECTS, scanner_script, strict_json

# Small enough that the strategies often cross them (a string of 9000 bytes, two 5000-digit
# numbers on one line), large enough that most bodies fit.
LIMITS = {"max_line_length": 8192, "max_body_bytes": 32768}
UPSTREAM = config_from_dict({"upstream": LIMITS}).upstream
# End to end, most scans should get past the limits to the store and the clients.
E2E_LIMITS = {"max_line_length": 65536, "max_body_bytes": 262144}
E2E_EXAMPLES = max(10, settings().max_examples // 2)  # a scan costs more
TERMINAL = {"completed", "failed", "cancelled"}
INTERNAL_ERROR = "internal error in the gateway"
# Byte-by-byte reads of bodies up to this size; longer ones get random cuts only.
BYTEWISE_MAX = 1000

Script = tuple[str, bytes, list[bytes]]  # dialect, body, the chunks it is written in


def whole(dialect: str, body: bytes) -> Script:
    return dialect, body, [body]


def finding(field: bytes) -> bytes:
    return b'{"status":"completed","vulnerabilities":[{' + field + b"}]}"


# The hostile-input audit's cases, run on every run (then Hypothesis' own examples).
AUDIT = {
    "ndjson-read-without-newline": (
        "ndjson",
        b'{"status":"completed"}',
        [b'{"st', b'atus":"completed"}'],
    ),
    "nan-in-a-finding": whole("sse", b"data: " + finding(b'"severity":NaN') + b"\n\n"),
    "infinity-from-1e999": whole("json", finding(b'"x_score":1e999')),
    "lone-surrogate-in-error": whole("sse", b'data: {"status":"failed","error":"\\ud800"}\n\n'),
    "number-past-float-range": whole("ndjson", finding(b'"severity":1' + b"0" * 400) + b"\n"),
    "5000-digit-progress": whole(
        "sse",
        b'data: {"status":"scanning","progress_percent":' + b"9" * 5000 + b"}\n\n"
        b'data: {"status":"completed"}\n\n',
    ),
    "nesting-past-recursion-limit": whole("json", b"[" * 3000 + b"]" * 3000),
    # Read whole, the over-long line's chunk holds the line before it, which was lost with it.
    "ndjson-line-before-a-long-line": (
        "ndjson",
        b'{}\n"' + b"A" * 9000 + b'"\n',
        [b"{}\n", b'"' + b"A" * 9000 + b'"\n'],
    ),
    "invalid-utf8-bom-cr": whole(
        "sse", b'\xef\xbb\xbfdata: {"status":"completed","progress_text":"a\xffb"}\r\r'
    ),
}


def audit_examples(test: Any) -> Any:
    for name, script in AUDIT.items():
        test = example(script=script).via(f"audit: {name}")(test)
    return test


# --------------------------------------------------------------------------- the pure layer


class FakeContent:
    """What the readers use of aiohttp's ``StreamReader``: the body in the given chunks, each
    read returning at most what one chunk holds (as a socket read would)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = [chunk for chunk in chunks if chunk]
        self._buffer = b""

    def _fill(self) -> bool:
        if self._buffer:
            return True
        if not self._chunks:
            return False
        self._buffer = self._chunks.pop(0)
        return True

    def _take(self, n: int) -> bytes:
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def at_eof(self) -> bool:
        return not self._buffer and not self._chunks

    async def readany(self) -> bytes:
        return self._take(len(self._buffer)) if self._fill() else b""

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = [self._buffer, *self._chunks]
            self._buffer, self._chunks = b"", []
            return b"".join(parts)
        return self._take(n) if self._fill() else b""

    async def readchunk(self) -> tuple[bytes, bool]:
        return await self.readany(), False

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        line = b""
        while self._fill():
            head, sep, _ = self._buffer.partition(separator)
            line += self._take(len(head) + len(sep))
            if sep:
                break
        return line

    async def readline(self) -> bytes:
        return await self.readuntil()

    async def iter_any(self) -> AsyncIterator[bytes]:
        while data := await self.readany():
            yield data

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while data := await self.read(n):
            yield data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while line := await self.readline():
            yield line


@dataclass
class FakeResponse:
    content_type: str
    content: FakeContent
    status: int = 200
    reason: str = "OK"
    charset: str | None = None
    url: URL = field(default_factory=lambda: URL("http://scanner.invalid/scan"))
    headers: CIMultiDictProxy[str] = field(default_factory=lambda: CIMultiDictProxy(CIMultiDict()))

    def release(self) -> None:
        return None

    def close(self) -> None:
        return None

    def raise_for_status(self) -> None:
        return None


class FakeSession:
    """Stands in for the gateway's ``ClientSession``: every POST answers with one body."""

    def __init__(self, content_type: str, chunks: Iterable[bytes]) -> None:
        content = FakeContent(chunks)
        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": content_type}))
        self.response = FakeResponse(content_type, content, headers=headers)

    def post(self, url: str, **kwargs: Any) -> FakeSession:
        return self

    async def __aenter__(self) -> FakeResponse:
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        return None


def canonical(value: object) -> list[object]:
    """A flat, comparable form of a decoded message: NaN equals NaN, no int-to-text limit,
    and no recursion (a message may nest as deep as the JSON decoder allows)."""
    tokens: list[object] = []
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Mark):
            tokens.append(item.text)
        elif isinstance(item, list):
            tokens.append("[")
            stack.append(_Mark("]"))
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            tokens.append("{")
            stack.append(_Mark("}"))
            for key, member in reversed(item.items()):
                stack.extend([member, _Mark(f"key {key!r}")])
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            tokens.append(item)
        elif isinstance(item, int):
            tokens.append(("int", hex(item)))
        elif isinstance(item, float):
            tokens.append(("float", item.hex()))
        elif isinstance(item, Malformed):
            tokens.append(("malformed", item.text))
        else:
            tokens.append(("other", type(item).__name__, repr(item)[:1000]))
    return tokens


@dataclass(frozen=True)
class _Mark:
    text: str


async def read_upstream(dialect: str, chunks: list[bytes]) -> tuple[list[object], str | None]:
    """The messages read from one body, and the kind of the error that ended it (if any)."""
    session: Any = FakeSession(DIALECTS[dialect], chunks)
    messages: list[object] = []
    try:
        async for message in stream_scan(session, "sast_scanner", "http://x/scan", {}, UPSTREAM):
            messages.append(canonical(message))
    except UpstreamError as exc:  # anything else escapes and fails the test
        return messages, exc.kind
    return messages, None


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


@audit_examples
@given(script=scanner_script())
async def test_messages_do_not_depend_on_how_the_body_is_cut(script: Script) -> None:
    dialect, body, chunks = script
    read_whole = await read_upstream(dialect, [body])
    assert await read_upstream(dialect, chunks) == read_whole
    if len(body) <= BYTEWISE_MAX:
        assert await read_upstream(dialect, bytewise(body)) == read_whole


def parse_sse(chunks: list[bytes]) -> tuple[list[SSEEvent], bool]:
    parser = SSEParser(max_line_length=LIMITS["max_line_length"])
    events: list[SSEEvent] = []
    try:
        for chunk in chunks:
            events.extend(parser.feed(chunk))
        events.extend(parser.close())
    except SSELineTooLong as exc:
        return [*events, *exc.events], True
    return events, False


@given(script=scanner_script(dialects=("sse",)))
def test_sse_parser_events_do_not_depend_on_how_the_body_is_cut(script: Script) -> None:
    _, body, chunks = script
    parsed_whole = parse_sse([body])
    assert parse_sse(chunks) == parsed_whole
    if len(body) <= BYTEWISE_MAX:
        assert parse_sse(bytewise(body)) == parsed_whole


# --------------------------------------------------------------------------- end to end


@dataclass
class ScannerEdge:
    """A gateway whose ``sast_scanner`` answers each scan with the body scripted for its
    repository name (each example uses a repository name of its own)."""

    client: Any
    scripts: dict[str, tuple[str, list[bytes]]]
    names: Iterator[int] = field(default_factory=itertools.count)

    def script(self, content_type: str, chunks: list[bytes]) -> str:
        repository = f"acme/example-{next(self.names)}"
        self.scripts[repository] = (content_type, chunks)
        return repository


@pytest.fixture
async def scanner_edge(gateway: Any, aiohttp_server: Any) -> ScannerEdge:
    scripts: dict[str, tuple[str, list[bytes]]] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        content_type, chunks = scripts.pop((await request.json())["repository_name"])
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        try:
            for chunk in chunks:
                await response.write(chunk)  # drains before the next chunk
            await response.write_eof()
        except ConnectionResetError:
            pass  # the gateway hung up (a limit it enforces): its call, not a fault here
        return response

    app = web.Application()
    app.router.add_post("/scan", answer)
    server = await aiohttp_server(app)
    client = await gateway(
        scanners={"sast_scanner": str(server.make_url("/scan"))},
        upstream={**E2E_LIMITS, "connect_retries": 0, "scan_timeout_seconds": 30},
        # Every example starts a scan, one after the other: not a rate to refuse.
        limits={"scan_starts_per_second": 1000, "scan_start_burst": 1000},
    )
    return ScannerEdge(client, scripts)


async def read_strict(response: Any) -> Any:
    """A JSON response body, parsed strictly (and its content type says JSON)."""
    raw = await response.read()
    assert response.content_type == "application/json", raw[:300]
    return strict_json(raw)


async def stream_frames(client: Any, scan_id: str) -> list[tuple[SSEEvent, Any]]:
    """Every frame of the scan's stream, each with its data parsed strictly."""
    async with asyncio.timeout(30):
        response = await client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth())
        assert response.status == 200, await response.text()
        raw = await response.read()
    raw.decode("utf-8")  # strict: the stream is UTF-8 throughout
    parser = SSEParser()
    events = [*parser.feed(raw), *parser.close()]
    return [(event, strict_json(event.data)) for event in events]


async def check_scan(client: Any, scan_id: str) -> None:
    frames = await stream_frames(client, scan_id)
    payloads = [data for event, data in frames if event.type == "message"]
    statuses = [data["status"] for data in payloads]
    assert [status in TERMINAL for status in statuses].count(True) == 1, statuses
    assert statuses[-1] in TERMINAL, statuses
    assert [int(event.id) for event, _ in frames] == list(range(1, len(frames) + 1))
    last = payloads[-1]
    assert last["error"] != INTERNAL_ERROR
    # The log replays exactly what the live stream sent.
    assert await stream_frames(client, scan_id) == frames

    record = await read_strict(await client.get(f"/api/v1/scans/{scan_id}", headers=auth()))
    assert record["data"]["status"] == last["status"]
    assert record["data"]["error"] == last["error"]
    results = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    body = await read_strict(results)
    if last["status"] == "completed":
        assert results.status == 200, body
    else:
        assert results.status == 409, body
        error_shape(body)
    listed = await client.get("/api/v1/scans/?limit=3", headers=auth())
    assert listed.status == 200
    await read_strict(listed)


@settings(
    max_examples=E2E_EXAMPLES,
    # One scripted scanner and one gateway serve every example on purpose (a gateway per
    # example would cost more than the scan): each example scripts the body for a repository
    # name of its own and checks only its own scan, so nothing carries over between them.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@audit_examples
@given(script=scanner_script())
async def test_scan_ends_once_and_clients_get_strict_json(
    scanner_edge: ScannerEdge, script: Script
) -> None:
    dialect, _, chunks = script
    repository = scanner_edge.script(DIALECTS[dialect], chunks)
    client = scanner_edge.client
    scan_id = await start_scan(client, use_sse=True, scanner="sast_scanner", repository=repository)
    await check_scan(client, scan_id)
