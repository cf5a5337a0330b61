"""Properties of the client edge: whatever a client sends, on whatever route.

Every route of the app (read from its router, so a new route is covered without a change
here), with arbitrary headers, query strings, path parameters and bodies, with and without a
valid token: never a 500; every body that says it is JSON is strict JSON, and an error body
has the gateway's one error shape; every event-stream frame is strict JSON; and the valid
token's text never appears in a log line, formatted as ``python -m gateway`` formats them
(both formats, exception text included), wherever the request put it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from gateway.http.logs import ContextFilter, JSONFormatter, TokenFilter
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import SCANNERS, error_shape, start_scan, stream, token
from tests.hostile import hostile_scalar, json_text, strict_json, string_text

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# A few query parameters the routes read, and some they do not.
PARAMS = ("use_sse", "limit", "status", "last_event_id", "token", "access_token", "ticket", "x")
MEDIA_TYPES = (
    "application/json",
    "application/json; charset=latin-1",
    "application/merge-patch+json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
)
CLIENT_EXAMPLES = max(10, settings().max_examples // 2)  # a request costs a round trip
SHARED_SERVER = (
    # One gateway serves every example on purpose (one per example would cost more than the
    # requests): each example sends its own requests and checks only their answers and the
    # log lines they caused; the scans it may start are its own subject's.
    HealthCheck.function_scoped_fixture,
)


class LogLines(logging.Handler):
    """Every record, formatted both ways ``python -m gateway`` can, with its filters."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(TokenFilter())
        self.addFilter(ContextFilter())
        self.text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.json = JSONFormatter()
        self.lines: list[str] = []
        self.awaited: dict[str, asyncio.Event] = {}

    def emit(self, record: logging.LogRecord) -> None:
        lines = [self.text.format(record), self.json.format(record)]
        self.lines.extend(lines)
        for marker, seen in self.awaited.items():
            if any(marker in line for line in lines):
                seen.set()

    async def wait_for(self, marker: str, seconds: float) -> None:
        """Until a line holds ``marker`` (a request's access log line), at most ``seconds``."""
        if any(marker in line for line in self.lines):
            return
        seen = self.awaited.setdefault(marker, asyncio.Event())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(seen.wait(), seconds)
        finally:
            del self.awaited[marker]


@contextlib.contextmanager
def captured_logs() -> Iterator[LogLines]:
    root = logging.getLogger()
    handler = LogLines()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def routes_of(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route the app's router holds."""
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None
        }
    )


@dataclass
class ClientEdge:
    client: Any
    routes: list[tuple[str, str]]  # (method, path template), "*" for any method
    scan_id: str  # a completed scan of alice's
    logs: LogLines
    sent: int = 0


@pytest.fixture
async def client_edge(gateway: Any) -> Any:
    # Logging at DEBUG before the server starts: aiohttp decides per connection whether it
    # writes access log lines.
    with captured_logs() as logs:
        client = await gateway()
        scan_id = await start_scan(client)
        await stream(client, scan_id)  # it has completed
        yield ClientEdge(client, routes_of(client.server.app), scan_id, logs)


# --------------------------------------------------------------------------- strategies

TOKEN = token("alice")
SIGNATURE = TOKEN.rsplit(".", 1)[1]  # what makes the token usable: never in a log line
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
# Text a client may put anywhere: hostile JSON, the token, numbers too long to parse.
_value = st.one_of(
    _header_text,
    st.just(TOKEN),
    _header_text.map(lambda text: f"{text}{TOKEN}"),
    st.integers(1, 5000).map(lambda digits: "9" * digits),
    st.sampled_from(["NaN", "-1", "0", "true", "1e999", "\x00", "é", " ", "%00", "%ED%A0%80"]),
)
_header_name = st.one_of(
    st.sampled_from(
        ["Content-Type", "Accept", "Last-Event-ID", "Origin", "X-Request-ID", "Cookie", "Range"]
    ),
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(lambda s: "X-" + s),
)
_header_value = st.one_of(
    _header_text,
    st.just(TOKEN),
    st.sampled_from(MEDIA_TYPES),
    st.sampled_from(["text/event-stream", "http://evil.example", "9" * 5000, "-1", "0"]),
)
_credential = st.one_of(
    st.none(),
    st.just(("Authorization", f"Bearer {TOKEN}")),
    st.just(("Cookie", f"xployt_session={TOKEN}")),
    st.builds(lambda text: ("Authorization", text), _header_value),
    st.just(("Authorization", f"Bearer {token('alice', ttl=1, secret='x' * 64)}")),
)
_body = st.one_of(
    st.none(),
    json_text,
    st.builds(
        lambda repo, scanner, configurations: (
            b'{"repository_name":'
            + repo
            + b',"scanner_name":'
            + scanner
            + b',"configurations":'
            + configurations
            + b"}"
        ),
        string_text | hostile_scalar | st.just(b'"acme/web"'),
        st.sampled_from([b'"secret_scanner"', b'"nope"']) | string_text,
        json_text,
    ),
    st.binary(max_size=200),
    st.just(TOKEN.encode()),
    st.integers(60_000, 70_000).map(lambda size: b'{"a":"' + b"x" * size + b'"}'),
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes | None


_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@st.composite
def requests(draw: st.DrawFn, edge: ClientEdge) -> Request:
    method, template = draw(st.sampled_from(edge.routes))
    if method == "*" or draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(METHODS))
    ids = st.one_of(st.just(edge.scan_id), st.uuids().map(str), _value)
    path = _PARAM.sub(lambda _: quote(draw(ids), safe=""), template)
    query = draw(st.lists(st.tuples(st.sampled_from(PARAMS) | _header_text, _value), max_size=3))
    headers = draw(st.lists(st.tuples(_header_name, _header_value), max_size=4))
    credential = draw(_credential)
    if credential is not None:
        headers.append(credential)
    return Request(method, path, query, headers, draw(_body))


# --------------------------------------------------------------------------- checks


async def send(edge: ClientEdge, request: Request) -> tuple[Any, bytes]:
    """Send ``request`` and read its answer; return once its access log line is written."""
    edge.sent += 1
    marker = f"example-{edge.sent}"  # in the access log line, which comes after the answer
    url = URL(request.path, encoded=True).with_query([*request.query, ("example", marker)])
    async with asyncio.timeout(30):
        try:
            response = await edge.client.request(
                request.method, url, headers=request.headers, data=request.body
            )
            raw = await response.read()
        except aiohttp.ClientResponseError as exc:
            # aiohttp's own parser refused the request head (a duplicate Content-Type, say)
            # and its 400 carries a body even for HEAD, which the client cannot read.
            if request.method != "HEAD" or exc.status >= 500:
                raise
            return _Refused(exc.status), b""  # logged before it answered
    if response.content_type != "text/plain":  # else aiohttp's parser answered, logged before
        await edge.logs.wait_for(marker, 10)
    return response, raw


@dataclass(frozen=True)
class _Refused:
    """A HEAD that aiohttp's parser refused: only its status is known."""

    status: int
    method: str = "HEAD"
    content_type: str = "text/plain"


def check_answer(response: Any, raw: bytes) -> None:
    assert response.status != 500, raw[:500]
    assert response.status < 500 or response.status == 503, raw[:500]
    if response.method == "HEAD":
        return  # no body to check
    if response.content_type == "application/json" or response.content_type.endswith("+json"):
        body = strict_json(raw)
        if response.status >= 400:
            if body.get("error") == "not_ready":  # /readyz says what it checked
                body = {**body, "data": None}
            error_shape(body)
    elif response.content_type == "text/event-stream":
        raw.decode("utf-8")
        parser = SSEParser()
        for event in [*parser.feed(raw), *parser.close()]:
            strict_json(event.data)


def check_logs(logs: LogLines) -> None:
    leaked = [line for line in logs.lines if SIGNATURE in line]
    assert not leaked, leaked[0][-2000:]


# --------------------------------------------------------------------------- properties


@settings(max_examples=CLIENT_EXAMPLES, suppress_health_check=SHARED_SERVER)
@given(data=st.data())
async def test_any_request_on_any_route(client_edge: ClientEdge, data: Any) -> None:
    request = data.draw(requests(client_edge), label="request")
    client_edge.logs.lines.clear()  # this example's lines only
    response, raw = await send(client_edge, request)
    check_answer(response, raw)
    check_logs(client_edge.logs)


# The hostile-input audit's requests, run every time (Hypothesis' own come on top).
AUDIT_REQUESTS = {
    "5000-digit-limit": Request(
        "GET",
        "/api/v1/scans/",
        [("limit", "9" * 5000)],
        [("Authorization", f"Bearer {TOKEN}")],
        None,
    ),
    "5000-digit-last-event-id": Request(
        "GET",
        "/api/v1/scans/{scan_id}/stream",
        [("last_event_id", "9" * 5000)],
        [("Authorization", f"Bearer {TOKEN}")],
        None,
    ),
    "token-in-path-and-request-id": Request(
        "GET",
        f"/api/v1/scans/{TOKEN}",
        [("x", TOKEN)],
        [("Authorization", f"Bearer {TOKEN}"), ("X-Request-ID", TOKEN[:128])],
        None,
    ),
    "5000-digit-number-in-a-body": Request(
        "POST",
        "/api/v1/scans/",
        [],
        [("Authorization", f"Bearer {TOKEN}"), ("Content-Type", "application/json")],
        b'{"repository_name":"a","scanner_name":"secret_scanner","configurations":{"n":'
        + b"9" * 5000
        + b"}}",
    ),
}


@pytest.mark.parametrize("name", sorted(AUDIT_REQUESTS))
async def test_audit_requests(client_edge: ClientEdge, name: str) -> None:
    request = AUDIT_REQUESTS[name]
    path = request.path.replace("{scan_id}", client_edge.scan_id)
    response, raw = await send(client_edge, dataclasses.replace(request, path=path))
    check_answer(response, raw)
    check_logs(client_edge.logs)


def test_every_route_is_drawn_from_the_router(client_edge_routes: list[tuple[str, str]]) -> None:
    # The property above draws from the router: this only shows that it sees all of them.
    paths = {path for _, path in client_edge_routes}
    assert {"/api/v1/scans/{scan_id}/stream", "/healthz", "/api/v1/auth/session"} <= paths


@pytest.fixture
def client_edge_routes() -> list[tuple[str, str]]:
    from gateway import create_app
    from gateway.config import config_from_dict

    app = create_app(config_from_dict({"scanners": {name: "http://x/" for name in SCANNERS}}))
    return routes_of(app)


# A request head as bytes: arbitrary lines, some carrying the token next to bytes HTTP forbids.
_raw_line = st.one_of(
    st.builds(
        lambda name, junk: name + b": Bearer " + TOKEN.encode() + junk,
        st.sampled_from([b"Authorization", b"X-Request-ID", b"Cookie", b"X-Y"]),
        st.sampled_from([b"", b"\x00", b"\x01", b"\x7f", b"\xff", b"\r", b" \x0b", b"\xc3\xa9"]),
    ),
    st.binary(max_size=60).filter(lambda line: b"\n" not in line),
    st.sampled_from([b"Content-Length: -1", b"Transfer-Encoding: chunked", b" folded", b":"]),
)


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"G\x00T", b"DELETE"]))
    target = draw(
        st.sampled_from(
            [b"/api/v1/scans/", b"/healthz", b"/api/v1/scans/x?token=" + TOKEN.encode()]
        )
    )
    lines = draw(st.lists(_raw_line, min_size=1, max_size=4))
    end = draw(st.sampled_from([b"\r\n", b"\n"]))
    head = method + b" " + target + b" HTTP/1.1" + end + end.join([b"Host: x", *lines])
    return head + end + end + draw(st.binary(max_size=40))


AUDIT_RAW = {
    # aiohttp's parser error quotes the request head, token and all, in its exception text.
    "bare-lf-head-with-token": (
        b"GET /api/v1/scans/ HTTP/1.1\nHost: x\nAuthorization: Bearer " + TOKEN.encode() + b"\n\n"
    ),
    "control-char-after-token": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Y: Bearer " + TOKEN.encode() + b"\x01\r\n\r\n"
    ),
}


def audit_raw(test: Any) -> Any:
    for name, raw in AUDIT_RAW.items():
        test = example(raw=raw).via(f"audit: {name}")(test)
    return test


@settings(max_examples=CLIENT_EXAMPLES, suppress_health_check=SHARED_SERVER)
@audit_raw
@given(raw=raw_requests())
async def test_any_bytes_as_a_request(client_edge: ClientEdge, raw: bytes) -> None:
    server = client_edge.client.server
    client_edge.logs.lines.clear()  # this example's lines only
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(raw)
        writer.write_eof()  # no more requests on this connection
        async with asyncio.timeout(30):
            answer = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status = answer[9:12]
    assert not answer or (answer.startswith(b"HTTP/1.1 ") and status != b"500"), answer[:300]
    check_logs(client_edge.logs)
