"""Real key pairs for JWT tests, generated once per test run (never stored in the repo)."""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# The HMAC secret the test gateways (in process and in subprocesses) verify tokens with.
SECRET = "test-secret-" + "0123456789abcdef" * 4

# One key kind per JWT algorithm family the gateway verifies with.
KINDS = ("rsa", "ec-p256", "ec-p384", "ed25519")
ALGORITHM = {"rsa": "RS256", "ec-p256": "ES256", "ec-p384": "ES384", "ed25519": "EdDSA"}


def private_key(kind: str, tag: str = "", rsa_bits: int = 2048) -> PrivateKey:
    """A new private key of ``kind``; the same (kind, tag, bits) gives the same key."""
    return _generate(kind, tag, rsa_bits)


@functools.cache
def _generate(kind: str, tag: str, rsa_bits: int) -> PrivateKey:
    del tag  # only part of the cache key: another tag, another key
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def public_pem(kind: str, tag: str = "", rsa_bits: int = 2048) -> str:
    key = private_key(kind, tag, rsa_bits).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def private_pem(kind: str, tag: str = "") -> str:
    return (
        private_key(kind, tag)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
