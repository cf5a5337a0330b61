"""API tokens from an identity provider: every algorithm family, the key a token's kid names,
and every way a token can be wrong (each a 401, none a 500), against a real provider on
127.0.0.1 (``tests/identity_provider.py``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from gateway.http.appkeys import TICKETS
from tests.helpers import error_shape, start_scan, token
from tests.identity_provider import JWKS, IdentityProvider, keys_loaded


async def idp_gateway(gateway, provider: IdentityProvider, **jwt_config):
    source = jwt_config.pop("source", "oidc")
    algorithms = jwt_config.pop("algorithms", ("RS256",))
    client = await gateway(
        jwt=provider.jwt_config(source, algorithms, **jwt_config),
        readiness={"check_scanners": False},
    )
    await keys_loaded(client)
    return client


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def refused(client, value: str) -> str:
    """The 401 a token gets; its message."""
    response = await client.get("/api/v1/scans/", headers=bearer(value))
    assert response.status == 401, await response.text()
    body = await response.json()
    error_shape(body)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="xployt", error="invalid_token"'
    return str(body["message"])


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "EdDSA"])
@pytest.mark.parametrize("source", ["oidc", "jwks"])
async def test_every_algorithm_family_verifies_with_the_provider_key(
    gateway, identity_provider, algorithm, source
):
    key = identity_provider.publish(algorithm)
    client = await idp_gateway(gateway, identity_provider, source=source, algorithms=(algorithm,))
    started = await client.post(
        "/api/v1/scans/",
        json={"repository_name": "acme/web", "scanner_name": "secret_scanner"},
        headers=identity_provider.bearer(key),
    )
    assert started.status == 201, await started.text()
    listed = await client.get("/api/v1/scans/", headers=identity_provider.bearer(key))
    assert [scan["scan_id"] for scan in (await listed.json())["data"]] == [
        (await started.json())["data"]["scan_id"]
    ]
    # Another key pair under the same kid: the signature does not verify.
    impostor = identity_provider.publish(algorithm)
    identity_provider.drop(impostor)
    forged = jwt.encode(
        identity_provider.claims(),
        impostor.private,
        algorithm=algorithm,
        headers={"kid": key.kid},
    )
    assert "signature is invalid" in await refused(client, forged)


async def test_several_algorithm_kinds_each_use_only_keys_of_their_kind(gateway, identity_provider):
    rsa = next(iter(identity_provider.keys.values()))
    ec = identity_provider.publish("ES256")
    client = await idp_gateway(gateway, identity_provider, algorithms=("RS256", "ES256"))
    for key in (rsa, ec):
        response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(key))
        assert response.status == 200, await response.text()
    # An ES256 header naming the RSA key: the key's kind does not fit the algorithm.
    mixed = jwt.encode(
        identity_provider.claims(), ec.private, algorithm="ES256", headers={"kid": rsa.kid}
    )
    assert "does not fit its key's kind" in await refused(client, mixed)


async def test_a_token_without_kid_uses_the_one_key_else_is_refused(gateway, identity_provider):
    first = next(iter(identity_provider.keys.values()))
    client = await idp_gateway(gateway, identity_provider)
    no_kid = jwt.encode(identity_provider.claims(), first.private, algorithm="RS256")
    assert (await client.get("/api/v1/scans/", headers=bearer(no_kid))).status == 200
    identity_provider.publish("RS256")
    client = await idp_gateway(gateway, identity_provider)
    assert "names no key (kid)" in await refused(client, no_kid)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rs256(header: dict, payload: dict, key) -> str:
    """An RS256 token with any header at all (pyjwt's encode checks a kid's type)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signer = RSAAlgorithm(RSAAlgorithm.SHA256)
    return f"{signing_input}.{_b64(signer.sign(signing_input.encode(), key))}"


def _hs256(header: dict, payload: dict, secret: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def test_hostile_tokens_are_401_and_ask_the_provider_nothing(gateway, identity_provider):
    key = next(iter(identity_provider.keys.values()))
    client = await idp_gateway(gateway, identity_provider)
    asked = identity_provider.requests[JWKS]
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = identity_provider.claims()
    jwk = json.dumps(key.jwk()).encode()
    hostile = {
        # Alg confusion: the public key, which anyone has, as an HMAC secret.
        "hs256-with-the-public-key": _hs256({"alg": "HS256", "kid": key.kid}, claims, pem),
        "hs256-with-the-jwk": _hs256({"alg": "HS256", "kid": key.kid}, claims, jwk),
        "hs256-with-the-shared-secret": jwt.encode(claims, "s" * 64, headers={"kid": key.kid}),
        "none": f"{_b64(json.dumps({'alg': 'none', 'kid': key.kid}).encode())}."
        f"{_b64(json.dumps(claims).encode())}.",
        "rs512-not-configured": identity_provider.token(key, headers={"alg": "RS512"}),
        "typ-logout-token": identity_provider.token(key, headers={"typ": "logout+jwt"}),
        "typ-number": identity_provider.token(key, headers={"typ": 7}),
        "kid-number": _rs256({"alg": "RS256", "kid": 7}, claims, key.private),
        "kid-list": _rs256({"alg": "RS256", "kid": [key.kid]}, claims, key.private),
        "kid-empty": _rs256({"alg": "RS256", "kid": ""}, claims, key.private),
        "kid-too-long": _rs256({"alg": "RS256", "kid": "k" * 257}, claims, key.private),
        "alg-list": _rs256({"alg": ["RS256"], "kid": key.kid}, claims, key.private),
        "header-list": f"{_b64(b'[1]')}.{_b64(json.dumps(claims).encode())}.AAAA",
        "an-xployt-hs256-token": token("alice"),
        "a-stream-ticket": client.app[TICKETS].issue("alice", "some-scan", 60),
    }
    for name, value in hostile.items():
        await refused(client, value)
        assert identity_provider.requests[JWKS] == asked, name


@pytest.mark.parametrize(
    ("claims", "needle"),
    [
        ({"iss": "http://127.0.0.1:1/realms/other"}, "issuer is not accepted"),
        ({"iss": None}, "lacks the required claim 'iss'"),
        ({"aud": "another-client"}, "audience is not accepted"),
        ({"aud": None}, "lacks the required claim 'aud'"),
        ({"exp": 1}, "has expired"),
        ({"sub": None}, "lacks the required claim 'sub'"),
        ({"scope": 7}, "claim 'scope' must be a space-separated string or a list of strings"),
    ],
    ids=["wrong-iss", "no-iss", "wrong-aud", "no-aud", "expired", "no-sub", "scope-number"],
)
async def test_wrong_claims_are_401(gateway, identity_provider, claims, needle):
    key = next(iter(identity_provider.keys.values()))
    client = await idp_gateway(gateway, identity_provider)
    assert needle in await refused(client, identity_provider.token(key, **claims))


async def test_typ_may_say_jwt_or_at_jwt_or_nothing(gateway, identity_provider):
    key = next(iter(identity_provider.keys.values()))
    client = await idp_gateway(gateway, identity_provider)
    for typ in ("at+jwt", "application/at+JWT", "JWT", None):  # None: no typ at all
        headers = {"kid": key.kid, "typ": typ}
        value = jwt.encode(identity_provider.claims(), key.private, "RS256", headers=headers)
        assert jwt.get_unverified_header(value).get("typ") == typ
        response = await client.get("/api/v1/scans/", headers=bearer(value))
        assert response.status == 200, (typ, await response.text())


async def test_rotation_new_kid_works_at_once_old_until_dropped(gateway, identity_provider):
    old = next(iter(identity_provider.keys.values()))
    client = await idp_gateway(gateway, identity_provider)
    old_token = identity_provider.token(old)
    scan_id = await start_scan_with(client, identity_provider.bearer(old))
    # The provider publishes a new key and signs with it: the first token naming it makes
    # the gateway ask again, and it is accepted on that same request.
    new = identity_provider.publish("RS256")
    asked = identity_provider.requests[JWKS]
    response = await client.get(f"/api/v1/scans/{scan_id}", headers=identity_provider.bearer(new))
    assert response.status == 200, await response.text()
    assert identity_provider.requests[JWKS] == asked + 1
    assert (await client.get("/api/v1/scans/", headers=bearer(old_token))).status == 200
    # The old key is dropped: once the gateway has asked again, tokens signed with it fail.
    identity_provider.drop(old)
    stray = identity_provider.publish("RS256")
    identity_provider.drop(stray)  # a kid the provider never published: asks again, in vain
    message = await refused(client, identity_provider.token(stray))
    assert "is not in the identity provider's key set" in message
    assert identity_provider.requests[JWKS] == asked + 2
    assert "is not in the identity provider's key set" in await refused(client, old_token)
    response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(new))
    assert response.status == 200


async def start_scan_with(client, headers) -> str:
    response = await client.post(
        "/api/v1/scans/",
        json={"repository_name": "acme/web", "scanner_name": "secret_scanner"},
        headers=headers,
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["data"]["scan_id"])


async def test_hmac_tokens_of_the_xployt_server_still_work_beside(client):
    """The shared secret, unchanged: an HS256 token with only sub and exp has its owner's
    rights (it starts, reads, watches and cancels its scans)."""
    scan_id = await start_scan(client, sub="xployt-user")
    headers = bearer(token("xployt-user"))
    assert (await client.get(f"/api/v1/scans/{scan_id}", headers=headers)).status == 200
    assert (await client.get("/api/v1/scans/", headers=headers)).status == 200


async def test_no_development_token_when_the_provider_signs_them(gateway, identity_provider):
    client = await gateway(
        dev_mode=True,
        jwt=identity_provider.jwt_config(),
        readiness={"check_scanners": False},
    )
    response = await client.post("/api/v1/dev/token")
    assert response.status == 409
    body = await response.json()
    error_shape(body)
    assert "cannot issue RS256 tokens" in body["message"]
    assert "get a token from the identity provider" in body["message"]
