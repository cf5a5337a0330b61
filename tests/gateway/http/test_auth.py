"""Bearer JWTs: algorithms and keys come from config, never from the token."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import logging
import math
import time
from typing import Any

import jwt
import pytest

from gateway.config import ConfigError, JWTConfig, config_from_dict
from gateway.domain.errors import Unauthorized
from gateway.http.auth import PUBLIC_ROUTES, TokenVerifier
from tests.helpers import SECRET, auth, error_shape, start_scan, stream, token
from tests.keys import ALGORITHM, KINDS, private_key, private_pem, public_pem


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


async def test_every_api_route_needs_a_token(gateway):
    # dev_mode: its token endpoint is public, and the route table shows that it is left out.
    client = await gateway(dev_mode=True)
    scan_id = await start_scan(client)
    checked = []
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/api/") or route.method in ("HEAD", "OPTIONS"):
            continue
        if route.name in PUBLIC_ROUTES:
            continue
        method = "PATCH" if route.method == "*" else route.method  # "*": any method
        url = path.replace("{scan_id}", scan_id)
        response = await client.request(method, url, json={})
        assert response.status == 401, (method, path, await response.text())
        checked.append(f"{route.method} {path}")
    assert {"POST /api/v1/scans/", "DELETE /api/v1/scans/{scan_id}"} <= set(checked), checked
    assert "GET /api/v1/scans/{scan_id}/stream" in checked
    assert len(await stream(client, scan_id)) > 1, "the scan itself was untouched"


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


async def test_issued_tokens_verify_and_carry_the_subject():
    verifier = TokenVerifier(JWTConfig(secret=SECRET))
    issued = verifier.issue("carol", 60)
    assert (await verifier.verify(issued)).subject == "carol"
    header = jwt.get_unverified_header(issued)
    assert header["alg"] == "HS256"


async def test_algorithm_comes_from_config_not_the_token():
    verifier = TokenVerifier(
        config_from_dict({"jwt": {"secret": SECRET, "algorithms": ["HS384"]}}).jwt
    )
    with pytest.raises(Unauthorized, match="algorithm"):
        await verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert (await verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS384"))).subject == (
        "alice"
    )


def test_asymmetric_algorithms_need_a_public_key():
    with pytest.raises(ValueError, match="public_key"):
        TokenVerifier(JWTConfig(secret=SECRET, algorithms=("RS256",)))
    with pytest.raises(ConfigError, match=r"jwt\.public_key: is required for RS256"):
        config_from_dict({"jwt": {"algorithms": ["RS256"]}})


def test_issue_rejects_bad_arguments():
    verifier = TokenVerifier(JWTConfig(secret=SECRET))
    with pytest.raises(ValueError, match="subject"):
        verifier.issue("", 60)
    with pytest.raises(ValueError, match="ttl"):
        verifier.issue("alice", 0)


async def test_good_token_is_accepted(client):
    response = await client.get("/api/v1/scans/", headers=auth())
    assert response.status == 200


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


# --- asymmetric algorithms: RSA, EC and EdDSA public keys ---------------------------------------

BODY = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}


def signed(kind, tag="", **extra):
    """A token for ``kind``'s algorithm, signed with its private key (another key per tag)."""
    return jwt.encode(claims(**extra), private_key(kind, tag), algorithm=ALGORITHM[kind])


def asymmetric(kind):
    return {"jwt": {"algorithms": [ALGORITHM[kind]], "public_key": public_pem(kind)}}


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


def forged(header, payload, key=b"", signature=None):
    """A token put together by hand: any header, any payload bytes, HMAC-SHA256 over
    ``key`` unless a signature is given (what pyjwt would never produce)."""
    segments = [b64(header) if isinstance(header, dict) else _b64raw(header), _b64raw(payload)]
    if signature is None:
        signature = hmac.new(key, ".".join(segments).encode(), hashlib.sha256).digest()
    return ".".join([*segments, base64.urlsafe_b64encode(signature).rstrip(b"=").decode()])


def _b64raw(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("kind", KINDS)
async def test_asymmetric_tokens_verify_with_the_configured_public_key(gateway, kind):
    client = await gateway(**asymmetric(kind))
    good = bearer(signed(kind))
    listed = await client.get("/api/v1/scans/", headers=good)
    assert listed.status == 200, await listed.text()
    started = await client.post("/api/v1/scans/", json=BODY, headers=good)
    assert started.status == 201, await started.text()
    other_key = await client.get("/api/v1/scans/", headers=bearer(signed(kind, tag="other")))
    assert other_key.status == 401
    assert "signature is invalid" in (await other_key.json())["message"]


def _hostile_tokens(kind):
    """Tokens an attacker can send to a gateway that verifies ``kind``'s algorithm."""
    algorithm = ALGORITHM[kind]
    pem = public_pem(kind).encode()
    payload = json.dumps(claims()).encode()
    other = next(k for k in KINDS if ALGORITHM[k] != algorithm)
    good_signature = signed(kind).split(".")[2]
    return {
        # The classic confusion: the public key, which anyone has, used as an HMAC secret.
        "hs256-with-public-key": forged({"alg": "HS256", "typ": "JWT"}, payload, pem),
        "alg-none": forged({"alg": "none"}, payload, signature=b""),
        "alg-of-another-family": signed(other),
        "alg-number": forged({"alg": 256}, payload, pem),
        "alg-null": forged({"alg": None}, payload, pem),
        "alg-list": forged({"alg": [algorithm]}, payload, pem),
        "no-alg": forged({"typ": "JWT"}, payload, pem),
        "header-list": forged(b"[1]", payload, pem),
        "header-not-json": forged(b"{", payload, pem),
        # Another kind of JWT signed with the same key (an OIDC logout token, say).
        "typ-not-an-access-token": jwt.encode(
            claims(), private_key(kind), algorithm=algorithm, headers={"typ": "logout+jwt"}
        ),
        "crit-header": jwt.encode(
            claims(), private_key(kind), algorithm=algorithm, headers={"crit": ["exp"]}
        ),
        "b64-false": jwt.PyJWS().encode(
            payload, private_key(kind), algorithm=algorithm, headers={"b64": False}
        ),
        "payload-list": jwt.PyJWS().encode(b"[1]", private_key(kind), algorithm=algorithm),
        "payload-not-json": jwt.PyJWS().encode(b"\xff{", private_key(kind), algorithm=algorithm),
        "right-alg-no-signature": forged({"alg": algorithm}, payload, signature=b""),
        "right-alg-short-signature": forged({"alg": algorithm}, payload, signature=b"\x01" * 7),
        "signature-not-base64": signed(kind)[: -len(good_signature)] + "!!!!",
        "two-segments": ".".join(signed(kind).split(".")[:2]),
        "four-segments": signed(kind) + ".e30",
        "empty-segments": "..",
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_tokens_are_401_never_500(gateway, kind):
    client = await gateway(**asymmetric(kind))
    for name, value in _hostile_tokens(kind).items():
        response = await client.get("/api/v1/scans/", headers=bearer(value))
        assert response.status == 401, (name, await response.text())
        body = await response.json()
        error_shape(body)
        assert body["error"] == "unauthorized", name


async def test_a_certificate_gives_the_public_key():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = private_key("ec-p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "id.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    config = config_from_dict({"jwt": {"algorithms": ["ES256"], "public_key": pem}})
    assert (await TokenVerifier(config.jwt).verify(signed("ec-p256"))).subject == "alice"


@pytest.mark.parametrize(
    ("jwt_config", "message"),
    [
        (
            {"algorithms": ["RS256", "HS256"], "public_key": "rsa"},
            "jwt.algorithms: RS256, HS256 need different kinds of key (HMAC secret, RSA key)",
        ),
        ({"algorithms": ["HS256", "RS256"]}, "need different kinds of key"),
        ({"algorithms": ["RS256", "ES256"], "public_key": "rsa"}, "(EC P-256 key, RSA key)"),
        (
            {"algorithms": ["ES256", "ES384"], "public_key": "ec-p256"},
            "(EC P-256 key, EC P-384 key)",
        ),
        ({"algorithms": ["EdDSA", "PS256"], "public_key": "ed25519"}, "different kinds of key"),
        ({"algorithms": ["HS257"]}, "jwt.algorithms: 'HS257' not supported"),
        ({"algorithms": ["RS256"], "public_key": "not a key"}, "is not a PEM public key"),
        (
            {"algorithms": ["RS256"], "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n"},
            "is not a PEM public key",
        ),
        (
            {"algorithms": ["RS256"], "public_key": "ec-p256"},
            "jwt.public_key: RS256 need an RSA key, but this is an EC key on curve secp256r1",
        ),
        ({"algorithms": ["ES256"], "public_key": "ec-p384"}, "need an EC P-256 key"),
        ({"algorithms": ["ES384"], "public_key": "ed25519"}, "but this is an EdDSA key"),
        ({"algorithms": ["EdDSA"], "public_key": "rsa"}, "but this is an RSA key"),
        ({"algorithms": ["RS256"], "public_key": "private:rsa"}, "holds a private key"),
        ({"algorithms": ["RS256"], "public_key": "rsa-1024"}, "has 1024 bits; at least 2048"),
        ({"algorithms": ["HS256"], "public_key": "rsa"}, "jwt.public_key: set, but"),
        ({"secret": "s" * 31}, "jwt.secret: HS256 needs a secret of at least 32 bytes"),
        (
            {"secret": "s" * 63, "algorithms": ["HS256", "HS512"]},
            "jwt.secret: HS512 needs a secret of at least 64 bytes (RFC 7518 section 3.2); "
            "this one has 63",
        ),
    ],
)
def test_unusable_jwt_keys_are_config_errors(jwt_config, message):
    jwt_config = dict(jwt_config)
    pem = jwt_config.get("public_key")
    if pem == "private:rsa":
        jwt_config["public_key"] = private_pem("rsa")
    elif pem == "rsa-1024":
        jwt_config["public_key"] = public_pem("rsa", rsa_bits=1024)
    elif pem in KINDS:
        jwt_config["public_key"] = public_pem(pem)
    with pytest.raises(ConfigError) as info:
        config_from_dict({"jwt": jwt_config})
    assert message in str(info.value)
    assert "s" * 31 not in str(info.value), "a secret is never echoed"


def test_key_sizes_at_the_limit_are_accepted():
    config_from_dict({"jwt": {"secret": "s" * 32}})
    config_from_dict({"jwt": {"secret": "s" * 64, "algorithms": ["HS256", "HS512"]}})
    config_from_dict({"jwt": {"secret": "é" * 16}})  # 32 bytes in UTF-8, 16 characters
    config_from_dict({"jwt": {"algorithms": ["RS256", "PS512"], "public_key": public_pem("rsa")}})
    with pytest.raises(ConfigError, match=r"auth\.ticket_secret: must be at least 32 bytes"):
        config_from_dict({"auth": {"ticket_secret": "t" * 31}})
    config_from_dict({"auth": {"ticket_secret": "t" * 32}})


# --- claims of the wrong type --------------------------------------------------------------------


def hs256(payload):
    """An HS256 token over exactly this payload (pyjwt's own encode would check its types)."""
    return jwt.PyJWS().encode(json.dumps(payload).encode(), SECRET, algorithm="HS256")


WRONG_TYPES: dict[str, tuple[dict[str, Any], str]] = {
    # pyjwt accepts these (int() takes them), and a string exp never ended a stream.
    "exp-numeric-string": ({"exp": "1999999999"}, "'exp' must be a number"),
    "exp-true": ({"exp": True}, "has expired"),  # to pyjwt, true is 1: 1970
    "exp-beyond-any-float": ({"exp": 10**400}, "'exp' must be a number"),
    "exp-infinity": ({"exp": math.inf}, "malformed"),
    "nbf-numeric-string": ({"nbf": "0"}, "'nbf' must be a number"),
    "iat-numeric-string": ({"iat": "1"}, "'iat' must be a number"),
    "iat-false": ({"iat": False}, "'iat' must be a number"),
    "sub-number": ({"sub": 7}, "subject must be a non-empty string"),
    "sub-list": ({"sub": ["alice"]}, "subject must be a non-empty string"),
    # Signed and well typed, but no text could store it (it was a 500 at the store).
    "sub-lone-surrogate": ({"sub": "\ud800"}, "subject must be text"),
    "sub-too-long": ({"sub": "a" * 256}, "subject must be text of at most 255"),
}


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
async def test_claims_of_the_wrong_type_are_401(client, name):
    extra, needle = WRONG_TYPES[name]
    response = await client.get("/api/v1/scans/", headers=bearer(hs256(claims(**extra))))
    assert response.status == 401, await response.text()
    body = await response.json()
    error_shape(body)
    assert needle in body["message"]


async def test_numeric_dates_may_be_fractional(client):
    now = time.time()
    token = hs256(claims(exp=now + 600.5, iat=now - 0.5, nbf=now - 1.25))
    response = await client.post("/api/v1/auth/session", headers=bearer(token))
    assert response.status == 200, await response.text()
    assert 590 <= (await response.json())["data"]["expires_in"] <= 601


async def test_a_subject_at_the_length_limit_is_accepted():
    verifier = TokenVerifier(JWTConfig(secret=SECRET))
    assert (await verifier.verify(hs256(claims(sub="a" * 255)))).subject == "a" * 255


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer \xff",
        b"Authorization: Bearer eyJ\xc3\x28.x.y",
        b"Cookie: xployt_session=\xff\xfe",
    ],
)
async def test_credentials_that_are_not_ascii_are_401_not_500(client, header):
    """aiohttp keeps a header's undecodable bytes as surrogates; the JWT decoder then failed
    with an error of its own (a 500, unauthenticated)."""
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"POST /api/v1/scans/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            + header
            + b"\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    status = answer.split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 401 Unauthorized", answer[:300]
    assert b'"error": "unauthorized"' in answer or b'"error":"unauthorized"' in answer
