"""One error envelope for every kind of failure, with the right status."""

from __future__ import annotations

import pytest

from tests.helpers import auth, error_shape, start_scan, stream

GOOD = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}


async def post_raw(client, data, content_type="application/json", headers=None, query=""):
    return await client.post(
        f"/api/v1/scans/{query}",
        data=data,
        headers={"Content-Type": content_type, **auth(), **(headers or {})},
    )


@pytest.mark.parametrize(
    ("data", "status", "code", "needle"),
    [
        (b"{not json", 400, "invalid_json", "not valid JSON"),
        (b"", 400, "invalid_json", "empty"),
        (b"\xff\xfe", 400, "invalid_json", "UTF-8"),
        (b"[1, 2]", 422, "validation_error", "JSON object"),
        (b"[" * 30000 + b"]" * 30000, 400, "invalid_json", "not valid JSON"),
        (b'{"repository_name": ' + b"9" * 5000 + b"}", 400, "invalid_json", "out of range"),
        (
            b'{"repository_name": "a/b", "scanner_name": "secret_scanner", '
            b'"configurations": {"x": [1, 1e999]}}',
            400,
            "invalid_json",
            "1e999 is not a finite number",
        ),
        (
            b'{"repository_name": "a/b", "scanner_name": "secret_scanner", '
            b'"configurations": {"x": -1E+400}}',
            400,
            "invalid_json",
            "not a finite number",
        ),
        (
            b'{"repository_name": "a/b", "scanner_name": "secret_scanner", '
            b'"configurations": {"x": 9223372036854775808}}',
            400,
            "invalid_json",
            "does not fit in 64 bits",
        ),
        (
            b'{"repository_name": "a/b", "scanner_name": "secret_scanner", '
            b'"configurations": {"x": NaN}}',
            400,
            "invalid_json",
            "not valid JSON",
        ),
        (
            b'{"repository_name": "a\\ud800", "scanner_name": "secret_scanner"}',
            400,
            "invalid_json",
            "surrogate",
        ),
        (b'{"scanner_name": "secret_scanner"}', 422, "validation_error", "repository_name"),
        (b'{"repository_name": "a/b"}', 422, "validation_error", "scanner_name"),
        (
            b'{"repository_name": 7, "scanner_name": "secret_scanner"}',
            422,
            "validation_error",
            "'repository_name' must be a string",
        ),
        (
            b'{"repository_name": "  ", "scanner_name": "secret_scanner"}',
            422,
            "validation_error",
            "must not be empty",
        ),
        (
            b'{"repository_name": "a/b", "scanner_name": "secret_scanner", "configurations": []}',
            422,
            "validation_error",
            "'configurations' must be an object",
        ),
        (
            b'{"repository_name": "a/b", "scanner_name": "secret_scanner", "scanner": "x"}',
            422,
            "validation_error",
            "unknown field(s): scanner",
        ),
        (
            b'{"repository_name": "a/b", "scanner_name": "nmap"}',
            400,
            "unknown_scanner",
            "dast_scanner, llm_scanner, sast_scanner, secret_scanner",
        ),
    ],
    ids=[
        "not-json",
        "empty",
        "not-utf8",
        "not-object",
        "deeply-nested",
        "huge-integer",
        "overflowing-float",
        "negative-overflowing-float",
        "integer-past-64-bits",
        "nan",
        "lone-surrogate",
        "missing-repository",
        "missing-scanner",
        "mistyped-repository",
        "blank-repository",
        "mistyped-configurations",
        "unknown-field",
        "unknown-scanner",
    ],
)
async def test_bad_bodies(client, data, status, code, needle):
    response = await post_raw(client, data)
    assert response.status == status
    body = await response.json()
    error_shape(body)
    assert body["error"] == code
    assert needle in body["message"]
    listed = await client.get("/api/v1/scans/", headers=auth())
    assert (await listed.json())["data"] == [], "a rejected request stores nothing"


async def test_wrong_media_type_is_415(client):
    response = await post_raw(client, b"repository_name=x", content_type="text/plain")
    assert response.status == 415
    body = await response.json()
    error_shape(body)
    assert "application/json" in body["message"]


async def test_oversize_body_is_413(gateway):
    client = await gateway(server={"max_body_bytes": 1024})
    padding = "x" * 2000
    response = await post_raw(
        client, f'{{"repository_name": "{padding}", "scanner_name": "secret_scanner"}}'.encode()
    )
    assert response.status == 413
    body = await response.json()
    error_shape(body)
    assert body["error"] == "payload_too_large"


async def test_bad_use_sse_is_400(client):
    response = await post_raw(
        client, b'{"repository_name": "a", "scanner_name": "sast_scanner"}', query="?use_sse=maybe"
    )
    assert response.status == 400
    body = await response.json()
    error_shape(body)
    assert "use_sse" in body["message"]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("limit=0", "between 1 and 500"),
        ("limit=501", "between 1 and 500"),
        ("limit=ten", "whole number"),
        ("limit=%E0%A5%AB", "whole number"),
        ("limit=%2B5", "whole number"),
        ("limit=" + "9" * 5000, "between 1 and 500"),
        ("limit=" + "0" * 3 + "501", "between 1 and 500"),
        ("status=" + "x" * 5000, "one of pending"),
        ("status=paused", "one of pending"),
    ],
)
async def test_bad_list_queries_are_400(client, query, needle):
    response = await client.get(f"/api/v1/scans/?{query}", headers=auth())
    assert response.status == 400
    body = await response.json()
    error_shape(body)
    assert needle in body["message"]
    assert len(body["message"]) < 300, "a huge value is not echoed whole"


@pytest.mark.parametrize("limit", ["500", "0000500", "1"])
async def test_list_limit_at_its_bounds(client, limit):
    response = await client.get(f"/api/v1/scans/?limit={limit}", headers=auth())
    assert response.status == 200


async def test_numbers_at_their_bounds_are_accepted(client):
    configurations = {"big": 2**63 - 1, "small": -(2**63) + 1, "x": 1.7976931348623157e308}
    scan_id = await start_scan(client, configurations=configurations)
    assert scan_id


async def test_unknown_scan_is_404(client):
    response = await client.get("/api/v1/scans/no-such-scan", headers=auth())
    assert response.status == 404
    body = await response.json()
    error_shape(body)
    assert body["error"] == "scan_not_found"


async def test_unknown_route_and_wrong_method(client):
    missing = await client.get("/api/v1/nothing", headers=auth())
    assert missing.status == 404
    error_shape(await missing.json())
    wrong = await client.put("/api/v1/scans/", headers=auth())
    assert wrong.status == 405
    body = await wrong.json()
    error_shape(body)
    assert body["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


async def test_missing_token_is_401_with_challenge(client):
    response = await client.get("/api/v1/scans/")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error_shape(await response.json())


async def test_results_conflict_shape(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    response = await client.get(f"/api/v1/scans/{scan_id}/results", headers=auth())
    assert response.status == 409
    error_shape(await response.json())


async def test_store_unavailable_is_503(client):
    from gateway.http.appkeys import STORE

    scan_id = await start_scan(client)
    await stream(client, scan_id)
    await client.app[STORE].close()
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    error_shape(body)
    assert body["error"] == "store_unavailable"


def test_the_hierarchy_docstring_lists_every_error_with_its_status_and_code():
    import re

    from gateway.domain import errors

    def subclasses(cls: type[errors.GatewayError]) -> list[type[errors.GatewayError]]:
        found = [cls]
        for child in cls.__subclasses__():
            found += subclasses(child)
        return found

    lines = {
        match[1]: (int(match[2]), match[3])
        for match in re.finditer(r"(\w+)\s+(\d{3}) (\w+)", errors.__doc__ or "")
    }
    # The public hierarchy; a module's private subclass (name starting "_") is its own detail.
    classes = [cls for cls in subclasses(errors.GatewayError) if not cls.__name__.startswith("_")]
    assert {cls.__name__ for cls in classes} == set(lines)
    for cls in classes:
        assert lines[cls.__name__] == (cls.status, cls.code), cls.__name__
        assert cls.__name__ in errors.__all__
