"""Bearer JWTs: algorithms and keys come from config, never from the token."""

from __future__ import annotations

import base64
import json
import logging
import time

import jwt
import pytest

from gateway.auth import TokenVerifier
from gateway.config import JWTConfig, config_from_dict
from gateway.errors import Unauthorized
from tests.conftest import SECRET, auth, error_shape, start_scan, stream, token


def b64(data: dict) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**extra):
    return {"sub": "alice", "exp": int(time.time()) + 600, **extra}


BAD_TOKENS = {
    "bad-signature": lambda: jwt.encode(claims(), "another-secret-of-sufficient-length!!"),
    "alg-none": lambda: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
    "expired": lambda: jwt.encode(claims(exp=int(time.time()) - 10), SECRET),
    "no-exp": lambda: jwt.encode({"sub": "alice"}, SECRET),
    "no-sub": lambda: jwt.encode({"exp": int(time.time()) + 600}, SECRET),
    "empty-sub": lambda: jwt.encode(claims(sub=""), SECRET),
    "malformed": lambda: "not.a.token",
    "hs512-not-allowed": lambda: jwt.encode(claims(), SECRET, algorithm="HS512"),
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401(client, name):
    response = await client.get(
        "/api/v1/scans/", headers={"Authorization": f"Bearer {BAD_TOKENS[name]()}"}
    )
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="xployt", error="invalid_token"'
    body = await response.json()
    error_shape(body)
    assert body["error"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer   ", "Basic YWxpY2U6cHc=", "Token abc"],
    ids=["missing", "empty-bearer", "blank-bearer", "basic", "other-scheme"],
)
async def test_missing_or_wrong_scheme_is_401(client, header):
    headers = {"Authorization": header} if header is not None else {}
    response = await client.post("/api/v1/scans/", json={}, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="xployt"'
    error_shape(await response.json())


async def test_every_api_route_needs_a_token(client):
    scan_id = await start_scan(client)
    for path in (
        "/api/v1/scans/",
        f"/api/v1/scans/{scan_id}",
        f"/api/v1/scans/{scan_id}/results",
        f"/api/v1/scans/{scan_id}/stream",
    ):
        response = await client.get(path)
        assert response.status == 401, path
    await stream(client, scan_id)


async def test_error_messages_do_not_echo_the_token(client):
    bad = jwt.encode(claims(), "another-secret-of-sufficient-length!!")
    response = await client.get("/api/v1/scans/", headers={"Authorization": f"Bearer {bad}"})
    assert bad not in await response.text()


async def test_audience_and_issuer_checked_when_configured(gateway):
    client = await gateway(jwt={"audience": "xployt", "issuer": "https://id.example"})
    good = jwt.encode(claims(aud="xployt", iss="https://id.example"), SECRET)
    wrong_aud = jwt.encode(claims(aud="other", iss="https://id.example"), SECRET)
    wrong_iss = jwt.encode(claims(aud="xployt", iss="https://evil.example"), SECRET)
    for value, status in ((good, 200), (wrong_aud, 401), (wrong_iss, 401)):
        response = await client.get("/api/v1/scans/", headers={"Authorization": f"Bearer {value}"})
        assert response.status == status


def test_issued_tokens_verify_and_carry_the_subject():
    verifier = TokenVerifier(JWTConfig(secret=SECRET))
    issued = verifier.issue("carol", 60)
    assert verifier.verify(issued).subject == "carol"
    header = jwt.get_unverified_header(issued)
    assert header["alg"] == "HS256"


def test_algorithm_comes_from_config_not_the_token():
    verifier = TokenVerifier(
        config_from_dict({"jwt": {"secret": SECRET, "algorithms": ["HS384"]}}).jwt
    )
    with pytest.raises(Unauthorized, match="algorithm"):
        verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS384")).subject == "alice"


def test_asymmetric_algorithms_need_a_public_key():
    with pytest.raises(ValueError, match="public_key"):
        TokenVerifier(JWTConfig(secret=SECRET, algorithms=("RS256",)))


def test_issue_rejects_bad_arguments():
    verifier = TokenVerifier(JWTConfig(secret=SECRET))
    with pytest.raises(ValueError, match="subject"):
        verifier.issue("", 60)
    with pytest.raises(ValueError, match="ttl"):
        verifier.issue("alice", 0)


async def test_good_token_is_accepted(client):
    response = await client.get("/api/v1/scans/", headers=auth())
    assert response.status == 200
    assert token("zed") != token("amy")


async def test_tokens_never_reach_the_logs(client, caplog):
    good = token("alice")
    bad = jwt.encode(claims(), "another-secret-of-sufficient-length!!")
    caplog.set_level(logging.DEBUG)
    for value in (good, bad):
        await client.get("/api/v1/scans/", headers={"Authorization": f"Bearer {value}"})
    scan_id = await start_scan(client)
    await stream(client, scan_id)
    await client.get("/healthz")  # its log line comes after theirs
    assert "GET /api/v1/scans/" in caplog.text, "the access log was captured"
    assert good not in caplog.text
    assert bad not in caplog.text
    assert good.split(".")[2] not in caplog.text
