"""What clients send, checked: JSON bodies, the scan request, query parameters, each at its
bounds and one past them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from gateway.config import config_from_dict
from gateway.domain.errors import (
    BadRequest,
    GatewayError,
    UnknownScanner,
    ValidationError,
)
from gateway.domain.models import Status
from gateway.http.appkeys import CONFIG
from gateway.http.validation import (
    MAX_JSON_INTEGER,
    MAX_NUMBER_DIGITS,
    MAX_REPOSITORY_NAME,
    ScanRequest,
    parse_bool,
    parse_cursor,
    parse_limit,
    parse_status,
    read_json,
    scan_request,
)

SCANNERS = {"secret_scanner": "http://127.0.0.1:1/scan", "sast_scanner": "http://127.0.0.1:1/scan"}


@pytest.fixture
async def echo(aiohttp_client):
    """A server whose one route answers with what ``read_json`` made of the body, or the
    error it raised (code and status)."""

    async def handler(request: web.Request) -> web.Response:
        try:
            return web.json_response({"value": await read_json(request)})
        except GatewayError as exc:
            return web.json_response({"error": exc.code, "message": str(exc)}, status=exc.status)

    app = web.Application()
    app[CONFIG] = config_from_dict({})
    app.router.add_post("/", handler)
    client = await aiohttp_client(app)

    async def post(body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
        response = await client.post("/", data=body, headers={"Content-Type": content_type})
        return response.status, await response.json()

    return post


async def test_read_json_takes_integers_up_to_64_bits(echo):
    largest = str(MAX_JSON_INTEGER).encode()
    assert await echo(b"[%s, -%s]" % (largest, largest)) == (
        200,
        {"value": [MAX_JSON_INTEGER, -MAX_JSON_INTEGER]},
    )
    status, body = await echo(str(MAX_JSON_INTEGER + 1).encode())
    assert (status, body["error"]) == (400, "invalid_json")
    assert "does not fit in 64 bits" in body["message"]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"{", "not valid JSON"),
        (b"NaN", "not valid JSON"),
        (b"1e999", "not a finite number"),
        (b"\xff", "not valid UTF-8"),
        (b'"\\ud800"', "surrogate"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
async def test_read_json_refuses_what_is_not_strict_json(echo, raw, needle):
    status, body = await echo(raw)
    assert (status, body["error"]) == (400, "invalid_json")
    assert needle in body["message"]


async def test_read_json_takes_json_media_types_only(echo):
    assert (await echo(b"{}", "application/problem+json"))[0] == 200
    status, body = await echo(b"{}", "text/plain")
    assert (status, body["error"]) == (415, "unsupported_media_type")


def test_scan_request_at_its_bounds():
    longest = "r" * MAX_REPOSITORY_NAME
    body = {"repository_name": f"  {longest} ", "scanner_name": "sast_scanner"}
    assert scan_request(body, SCANNERS) == ScanRequest(longest, "sast_scanner", {})
    with pytest.raises(ValidationError, match=f"longer than {MAX_REPOSITORY_NAME}"):
        scan_request({**body, "repository_name": longest + "r"}, SCANNERS)
    wanted = {**body, "configurations": {"depth": 2}}
    assert scan_request(wanted, SCANNERS).configurations == {"depth": 2}
    assert scan_request({**body, "configurations": None}, SCANNERS).configurations == {}


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        ([], ValidationError, "must be a JSON object, got an array"),
        ({"scanner_name": "sast_scanner"}, ValidationError, "'repository_name' is required"),
        ({"repository_name": 1, "scanner_name": "x"}, ValidationError, "got a number"),
        ({"repository_name": " ", "scanner_name": "x"}, ValidationError, "must not be empty"),
        ({"repository_name": "a", "scanner_name": "x", "extra": 1}, ValidationError, "extra"),
        ({"repository_name": "a", "scanner_name": "nope"}, UnknownScanner, "sast_scanner"),
        (
            {"repository_name": "a", "scanner_name": "sast_scanner", "configurations": []},
            ValidationError,
            "'configurations' must be an object",
        ),
        *(
            (
                {"repository_name": f"acme/{char}web", "scanner_name": "sast_scanner"},
                ValidationError,
                "must not hold control characters",
            )
            for char in ("\x00", "\x1b", "\x85", "\u2028", "\u202e", "\u2066")
        ),
    ],
)
def test_scan_request_refusals(body, error, needle):
    with pytest.raises(error, match=needle):
        scan_request(body, SCANNERS)


def test_parse_bool():
    assert parse_bool(None, "x", default=True) is True
    assert parse_bool("", "x", default=False) is False
    assert [parse_bool(v, "x", default=False) for v in ("true", " ON ", "1", "Yes")] == [True] * 4
    assert [parse_bool(v, "x", default=True) for v in ("false", "OFF", "0", "no")] == [False] * 4
    with pytest.raises(BadRequest, match="'x' must be true or false"):
        parse_bool("maybe", "x", default=False)


def test_parse_limit_at_its_bounds():
    assert parse_limit(None, default=20, maximum=100) == 20
    assert parse_limit("1", default=20, maximum=100) == 1
    assert parse_limit("100", default=20, maximum=100) == 100
    assert parse_limit("0" * 50 + "100", default=20, maximum=100) == 100
    for past in ("0", "101", "9" * 5000):
        with pytest.raises(BadRequest, match="between 1 and 100"):
            parse_limit(past, default=20, maximum=100)
    for bad in ("-1", "1.5", "١٢"):  # Arabic-Indic digits are digits, not ASCII ones
        with pytest.raises(BadRequest, match="whole number"):
            parse_limit(bad, default=20, maximum=100)


def test_parse_cursor_at_its_bounds():
    assert parse_cursor(None) == parse_cursor("") == 0
    assert parse_cursor("9" * MAX_NUMBER_DIGITS) == int("9" * MAX_NUMBER_DIGITS)
    with pytest.raises(BadRequest, match=f"at most {MAX_NUMBER_DIGITS} digits"):
        parse_cursor("9" * (MAX_NUMBER_DIGITS + 1))
    with pytest.raises(BadRequest, match="whole number"):
        parse_cursor("-1")


def test_parse_status():
    assert parse_status(None) is None
    assert parse_status(" Completed ") is Status.COMPLETED
    with pytest.raises(BadRequest, match="must be one of pending"):
        parse_status("done")
    long = "x" * 1000
    with pytest.raises(BadRequest) as refused:
        parse_status(long)
    assert len(str(refused.value)) < 300, "the echo of a long value is cut"
