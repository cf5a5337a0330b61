"""Permissions on every route, driven from the router (a new route is covered, or this fails
asking how to call it); the operator's reach over other subjects' scans; tickets that only
read; 403 on a scan the caller can see, 404 on one it cannot."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from gateway.http.access import MAX_SUBJECT
from gateway.http.operations import Operation, Permission, declaration
from tests.helpers import SECRET, error_shape, scans_ended, start_scan

GOOD = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}
EVERY = frozenset({Permission.READ, Permission.WRITE, Permission.CANCEL})


def scoped(sub: str = "alice", scope: str | list[str] | None = None, **claims: Any) -> dict:
    """Headers with an HS256 token whose ``scope`` claim is ``scope`` (None: no claim)."""
    payload: dict[str, Any] = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    if scope is not None:
        payload["scope"] = scope
    return {"Authorization": f"Bearer {jwt.encode(payload, SECRET)}"}


def protected(app) -> list[tuple[str, str, Operation]]:
    """Every route that needs a credential, with its declaration."""
    found = []
    for route in app.router.routes():
        declared = declaration(route.handler)
        if route.method == "HEAD" or not isinstance(declared, Operation):
            continue
        if declared.needs_credential:
            assert route.resource is not None
            found.append((route.method, route.resource.canonical, declared))
    return found


# How to call a protected route: a value for each path parameter, a body for each method.
# A route with a parameter not listed here fails the test below: say how to call it.
PATH_VALUES = {"scan_id"}


async def call(client, method: str, path: str, headers: dict, scan_id: str) -> int:
    variables = {name.strip("{}") for name in path.split("/") if name.startswith("{")}
    assert variables <= PATH_VALUES, f"{method} {path}: add its parameters to this test"
    url = path.replace("{scan_id}", scan_id)
    body = GOOD if (method, path.rstrip("/")) == ("POST", "/api/v1/scans") else None
    async with client.request(method, url, json=body, headers=headers) as response:
        await response.read()
        if response.status == 403:
            error_shape(await response.json())
            challenge = response.headers.get("WWW-Authenticate", "")
            assert 'error="insufficient_scope"' in challenge, (method, path, challenge)
        return int(response.status)


async def test_every_protected_route_needs_its_declared_permission(client):
    scan_id = await start_scan(client)
    await scans_ended(scan_id)  # a completed scan: its results and stream end
    routes = protected(client.app)
    assert len(routes) >= 8, routes
    for method, path, declared in routes:
        needed = declared.permission
        assert needed is not None, f"{method} {path} declares no permission"
        if needed == "none":  # acts on no scan: any valid token
            assert await call(client, method, path, scoped(scope=""), scan_id) != 403
            continue
        assert isinstance(needed, Permission)
        # Nothing, and everything else (an operator's rights aside): 403, naming it.
        for scope in ("", " ".join(sorted(EVERY - {needed})), "openid profile"):
            status = await call(client, method, path, scoped(scope=scope), scan_id)
            assert status == 403, (method, path, scope, status)
        # Just the declared one: through (whatever else the route then answers).
        status = await call(client, method, path, scoped(scope=needed.value), scan_id)
        assert status not in (401, 403, 404), (method, path, status)


async def test_a_scan_the_caller_cannot_see_is_404_whatever_its_permissions(client):
    scan_id = await start_scan(client, sub="alice")
    await scans_ended(scan_id)
    for method, path, _ in protected(client.app):
        if "{scan_id}" not in path:
            continue
        for scope in (None, "", "scans:read scans:write scans:cancel"):
            status = await call(client, method, path, scoped("bob", scope), scan_id)
            assert status == 404, (method, path, scope, status)


async def test_a_token_without_permission_claims_keeps_the_owners_rights(client):
    scan_id = await start_scan(client)
    await scans_ended(scan_id)
    for method, path, _ in protected(client.app):
        status = await call(client, method, path, scoped(scope=None), scan_id)
        assert status not in (401, 403, 404), (method, path, status)
    other = await start_scan(client, sub="bob")
    listed = await client.get("/api/v1/scans/?subject=bob", headers=scoped(scope=None))
    assert listed.status == 403
    assert (await client.get(f"/api/v1/scans/{other}", headers=scoped())).status == 404


async def test_required_permissions_turn_claimless_tokens_away(gateway):
    client = await gateway(auth={"require_permissions": True})
    response = await client.post("/api/v1/scans/", json=GOOD, headers=scoped(scope=None))
    assert response.status == 403
    assert "needs the permission scans:write" in (await response.json())["message"]
    response = await client.post("/api/v1/scans/", json=GOOD, headers=scoped(scope="scans:write"))
    assert response.status == 201


@pytest.mark.parametrize(
    ("claims", "value"),
    [
        (["scp"], ["scans:write"]),
        (["permissions"], ["scans:write"]),
        (["roles"], ["scans:write"]),
        (["scope", "roles"], ["scans:write"]),
    ],
)
async def test_the_permission_claim_is_configured(gateway, claims, value):
    client = await gateway(auth={"permission_claims": claims})
    name = claims[-1]
    granting: dict[str, Any] = {name: value}
    headers = scoped(scope="", **granting) if name != "scope" else scoped(scope=value)
    assert (await client.post("/api/v1/scans/", json=GOOD, headers=headers)).status == 201
    empty: dict[str, Any] = {name: []}
    without = scoped(**empty) if name != "scope" else scoped(scope=[])
    assert (await client.post("/api/v1/scans/", json=GOOD, headers=without)).status == 403


async def test_the_operator_lists_reads_and_cancels_any_subjects_scans(client):
    admin = scoped("operator", "scans:admin")
    done = await start_scan(client, sub="alice")
    await scans_ended(done)
    running = await start_scan(client, sub="alice", use_sse=True, configurations={"step_delay": 5})
    await start_scan(client, sub="bob")
    listed = await client.get("/api/v1/scans/?subject=alice", headers=admin)
    assert listed.status == 200, await listed.text()
    assert {scan["scan_id"] for scan in (await listed.json())["data"]} == {done, running}
    own = await client.get("/api/v1/scans/", headers=admin)  # no ?subject=: its own (none)
    assert (await own.json())["data"] == []
    for path in (f"/api/v1/scans/{done}", f"/api/v1/scans/{done}/results"):
        assert (await client.get(path, headers=admin)).status == 200, path
    async with client.get(f"/api/v1/scans/{done}/stream", headers=admin) as stream:
        assert stream.status == 200
        assert b'"status":"completed"' in await stream.read()
    ticket = await client.post(f"/api/v1/scans/{done}/stream-ticket", headers=admin)
    assert ticket.status == 200
    async with client.get((await ticket.json())["data"]["stream_url"]) as stream:
        assert stream.status == 200
        assert b'"status":"completed"' in await stream.read()
    cancelled = await client.delete(f"/api/v1/scans/{running}", headers=admin)
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["data"]["status"] == "cancelled"
    status = await client.get(f"/api/v1/scans/{running}", headers=scoped("alice"))
    assert (await status.json())["data"]["status"] == "cancelled"
    # It starts nothing: that needs scans:write.
    assert (await client.post("/api/v1/scans/", json=GOOD, headers=admin)).status == 403


@pytest.mark.parametrize(
    ("subject", "status"),
    [("alice", 200), ("bob", 403), ("", 400), ("x" * (MAX_SUBJECT + 1), 400), ("a\nb", 400)],
)
async def test_listing_another_subject_needs_the_operator(client, subject, status):
    await start_scan(client, sub="bob")
    response = await client.get(
        "/api/v1/scans/", params={"subject": subject}, headers=scoped("alice", "scans:read")
    )
    assert response.status == status, await response.text()
    if status == 403:
        body = await response.json()
        assert "needs the permission scans:admin" in body["message"]
        assert 'scope="scans:admin"' in response.headers["WWW-Authenticate"]


async def test_a_subject_at_the_length_limit_is_listed(client):
    admin = scoped("operator", "scans:admin")
    response = await client.get(
        "/api/v1/scans/", params={"subject": "x" * MAX_SUBJECT}, headers=admin
    )
    assert response.status == 200
    assert (await response.json())["data"] == []


async def test_a_ticket_reads_its_one_scan_and_nothing_more(client):
    scan_id = await start_scan(client, sub="alice")
    await scans_ended(scan_id)
    reader = scoped("alice", "scans:read")
    issued = await client.post(f"/api/v1/scans/{scan_id}/stream-ticket", headers=reader)
    assert issued.status == 200
    ticket = (await issued.json())["data"]["ticket"]
    claims = jwt.decode(ticket, options={"verify_signature": False})
    assert claims["scope"] == "scans:read" and claims["scan"] == scan_id
    async with client.get(f"/api/v1/scans/{scan_id}/stream?ticket={ticket}") as stream:
        assert stream.status == 200
    # A ticket opens nothing else: no other route takes one (401 without a credential).
    for method, path in (("DELETE", ""), ("POST", "/stream-ticket"), ("GET", "/results")):
        url = f"/api/v1/scans/{scan_id}{path}?ticket={ticket}"
        assert (await client.request(method, url)).status == 401, (method, path)
    # A token that cannot read gets no ticket.
    denied = await client.post(
        f"/api/v1/scans/{scan_id}/stream-ticket", headers=scoped("alice", "scans:write")
    )
    assert denied.status == 403


async def test_a_session_cookie_carries_the_tokens_permissions(client):
    reader = scoped("alice", "scans:read")
    opened = await client.post("/api/v1/auth/session", headers=reader)
    assert opened.status == 200
    cookie = opened.cookies["xployt_session"].value
    headers = {"Cookie": f"xployt_session={cookie}", "Sec-Fetch-Site": "same-origin"}
    assert (await client.get("/api/v1/scans/", headers=headers)).status == 200
    assert (await client.post("/api/v1/scans/", json=GOOD, headers=headers)).status == 403
