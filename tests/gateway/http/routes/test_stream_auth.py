"""EventSource-friendly auth: stream tickets, the session cookie, query tokens; expiry."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest

from gateway.http.appkeys import TICKETS
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import SECRET, auth, error_shape, start_scan, stream, token


async def ticket_for(client, scan_id, sub="alice"):
    response = await client.post(f"/api/v1/scans/{scan_id}/stream-ticket", headers=auth(sub))
    assert response.status == 200, await response.text()
    return (await response.json())["data"]


async def get_status(client, path, **kwargs):
    async with client.get(path, **kwargs) as response:
        await response.read()
        return response.status


async def test_ticket_opens_the_stream_of_its_scan_only(client):
    scan_id = await start_scan(client)
    other = await start_scan(client)
    data = await ticket_for(client, scan_id)
    assert data["stream_url"] == f"/api/v1/scans/{scan_id}/stream?ticket={data['ticket']}"
    assert 60 <= data["expires_in"] <= 3600
    async with client.get(data["stream_url"]) as response:
        assert response.status == 200
        body = await response.read()
    assert b'"status":"completed"' in body
    # The same ticket on another scan, another route, or as a bearer token: refused.
    ticket = data["ticket"]
    wrong_scan = await client.get(f"/api/v1/scans/{other}/stream?ticket={ticket}")
    assert wrong_scan.status == 401
    body = await wrong_scan.json()
    error_shape(body)
    assert "not valid for this scan" in body["message"]
    for path in (f"/api/v1/scans/{scan_id}", f"/api/v1/scans/{scan_id}/results", "/api/v1/scans/"):
        assert await get_status(client, f"{path}?ticket={ticket}") == 401, path
    bearer = {"Authorization": f"Bearer {ticket}"}
    assert await get_status(client, f"/api/v1/scans/{scan_id}", headers=bearer) == 401
    await stream(client, other)


async def test_tickets_are_for_the_owner_only(client):
    scan_id = await start_scan(client, sub="alice")
    response = await client.post(f"/api/v1/scans/{scan_id}/stream-ticket", headers=auth("bob"))
    assert response.status == 404
    await stream(client, scan_id)


async def test_expired_and_tampered_tickets_are_refused(client):
    scan_id = await start_scan(client)
    issuer = client.app[TICKETS]
    expired = issuer.issue("alice", scan_id, 1)
    payload = jwt.decode(expired, options={"verify_signature": False})
    expired = jwt.encode({**payload, "exp": int(time.time()) - 5}, issuer._key)
    good = (await ticket_for(client, scan_id))["ticket"]
    _head, _body, signature = good.split(".")
    forged_claims = {**jwt.decode(good, options={"verify_signature": False}), "sub": "mallory"}
    forged = jwt.encode(forged_claims, "not-the-key-" * 4).rsplit(".", 1)[0] + "." + signature
    api_token_as_ticket = token("alice")
    for bad, needle in (
        (expired, "expired"),
        (forged, "signature"),
        (api_token_as_ticket, "ticket"),
        (good[:-3] + "abc", "signature"),
    ):
        response = await client.get(f"/api/v1/scans/{scan_id}/stream?ticket={bad}")
        assert response.status == 401
        message = (await response.json())["message"]
        assert needle in message, message
    await stream(client, scan_id)


async def test_ticket_ttl_is_the_scans_remaining_lifetime_capped(gateway, tmp_path):
    client = await gateway(upstream={"scan_timeout_seconds": 600})
    scan_id = await start_scan(client)
    assert 590 <= (await ticket_for(client, scan_id))["expires_in"] <= 600
    capped = await gateway(
        upstream={"scan_timeout_seconds": 600},
        auth={"ticket_max_ttl_seconds": 120},
        database={"path": str(tmp_path / "capped.db")},
    )
    scan_id2 = await start_scan(capped)
    assert (await ticket_for(capped, scan_id2))["expires_in"] == 120
    fixed = await gateway(
        auth={"ticket_ttl_seconds": 90}, database={"path": str(tmp_path / "fixed.db")}
    )
    scan_id3 = await start_scan(fixed)
    assert (await ticket_for(fixed, scan_id3))["expires_in"] == 90
    for c, s in ((client, scan_id), (capped, scan_id2), (fixed, scan_id3)):
        await stream(c, s)


async def test_cookie_session_flow(client):
    response = await client.post("/api/v1/auth/session", headers=auth("alice"))
    assert response.status == 200
    cookie = response.cookies["xployt_session"]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/api/"
    assert 3500 <= int(cookie["max-age"]) <= 3600
    value = cookie.value
    jar = {"Cookie": f"xployt_session={value}"}
    scan = await client.post(
        "/api/v1/scans/",
        json={"repository_name": "a/b", "scanner_name": "secret_scanner"},
        headers={**jar, "Origin": own_origin(client)},  # as a browser's fetch sends it
    )
    assert scan.status == 201
    scan_id = (await scan.json())["data"]["scan_id"]
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=jar) as response:
        assert response.status == 200
        assert b'"status":"completed"' in await response.read()
    # A cross-site page cannot use the cookie to change anything.
    cross = await client.post(
        "/api/v1/scans/",
        json={"repository_name": "a/b", "scanner_name": "secret_scanner"},
        headers={**jar, "Origin": "https://evil.example"},
    )
    assert cross.status == 403
    error_shape(await cross.json())
    closed = await client.delete("/api/v1/auth/session")
    assert closed.status == 200
    assert closed.cookies["xployt_session"].value == ""
    assert int(closed.cookies["xployt_session"]["max-age"]) == 0


def own_origin(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def cookie_jar(client) -> dict[str, str]:
    response = await client.post("/api/v1/auth/session", headers=auth("alice"))
    return {"Cookie": f"xployt_session={response.cookies['xployt_session'].value}"}


BODY = {"repository_name": "a/b", "scanner_name": "secret_scanner"}


def refused_origins(client) -> dict[str, dict[str, str]]:
    url = client.make_url("")
    return {
        "no-origin": {},
        "other-scheme": {"Origin": f"https://{url.host}:{url.port}"},
        "other-port": {"Origin": f"http://{url.host}:{url.port + 1}"},
        "other-host": {"Origin": f"http://evil.example:{url.port}"},
        "null": {"Origin": "null"},
        "garbage": {"Origin": "http://[::1"},
        "bad-port": {"Origin": f"http://{url.host}:99999"},
        "cross-site-fetch": {"Sec-Fetch-Site": "cross-site"},
        "same-site-fetch": {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.example"},
    }


async def test_cookie_changes_without_a_matching_origin_are_403(client):
    jar = await cookie_jar(client)
    scan_id = await start_scan(client)
    for name, headers in refused_origins(client).items():
        started = await client.post("/api/v1/scans/", json=BODY, headers={**jar, **headers})
        assert started.status == 403, name
        error_shape(await started.json())
        cancelled = await client.delete(f"/api/v1/scans/{scan_id}", headers={**jar, **headers})
        assert cancelled.status == 403, name
        ticket = await client.post(
            f"/api/v1/scans/{scan_id}/stream-ticket", headers={**jar, **headers}
        )
        assert ticket.status == 403, name
    listed = await client.get("/api/v1/scans/", headers=auth())
    assert len((await listed.json())["data"]) == 1, "nothing was started"
    # Reads need no origin; the bearer token needs none either.
    assert (await client.get("/api/v1/scans/", headers=jar)).status == 200
    assert (await client.post("/api/v1/scans/", json=BODY, headers=auth())).status == 201


async def test_cookie_changes_from_this_origin_or_an_allowed_one_pass(gateway):
    client = await gateway(cors={"allowed_origins": ["https://app.example"]})
    jar = await cookie_jar(client)
    url = client.make_url("")
    accepted = {
        "same-origin": {"Origin": own_origin(client)},
        "same-origin-upper-case": {"Origin": f"HTTP://{url.host}:{url.port}"},
        "fetch-metadata": {"Sec-Fetch-Site": "same-origin"},
        "allowed": {"Origin": "https://app.example"},
        "allowed-default-port": {"Origin": "https://app.example:443"},
    }
    for name, headers in accepted.items():
        started = await client.post("/api/v1/scans/", json=BODY, headers={**jar, **headers})
        assert started.status == 201, (name, await started.text())


async def test_the_scheme_behind_a_proxy_is_trusted_only_when_configured(gateway, tmp_path):
    proxied = {"Host": "scans.example", "Origin": "https://scans.example"}
    proxied_https = {**proxied, "X-Forwarded-Proto": "https"}
    client = await gateway()
    jar = await cookie_jar(client)
    for headers in (proxied, proxied_https):
        response = await client.post("/api/v1/scans/", json=BODY, headers={**jar, **headers})
        assert response.status == 403
    trusting = await gateway(
        server={"trust_forwarded_proto": True}, database={"path": str(tmp_path / "t.db")}
    )
    jar = await cookie_jar(trusting)
    started = await trusting.post("/api/v1/scans/", json=BODY, headers={**jar, **proxied_https})
    assert started.status == 201
    response = await trusting.post("/api/v1/scans/", json=BODY, headers={**jar, **proxied})
    assert response.status == 403, "without the header the connection's http counts"


async def test_session_needs_a_bearer_token(client):
    response = await client.post(
        "/api/v1/auth/session",
        headers={"Cookie": f"xployt_session={token()}", "Origin": own_origin(client)},
    )
    assert response.status == 401
    error_shape(await response.json())


async def test_cookie_flags_follow_config(gateway):
    client = await gateway(auth={"cookie_secure": False, "cookie_samesite": "Strict"})
    response = await client.post("/api/v1/auth/session", headers=auth())
    cookie = response.cookies["xployt_session"]
    assert cookie["secure"] == ""
    assert cookie["samesite"] == "Strict"


@pytest.mark.parametrize("param", ["token", "access_token"])
async def test_query_tokens_work_and_never_reach_the_log(client, caplog, param):
    caplog.set_level(logging.INFO)
    value = token("alice")
    scan_id = await start_scan(client)
    async with client.get(f"/api/v1/scans/{scan_id}/stream?{param}={value}") as response:
        assert response.status == 200
        await response.read()
    ticket = (await ticket_for(client, scan_id))["ticket"]
    assert await get_status(client, f"/api/v1/scans/{scan_id}/stream?ticket={ticket}") == 200
    assert await get_status(client, "/healthz") == 200  # its log line comes after theirs
    assert f"/api/v1/scans/{scan_id}/stream?{param}=[redacted]" in caplog.text
    assert "stream?ticket=[redacted]" in caplog.text
    assert value not in caplog.text
    assert ticket not in caplog.text


async def test_query_tokens_can_be_switched_off(gateway):
    client = await gateway(auth={"query_tokens": False})
    scan_id = await start_scan(client)
    assert await get_status(client, f"/api/v1/scans/{scan_id}?token={token()}") == 401
    await stream(client, scan_id)


async def test_expiring_credential_ends_the_stream_with_auth_expired(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    short = jwt.encode({"sub": "alice", "exp": int(time.time()) + 2}, SECRET)
    async with client.get(
        f"/api/v1/scans/{scan_id}/stream", headers={"Authorization": f"Bearer {short}"}
    ) as response:
        parser = SSEParser()
        events = [e for chunk in [await response.read()] for e in parser.feed(chunk)]
    assert [e.type for e in events] == ["message", "message", "auth_expired"]
    data = json.loads(events[-1].data)
    assert data["last_event_id"] == 2
    assert "expired" in data["reason"]
    # The client resumes with a fresh credential from its last id and loses nothing.
    ticket = (await ticket_for(client, scan_id))["ticket"]
    async with client.get(
        f"/api/v1/scans/{scan_id}/stream?ticket={ticket}", headers={"Last-Event-ID": "2"}
    ) as response:
        assert response.status == 200
        first = await response.content.readuntil(b"\n\n")
        assert first == b"retry: 3000\n\n"


async def test_leeway_applies_to_open_streams_too(gateway):
    client = await gateway(jwt={"leeway_seconds": 60})
    scan_id = await start_scan(client)
    late = jwt.encode({"sub": "alice", "exp": int(time.time()) - 5}, SECRET)
    async with client.get(
        f"/api/v1/scans/{scan_id}/stream", headers={"Authorization": f"Bearer {late}"}
    ) as response:
        assert response.status == 200
        body = await response.read()
    assert b"auth_expired" not in body
    assert b'"status":"completed"' in body


async def test_a_token_shaped_like_a_ticket_is_not_an_api_token(client):
    forged = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 60, "aud": "xployt-stream-ticket"}, SECRET
    )
    response = await client.get("/api/v1/scans/", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401
    assert "ticket" in (await response.json())["message"]


async def test_query_tokens_only_read(client):
    body = {"repository_name": "a/b", "scanner_name": "secret_scanner"}
    refused = await client.post(f"/api/v1/scans/?access_token={token()}", json=body)
    assert refused.status == 401
    scan_id = await start_scan(client)
    assert await get_status(client, f"/api/v1/scans/{scan_id}?token={token()}") == 200
    cancel = await client.delete(f"/api/v1/scans/{scan_id}?token={token()}")
    assert cancel.status == 401
    await stream(client, scan_id)


async def test_a_session_cookie_lasts_at_most_400_days(client):
    """A token valid for centuries (exp near the largest float) still gets a cookie browsers
    keep: at most 400 days (RFC 6265bis), and expires_in says the same."""
    far = jwt.encode({"sub": "alice", "exp": 1e308}, SECRET, algorithm="HS256")
    response = await client.post("/api/v1/auth/session", headers={"Authorization": f"Bearer {far}"})
    assert response.status == 200, await response.text()
    days_400 = 400 * 24 * 3600
    assert int(response.cookies["xployt_session"]["max-age"]) == days_400
    assert (await response.json())["data"]["expires_in"] == days_400
