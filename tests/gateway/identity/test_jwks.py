"""Reading a JWKS: which keys are used, with which algorithms, and what is left out or
refused, each with its reason."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.identity.jwks import MAX_RSA_KEY_BITS, KeySetError, read_key_set
from tests.identity_provider import IdentityProvider

PROVIDER = IdentityProvider()
RSA = PROVIDER.publish("RS256")
EC = PROVIDER.publish("ES256")
ED = PROVIDER.publish("EdDSA")


def document(*keys: dict) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def test_each_key_verifies_the_configured_algorithms_of_its_kind():
    keys, skipped = read_key_set(
        document(RSA.jwk(), EC.jwk(), ED.jwk()), ["RS256", "PS256", "ES256", "EdDSA"], 50
    )
    assert skipped == []
    assert keys[RSA.kid].algorithms == {"RS256"}  # its JWK names alg RS256
    assert keys[EC.kid].algorithms == {"ES256"}
    assert keys[ED.kid].algorithms == {"EdDSA"}
    without_alg = {k: v for k, v in RSA.jwk().items() if k != "alg"}
    keys, _ = read_key_set(document(without_alg), ["RS256", "PS256", "ES256"], 50)
    assert keys[RSA.kid].algorithms == {"RS256", "PS256"}


def _rsa_jwk(bits: int, kid: str) -> dict:
    """An RSA public key of ``bits`` bits (a modulus of that size: no key pair is needed)."""
    key = rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 1).public_key()
    return {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": kid}


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "kid": "s"}, "kty 'oct' is not"),
        ({**RSA.jwk(), "use": "enc"}, "use 'enc', not sig"),
        ({**RSA.jwk(), "key_ops": ["encrypt"]}, "key_ops without verify"),
        ({**RSA.jwk(), "alg": "RS512"}, "alg 'RS512' is not configured"),
        ({**EC.jwk(), "alg": None}, "no configured algorithm takes its kind of key (EC)"),
        ({**RSA.jwk(), "kid": ""}, "its kid is empty"),
        ({**RSA.jwk(), "kid": "k" * 257}, "longer than 256"),
        ({**RSA.jwk(), "kid": 7}, "malformed"),
        ({"kid": "x"}, "malformed"),
        ({**RSA.jwk(), "n": "!!"}, "unreadable"),
        ({**RSA.jwk(), "d": "AQAB"}, "holds a private key"),
        (_rsa_jwk(1024, "small"), "1024 bits; at least 2048"),
    ],
    ids=[
        "symmetric",
        "encryption",
        "key-ops",
        "alg-not-configured",
        "kind-not-configured",
        "kid-empty",
        "kid-long",
        "kid-number",
        "no-kty",
        "bad-modulus",
        "private",
        "rsa-1024",
    ],
)
def test_keys_that_cannot_verify_a_token_are_left_out_saying_why(jwk, reason):
    jwk = {name: value for name, value in jwk.items() if value is not None}
    keys, skipped = read_key_set(document(jwk, RSA.jwk()), ["RS256"], 50)
    assert list(keys) == [RSA.kid]
    assert len(skipped) == 1 and skipped[0].startswith("key 0: ")
    assert reason in skipped[0]


def test_rsa_keys_at_the_size_limits_are_used_past_them_left_out():
    fitting = [_rsa_jwk(2048, "smallest"), _rsa_jwk(MAX_RSA_KEY_BITS, "largest")]
    keys, skipped = read_key_set(document(*fitting), ["RS256"], 50)
    assert set(keys) == {"smallest", "largest"} and skipped == []
    jwk = _rsa_jwk(MAX_RSA_KEY_BITS + 8, "big")
    keys, skipped = read_key_set(document(jwk, RSA.jwk()), ["RS256"], 50)
    assert list(keys) == [RSA.kid]
    assert f"at most {MAX_RSA_KEY_BITS}" in skipped[0]


def test_a_repeated_kid_keeps_the_first_key():
    other = PROVIDER.publish("RS256")
    keys, skipped = read_key_set(
        document(RSA.jwk(), {**other.jwk(), "kid": RSA.kid}), ["RS256"], 50
    )
    first = keys[RSA.kid].key
    assert isinstance(first, rsa.RSAPublicKey)
    published = RSA.private.public_key()
    assert isinstance(published, rsa.RSAPublicKey)
    assert first.public_numbers() == published.public_numbers()
    assert "repeats an earlier key's" in skipped[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not a JSON object with a 'keys' list"),
        (b"[]", "not a JSON object with a 'keys' list"),
        (b'{"keys": {}}', "not a JSON object with a 'keys' list"),
        (b'{"keys": [1]}', "not a JSON object with a 'keys' list"),
        (b'{"keys": [{"kty": "RSA", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}", "not a"),
        (b'{"keys": []}', "no key usable with RS256"),
        (document({"kty": "oct", "k": "AA"}), "no key usable with RS256 (key 0: kty 'oct'"),
        (document(*[RSA.jwk()] * 4), "4 keys; at most 3 are read (jwt.jwks_max_keys)"),
    ],
)
def test_a_document_without_usable_keys_is_refused(body, message):
    with pytest.raises(KeySetError) as info:
        read_key_set(body, ["RS256"], 3)
    assert message in str(info.value)


def test_at_the_key_limit_every_key_is_read():
    keys, _ = read_key_set(document(RSA.jwk(), EC.jwk(), ED.jwk()), ["RS256", "ES256"], 3)
    assert set(keys) == {RSA.kid, EC.kid}
