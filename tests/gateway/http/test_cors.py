"""CORS for the configured origins: preflights answered before auth, credentialed responses
(so never ``*``), streams and errors included, and nothing for any other origin."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, config_from_dict
from tests.helpers import auth, start_scan

ORIGIN = "https://app.example"


@pytest.fixture
async def cors_client(gateway):
    return await gateway(cors={"allowed_origins": [ORIGIN, "http://localhost:3000"]})


async def test_preflight_for_allowed_origin(cors_client):
    response = await cors_client.options(
        "/api/v1/scans/abc/stream",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert response.status == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "Last-Event-ID" in headers["Access-Control-Allow-Headers"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert "DELETE" in headers["Access-Control-Allow-Methods"]
    assert "Origin" in headers["Vary"]


async def test_other_origins_get_no_cors_headers(cors_client):
    response = await cors_client.options(
        "/api/v1/scans/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    plain = await cors_client.get(
        "/api/v1/scans/", headers={**auth(), "Origin": "https://evil.example"}
    )
    assert plain.status == 200
    assert "Access-Control-Allow-Origin" not in plain.headers


async def test_actual_responses_carry_cors_headers(cors_client):
    ok = await cors_client.get("/api/v1/scans/", headers={**auth(), "Origin": ORIGIN})
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    denied = await cors_client.get("/api/v1/scans/", headers={"Origin": ORIGIN})
    assert denied.status == 401
    assert denied.headers["Access-Control-Allow-Origin"] == ORIGIN
    scan_id = await start_scan(cors_client)
    async with cors_client.get(
        f"/api/v1/scans/{scan_id}/stream", headers={**auth(), "Origin": ORIGIN}
    ) as stream:
        assert stream.headers["Access-Control-Allow-Origin"] == ORIGIN
        await stream.read()


def test_wildcard_origin_is_refused():
    with pytest.raises(ConfigError, match="never allowed"):
        config_from_dict({"cors": {"allowed_origins": ["*"]}})


async def test_preflight_max_age_comes_from_config_and_preflights_need_no_token(gateway):
    client = await gateway(cors={"allowed_origins": [ORIGIN], "max_age_seconds": 42})
    response = await client.options(
        "/api/v1/scans/", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert response.status == 204
    assert response.headers["Access-Control-Max-Age"] == "42"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, DELETE, OPTIONS"


async def test_every_response_varies_on_origin_whatever_the_origin(cors_client):
    """A shared cache must not hand one origin's CORS answer to another."""
    for headers in ({}, {"Origin": ORIGIN}, {"Origin": "https://evil.example"}):
        response = await cors_client.get("/api/v1/scans/", headers={**auth(), **headers})
        assert response.status == 200
        assert response.headers["Vary"] == "Origin"
    missing = await cors_client.get("/no/such/route", headers={"Origin": ORIGIN})
    assert missing.status == 404
    assert missing.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert missing.headers["Access-Control-Expose-Headers"] == (
        "Location, Retry-After, WWW-Authenticate"
    )


async def test_an_options_request_that_is_no_preflight_is_routed(cors_client):
    """Without Access-Control-Request-Method it is a plain OPTIONS: the router answers it."""
    response = await cors_client.options("/api/v1/scans/", headers={"Origin": ORIGIN})
    assert response.status == 405
    assert "Access-Control-Allow-Methods" not in response.headers
