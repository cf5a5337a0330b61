"""A hostile scanner: a raw HTTP/1.1 server on 127.0.0.1 that answers each POST with an attack.

The path names the attack (``POST /<mode>``), so one server serves every mode, and a scanner
URL in the gateway's config chooses it. Raw asyncio streams, not aiohttp's server: several
attacks (a broken chunked encoding, a huge status line, thousands of headers) are bytes no
well-behaved server would write. Every loop is bounded in count, and stops once the gateway
has closed the connection.

``requests`` records every request received as (method, path, headers, body): a test can check
that nothing reached a path no scanner should have made the gateway call (``/target``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["MODES", "HostileScanner", "Request", "sse"]

CRLF = b"\r\n"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def sse(message: object) -> bytes:
    return b"data: " + json.dumps(message).encode() + b"\n\n"


COMPLETED = sse({"status": "completed", "vulnerabilities": [{"title": "t", "severity": "low"}]})
SCANNING = sse({"status": "scanning", "progress_percent": 10})


@dataclass
class Answer:
    """What a mode writes: helpers over the connection's writer."""

    writer: asyncio.StreamWriter
    server: HostileScanner

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    async def send(self, data: bytes) -> bool:
        """Write and drain; False once the gateway has gone away."""
        if self.closed:
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            return False
        return True

    async def head(
        self,
        status: str = "200 OK",
        content_type: str = "text/event-stream",
        extra: Sequence[bytes] = (),
    ) -> bool:
        lines = [
            b"HTTP/1.1 " + status.encode(),
            b"Content-Type: " + content_type.encode(),
            b"Connection: close",
            *extra,
        ]
        return await self.send(CRLF.join(lines) + CRLF + CRLF)

    async def repeat(self, data: bytes, times: int, pause: float = 0) -> None:
        for _ in range(times):
            if not await self.send(data):
                return
            if pause:
                await asyncio.sleep(pause)


Mode = Callable[[Answer], Awaitable[None]]
MODES: dict[str, Mode] = {}


def mode(function: Mode) -> Mode:
    MODES[function.__name__] = function
    return function


@mode
async def ok(answer: Answer) -> None:
    await answer.head()
    await answer.send(SCANNING + COMPLETED)


# --- redirects: the gateway must not follow them (to /target or anywhere else)


async def _redirect(answer: Answer, status: str) -> None:
    port = answer.server.port
    location = f"http://user:hunter2@127.0.0.1:{port}/target?api_key=redirect-secret"
    await answer.head(status, extra=[f"Location: {location}".encode()])


@mode
async def redirect_302(answer: Answer) -> None:
    await _redirect(answer, "302 Found")


@mode
async def redirect_307(answer: Answer) -> None:
    await _redirect(answer, "307 Temporary Redirect")


@mode
async def target(answer: Answer) -> None:
    # What a redirect would have reached: JSON that would land in clients' ``extra``.
    await answer.head(content_type="application/json")
    await answer.send(json.dumps({"status": "completed", "stolen": "internal data"}).encode())


# --- the head of the answer


@mode
async def header_flood(answer: Answer) -> None:
    headers = [f"X-Flood-{n}: {'v' * 100}".encode() for n in range(5000)]
    await answer.head(extra=headers)
    await answer.send(COMPLETED)


@mode
async def huge_header(answer: Answer) -> None:
    await answer.head(extra=[b"X-Huge: " + b"h" * 1_000_000])
    await answer.send(COMPLETED)


@mode
async def huge_status_line(answer: Answer) -> None:
    await answer.send(b"HTTP/1.1 200 " + b"O" * 1_000_000 + CRLF)
    await answer.send(b"Content-Type: text/event-stream" + CRLF + CRLF + COMPLETED)


@mode
async def error_body_with_escapes(answer: Answer) -> None:
    await answer.head("500 Internal Server Error", content_type="text/plain")
    await answer.send(b"\x1b[2J\x1b[31mboom\x1b]0;owned\x07 \x9b31m done\x00")


# --- the transfer encoding


def _chunked(*extra: bytes) -> list[bytes]:
    return [b"Transfer-Encoding: chunked", *extra]


@mode
async def chunk_bad_size(answer: Answer) -> None:
    await answer.head(extra=_chunked())
    await answer.send(b"zz" + CRLF + SCANNING + CRLF)


@mode
async def chunk_size_5000_digits(answer: Answer) -> None:
    await answer.head(extra=_chunked())
    await answer.send(b"1" * 5000 + CRLF + SCANNING + CRLF)


@mode
async def chunk_size_lies(answer: Answer) -> None:
    # A chunk announced as 1 MiB, then the connection closes after a few bytes.
    await answer.head(extra=_chunked())
    await answer.send(b"100000" + CRLF + SCANNING)


@mode
async def chunk_trailer_flood(answer: Answer) -> None:
    await answer.head(extra=_chunked(b"Trailer: X-T"))
    await answer.send(f"{len(SCANNING):x}".encode() + CRLF + SCANNING + CRLF + b"0" + CRLF)
    await answer.repeat(b"X-T: " + b"t" * 100 + CRLF, 5000)
    await answer.send(CRLF)


@mode
async def gzip_bomb(answer: Answer) -> None:
    await answer.head(extra=[b"Content-Encoding: gzip"])
    await answer.send(answer.server.bomb())


# --- the body


@mode
async def huge_event(answer: Answer) -> None:
    # A "1 GB" event: data lines and never the blank line that would end it.
    await answer.head()
    await answer.repeat(b"data: " + b"x" * 65_530 + b"\n", 1 << 14)


@mode
async def huge_line(answer: Answer) -> None:
    await answer.head()
    await answer.send(b"data: ")
    await answer.repeat(b"x" * 65_536, 1 << 14)


@mode
async def huge_ndjson_line(answer: Answer) -> None:
    await answer.head(content_type="application/x-ndjson")
    await answer.repeat(b"x" * 65_536, 1 << 14)


@mode
async def huge_json_body(answer: Answer) -> None:
    await answer.head(content_type="application/json")
    await answer.repeat(b"[" + b" " * 65_535, 1 << 14)


@mode
async def findings_json_flood(answer: Answer) -> None:
    # 3 MB of empty findings in one JSON body: a million objects once parsed.
    await answer.head(content_type="application/json")
    await answer.send(b'{"status": "completed", "findings": [' + b"{}," * 1_000_000 + b"{}]}")


@mode
async def findings_in_one_event(answer: Answer) -> None:
    # Many findings in one event (fewer values than the limit): only the room left is read.
    findings = b",".join([b'{"title": "f"}'] * 20_000)
    await answer.head()
    await answer.send(b'data: {"status": "completed", "findings": [' + findings + b"]}\n\n")


@mode
async def malformed_flood(answer: Answer) -> None:
    await answer.head(content_type="application/x-ndjson")
    await answer.repeat(b"x\n" * 1000, 5)


@mode
async def error_event_json(answer: Answer) -> None:
    await answer.head()
    await answer.send(SCANNING + b'event: error\ndata: {"message": "disk full"}\n\n')


@mode
async def slow_drip(answer: Answer) -> None:
    # One byte at a time, well within the idle timeout each, never completing a message.
    await answer.head()
    for byte in (b'data: {"status": "scanning", "progress_text": "' + b"." * 2000)[:2000]:
        if not await answer.send(bytes([byte])):
            return
        await asyncio.sleep(0.02)


@mode
async def endless_comments(answer: Answer) -> None:
    await answer.head()
    await answer.repeat(b": keep-alive\n\n\n", 2000, pause=0.01)


@mode
async def closes_mid_event(answer: Answer) -> None:
    await answer.head()
    await answer.send(SCANNING + b'data: {"status": "comple')


@mode
async def closes_mid_body(answer: Answer) -> None:
    # Content-Length promises more than is sent.
    await answer.head(extra=[b"Content-Length: 100000"])
    await answer.send(SCANNING + b'data: {"status": "comple')


@mode
async def invalid_utf8(answer: Answer) -> None:
    await answer.head()
    await answer.send(b"data: \xff\xfe\xc3(\n\n")  # not JSON once decoded: skipped
    await answer.send(b'data: {"status": "failed", "error": "bad \xc3\x28 \xed\xa0\x80 bytes"}\n\n')


@mode
async def non_finite_numbers(answer: Answer) -> None:
    await answer.head()
    for text in (
        b'{"status": "scanning", "progress_percent": NaN}',
        b'{"status": "scanning", "progress_percent": 5, "eta": Infinity}',
        b'{"status": "scanning", "ratio": -Infinity}',
        b'{"status": "scanning", "ratio": 1e999}',
        b'{"status": "scanning", "n": ' + b"7" * 5000 + b"}",
        b'{"status": "scanning", "n": -' + b"7" * 200 + b"}",
        b'{"status": "scanning", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"status": "scanning", "deep": ' + b"[" * 100 + b"]" * 100 + b"}",
    ):
        await answer.send(b"data: " + text + b"\n\n")
    await answer.send(
        b'data: {"status": "completed", "vulnerabilities": '
        b'[{"title": "t", "confidence": NaN}, {"title": "u", "confidence": 0.5}]}\n\n'
    )
    await answer.send(sse({"status": "completed", "vulnerabilities": [{"title": "v"}]}))


@mode
async def lone_surrogates(answer: Answer) -> None:
    await answer.head()
    await answer.send(
        b'data: {"status": "scanning", "progress_text": "a\\ud800b", "\\udfffkey": "v\\udc00"}\n\n'
    )
    await answer.send(
        b'data: {"status": "completed", "vulnerabilities": [{"title": "x\\ud800", '
        b'"\\ud800": "\\udfff", "location": {"path": "p\\ud83d"}}]}\n\n'
    )


@mode
async def extra_flood(answer: Answer) -> None:
    # Long keys are left out; control characters must not reach clients in a key either.
    fields: dict[str, object] = {}
    for n in range(100):
        fields[f"\x1b[31m{n}\x9b"] = '"\\' * 1000
        fields[f"i{n}"] = 10**99  # 100 digits: at the max_number_digits default
        fields[f"k{n}{'k' * 100 if n % 2 else ''}"] = "\u20ac" * 1000
    await answer.head()
    await answer.send(sse({"status": "scanning", **fields}) + COMPLETED)


@dataclass
class HostileScanner:
    """The server; ``url(mode)`` is a scanner URL for the gateway's config."""

    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _bomb: bytes | None = None
    scripts: dict[str, tuple[str, list[bytes], float]] = field(default_factory=dict)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, mode: str, userinfo: str = "", query: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}/{mode}" + (f"?{query}" if query else "")

    def script(
        self, name: str, content_type: str, chunks: list[bytes], pause: float = 0.005
    ) -> str:
        """A mode that sends ``chunks`` one write each, ``pause`` seconds apart."""
        self.scripts[name] = (content_type, chunks, pause)
        return self.url(name)

    def bomb(self) -> bytes:
        """A gzip body of a few KiB that inflates to 16 MiB."""
        if self._bomb is None:
            self._bomb = gzip.compress(bytes(16 << 20), compresslevel=9)
        return self._bomb

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            request = await self._read_request(reader)
            self.requests.append(request)
            await self._answer(request, Answer(writer, self))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, request: Request, answer: Answer) -> None:
        name = request.path.lstrip("/").partition("?")[0]
        if name in self.scripts:
            content_type, chunks, pause = self.scripts[name]
            await answer.head(content_type=content_type)
            for chunk in chunks:
                await answer.send(chunk)
                await asyncio.sleep(pause)
            return
        if name in MODES:
            await MODES[name](answer)
            return
        await answer.head("404 Not Found", content_type="text/plain")

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request:
        head = (await reader.readuntil(CRLF + CRLF)).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return Request(method, path, headers, body)
