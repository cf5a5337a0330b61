"""No credential in any log line: aiohttp's records of malformed requests, exception text,
stack, extra fields; and request ids that are plain ids."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

import pytest

from gateway.http.logs import JSONFormatter, TokenFilter
from tests.helpers import auth, token
from tests.processes import free_port, gateway_process, write_config

OPAQUE_BEARER = "opaque-bearer-secret-1"
OPAQUE_COOKIE = "opaque-cookie-secret-2"
OPAQUE_TICKET = "opaque-ticket-secret-3"


def malformed_requests(jwt: str) -> list[bytes]:
    """Requests aiohttp's parser refuses, each quoting a credential in its error."""
    shapes = [
        f"GET /api/v1/scans/?token={jwt} HTTP/1.1 extra\r\nHost: x\r\n\r\n",  # bad request line
        f"GET /api/v1/scans/?access_token={jwt}\x00 HTTP/1.1\r\nHost: x\r\n\r\n",  # bad URL char
        f"GET /api/v1/scans/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\x01\r\n\r\n",
        f"GET /api/v1/scans/ HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {jwt}\r\n\r\n",
        f"GET /api/v1/scans/ HTTP/1.1\r\nHost: x\r\nX-A: {jwt}{'a' * 9000}\r\n\r\n",  # too long
        f"GET /?token={jwt}&pad={'p' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n",  # long request line
        f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPAQUE_BEARER}\x01\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b; xployt_session={OPAQUE_COOKIE}\x7f\r\n\r\n",
        f"GET /api/v1/scans/x/stream?ticket={OPAQUE_TICKET} HTTP/1.1 bad\r\nHost: x\r\n\r\n",
    ]
    return [shape.encode() for shape in shapes]


def leaked(jwt: str, text: str) -> list[str]:
    """Pieces of the token (past its public header) or of the opaque secrets in ``text``."""
    secret = jwt.split(".", 1)[1]
    pieces = [secret[i : i + 12] for i in range(0, len(secret) - 12, 4)]
    pieces += [OPAQUE_BEARER, OPAQUE_COOKIE, OPAQUE_TICKET]
    return [piece for piece in pieces if piece in text]


async def send_raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
async def test_malformed_requests_never_log_their_credentials(tmp_path, json_lines):
    port = free_port()
    config_path = write_config(tmp_path, {"logging": {"json": json_lines}})
    jwt = token()
    shapes = malformed_requests(jwt)
    log: list[str] = []
    async with gateway_process(config_path, port, log) as process:
        for shape in shapes:
            answer = await send_raw(port, shape)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        process.send_signal(signal.SIGTERM)  # a clean stop: every line is written
        await process.wait()
    text = "".join(log)
    # Each request was logged with the parser's reason: where tokens used to leak.
    assert text.count("Error handling request") == len(shapes), text
    assert text.count("[redacted]") >= len(shapes)
    # One bounded WARNING line each, no traceback: anyone can send these, so they must not
    # cost the log more than they cost the sender.
    parse_errors = [line for line in log if "Error handling request" in line]
    assert all(len(line) < 600 for line in parse_errors), parse_errors
    assert "Traceback" not in text
    if json_lines:
        lines = [json.loads(line) for line in log if line.strip()]
        errors = [line for line in lines if line["message"].startswith("Error handling")]
        assert len(errors) == len(shapes)
        assert all(line["level"] == "WARNING" and "exception" not in line for line in errors)
    else:
        assert all(" WARNING aiohttp.server: " in line for line in parse_errors)
    assert leaked(jwt, text) == []


def record_with_everything(jwt: str) -> logging.LogRecord:
    try:
        raise ValueError(f"bad line b'Authorization: Bearer {jwt}\\x01'")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "request %s with ticket=%s",
        (f"/x?token={jwt}", OPAQUE_TICKET),
        exc_info,
        sinfo=f"Stack (most recent call last):\n  cookie xployt_session={OPAQUE_COOKIE}",
    )
    record.__dict__["peer"] = f"Bearer {OPAQUE_BEARER}"  # an extra field
    return record


@pytest.mark.parametrize("formatter", [logging.Formatter(), JSONFormatter()], ids=["text", "json"])
def test_token_filter_redacts_message_args_exception_stack_and_extras(formatter):
    jwt = token()
    record = record_with_everything(jwt)
    assert TokenFilter().filter(record) is True
    line = formatter.format(record)
    assert leaked(jwt, line) == []
    assert "Bearer [redacted]" in line and "ValueError" in line and "Stack" in line
    assert record.__dict__["peer"] == "Bearer [redacted]"


def test_token_filter_knows_the_configured_cookie():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "Cookie: sid=abc; other=1", None, None
    )
    TokenFilter(cookie_name="sid").filter(record)
    assert record.getMessage() == "Cookie: sid=[redacted]; other=1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /a?tok%65n=opaque1 HTTP/1.1", "GET /a?tok%65n=[redacted] HTTP/1.1"),
        ("GET /a?%74icket=opaque2&x=1", "GET /a?%74icket=[redacted]&x=1"),
        ("GET /a?ACCESS_TOKEN=opaque3", "GET /a?ACCESS_TOKEN=[redacted]"),
        ("x-token=opaque4", "x-token=[redacted]"),
        ("GET /a?tokens=kept&mytoken=kept", "GET /a?tokens=kept&mytoken=kept"),
    ],
)
def test_token_parameters_are_redacted_however_their_names_are_spelled(text, expected):
    """aiohttp decodes a percent-encoded parameter name (``tok%65n`` is ``token``), so the
    credential rides there too; a malformed request's record quotes it as sent."""
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, text, None, None)
    TokenFilter().filter(record)
    assert record.getMessage() == expected


def test_json_formatter_uses_the_redacted_exception_text():
    jwt = token()
    record = record_with_everything(jwt)
    TokenFilter().filter(record)
    entry = json.loads(JSONFormatter().format(record))
    assert "Bearer [redacted]" in entry["exception"]
    assert entry["stack"].endswith("xployt_session=[redacted]")
    assert leaked(jwt, json.dumps(entry)) == []


@pytest.mark.parametrize(
    "given",
    [token(), "a.b", "x" * 65, "has space", "é", "eyJhbGciOiJIUzI1NiJ9.e30.sig"],
)
async def test_only_plain_bounded_request_ids_are_kept(client, caplog, given):
    caplog.set_level(logging.INFO)
    response = await client.get("/api/v1/scans/", headers={**auth(), "X-Request-ID": given})
    assert response.status == 200
    made = response.headers["X-Request-ID"]
    assert made != given and len(made) == 32
    assert given not in caplog.text


async def test_a_plain_request_id_is_kept(client):
    plain = "A_b-9" + "x" * 59  # 64 characters
    response = await client.get("/healthz", headers={"X-Request-ID": plain})
    assert response.headers["X-Request-ID"] == plain
