"""A JSON Web Key Set (RFC 7517) as the gateway uses it: the signing keys in an identity
provider's answer, each with the configured algorithms it may verify.

A key is left out (and the reason kept for the log) when it is not for signatures (``use``
other than ``sig``, ``key_ops`` without ``verify``), is symmetric (``oct``: a key set never
provides a shared secret) or private, names an ``alg`` that is not configured, is of a kind no
configured algorithm takes, or is an RSA key outside 2048-8192 bits. The document as a whole
is refused (``KeySetError``) when it is not a JSON object with a ``keys`` list, holds more
than ``jwt.jwks_max_keys`` keys, or no usable one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from gateway.config.jwt_keys import checked_public_key, fits

__all__ = ["MAX_KID", "MAX_RSA_KEY_BITS", "KeySetError", "SigningKey", "read_key_set"]

MAX_KID: Final = 256  # characters of a key id; longer ones are no key of ours
# Verifying with a larger RSA key costs more than a token is worth (OpenSSL's own cap is 16384).
MAX_RSA_KEY_BITS: Final = 8192
_ASYMMETRIC: Final = {"RSA": "RS256", "EC": None, "OKP": "EdDSA"}  # kty -> pyjwt's loader
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


class KeySetError(ValueError):
    """The answer is not a key set the gateway can use; the message says why."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str | None
    key: PublicKey
    algorithms: frozenset[str]  # the configured ones this key verifies


class _Document(msgspec.Struct):
    keys: list[dict[str, Any]]


class _Head(msgspec.Struct):
    """The members that say what a JWK is for (the key material is pyjwt's to read)."""

    kty: str
    kid: str | None = None
    use: str | None = None
    key_ops: list[str] | None = None
    alg: str | None = None


def read_key_set(
    body: bytes, algorithms: Sequence[str], max_keys: int
) -> tuple[dict[str | None, SigningKey], list[str]]:
    """The usable keys of a JWKS by ``kid`` (the first of a repeated one), and why the others
    were left out."""
    try:
        document = msgspec.json.decode(body, type=_Document)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise KeySetError("not a JSON object with a 'keys' list of objects") from None
    if len(document.keys) > max_keys:
        raise KeySetError(
            f"{len(document.keys)} keys; at most {max_keys} are read (jwt.jwks_max_keys)"
        )
    keys: dict[str | None, SigningKey] = {}
    skipped: list[str] = []
    for index, data in enumerate(document.keys):
        try:
            key = _signing_key(data, algorithms)
        except KeySetError as exc:
            skipped.append(f"key {index}: {exc}")
            continue
        if key.kid in keys:
            skipped.append(f"key {index}: kid {key.kid!r} repeats an earlier key's")
            continue
        keys[key.kid] = key
    if not keys:
        raise KeySetError(f"no key usable with {', '.join(algorithms)} ({'; '.join(skipped)})")
    return keys, skipped


def _signing_key(data: Mapping[str, Any], algorithms: Sequence[str]) -> SigningKey:
    try:
        head = msgspec.convert(data, _Head)
    except msgspec.ValidationError as exc:
        raise KeySetError(f"malformed ({exc})") from None
    if head.kid is not None and (len(head.kid) > MAX_KID or not head.kid):
        raise KeySetError(f"its kid is empty or longer than {MAX_KID} characters")
    if head.use not in (None, "sig"):
        raise KeySetError(f"use {head.use[:32]!r}, not sig")
    if head.key_ops is not None and "verify" not in head.key_ops:
        raise KeySetError("key_ops without verify")
    if head.kty not in _ASYMMETRIC:
        raise KeySetError(f"kty {head.kty[:32]!r} is not an asymmetric key type (RSA, EC, OKP)")
    wanted = [name for name in algorithms if head.alg in (None, name)]
    if not wanted:
        raise KeySetError(f"alg {str(head.alg)[:32]!r} is not configured (jwt.algorithms)")
    key = _public_key(data, head.kty)
    usable = frozenset(name for name in wanted if fits(name, key))
    if not usable:
        raise KeySetError(f"no configured algorithm takes its kind of key ({head.kty})")
    return SigningKey(head.kid, key, usable)


def _public_key(data: Mapping[str, Any], kty: str) -> PublicKey:
    if "d" in data:
        raise KeySetError("it holds a private key")
    try:
        key = jwt.PyJWK.from_dict(dict(data), _ASYMMETRIC[kty]).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise KeySetError(f"unreadable ({type(exc).__name__})") from None
    if not isinstance(key, PublicKey):
        raise KeySetError(f"not a public key ({type(key).__name__})")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size > MAX_RSA_KEY_BITS:
        raise KeySetError(f"an RSA key of {key.key_size} bits; at most {MAX_RSA_KEY_BITS}")
    try:
        checked_public_key(key, "RSA key")
    except ValueError as exc:
        raise KeySetError(str(exc)) from None
    return key
