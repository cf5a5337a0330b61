"""JWT keys: which algorithms share a kind of key, and the one key API tokens are verified
with, loaded and checked once from config (a token never picks its algorithm or key); or,
with an identity provider's key set, which kinds of key its algorithms take.

Every check here runs when the config is loaded, so that a key pyjwt could not use is a
config error at startup rather than a failure on each request:

- the configured algorithms need one kind of key: an HMAC secret, an RSA key, an EC key on
  one curve, or an EdDSA key (one key cannot serve HS256 and RS256, nor ES256 and ES384);
- an HMAC secret is at least as long as the hash's output (RFC 7518 section 3.2);
- a public key is a PEM public key or certificate of that kind, and an RSA key has at least
  2048 bits (NIST SP 800-131A). Below these sizes pyjwt warns on every token it checks;
- a key set (``jwt.jwks_url``, ``jwt.oidc_issuer``) holds a key per ``kid``, each used only
  with the algorithms of its kind (``fits``), so its algorithms may be of several asymmetric
  kinds, never HMAC: a key set never provides a shared secret.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_public_key

__all__ = [
    "HMAC_ALGORITHMS",
    "HMAC_MIN_SECRET_BYTES",
    "MIN_RSA_KEY_BITS",
    "VerificationKey",
    "checked_public_key",
    "fits",
    "hmac_secret",
    "key_family",
    "key_set_algorithms",
    "public_key",
    "verification_key",
]

# The shortest HMAC key per algorithm: the size of the hash's output (RFC 7518 section 3.2).
HMAC_MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
HMAC_ALGORITHMS = frozenset(HMAC_MIN_SECRET_BYTES)  # the JWT algorithms with a shared key
MIN_RSA_KEY_BITS = 2048

VerificationKey = (
    bytes
    | rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
)


@dataclass(frozen=True, slots=True)
class _Family:
    name: str  # the kind of key, as errors name it
    algorithms: frozenset[str]
    fits: Callable[[PublicKeyTypes], bool]


def _ec(curve: type[ec.EllipticCurve]) -> Callable[[PublicKeyTypes], bool]:
    return lambda key: isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve)


_FAMILIES = (
    _Family("HMAC secret", HMAC_ALGORITHMS, lambda key: False),
    _Family(
        "RSA key",
        frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
        lambda key: isinstance(key, rsa.RSAPublicKey),
    ),
    _Family("EC P-256 key", frozenset({"ES256"}), _ec(ec.SECP256R1)),
    _Family("EC P-384 key", frozenset({"ES384"}), _ec(ec.SECP384R1)),
    _Family("EC P-521 key", frozenset({"ES512"}), _ec(ec.SECP521R1)),
    _Family("EC secp256k1 key", frozenset({"ES256K"}), _ec(ec.SECP256K1)),
    _Family(
        "Ed25519 or Ed448 key",
        frozenset({"EdDSA"}),
        lambda key: isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey),
    ),
)
_FAMILY_OF = {algorithm: family for family in _FAMILIES for algorithm in family.algorithms}


def _known(algorithms: Sequence[str]) -> None:
    if not algorithms:
        raise ValueError("jwt.algorithms: at least one algorithm is required")
    if any(algorithm.lower() == "none" for algorithm in algorithms):
        raise ValueError("jwt.algorithms: 'none' is never accepted")
    unknown = [algorithm for algorithm in algorithms if algorithm not in _FAMILY_OF]
    if unknown:
        raise ValueError(
            f"jwt.algorithms: {', '.join(map(repr, unknown))} not supported "
            f"(supported: {', '.join(sorted(_FAMILY_OF))})"
        )


def key_family(algorithms: Sequence[str]) -> _Family:
    """The one kind of key all ``algorithms`` verify with; ValueError if there is none."""
    _known(algorithms)
    families = {_FAMILY_OF[algorithm].name: _FAMILY_OF[algorithm] for algorithm in algorithms}
    if len(families) > 1:
        raise ValueError(
            f"jwt.algorithms: {', '.join(algorithms)} need different kinds of key "
            f"({', '.join(sorted(families))}); the gateway verifies with one key, so list "
            "algorithms of one kind only"
        )
    return next(iter(families.values()))


def key_set_algorithms(algorithms: Sequence[str], source: str) -> None:
    """ValueError unless ``algorithms`` can verify with the keys of a key set (``source``, the
    config key that names it): known and asymmetric, of any kinds."""
    _known(algorithms)
    hmac = [algorithm for algorithm in algorithms if algorithm in HMAC_ALGORITHMS]
    if hmac:
        raise ValueError(
            f"jwt.algorithms: {', '.join(hmac)} verify with a shared secret, which a key set "
            f"({source}) never provides; list asymmetric algorithms (RS*, PS*, ES*, EdDSA)"
        )


def fits(algorithm: str, key: PublicKeyTypes) -> bool:
    """Whether ``key`` is of the kind ``algorithm`` verifies with (an unknown one: no)."""
    family = _FAMILY_OF.get(algorithm)
    return family is not None and family.fits(key)


def checked_public_key(key: PublicKeyTypes, where: str) -> PublicKeyTypes:
    """``key``, unless it is an RSA key too short to trust (ValueError naming ``where``)."""
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_KEY_BITS:
        raise ValueError(
            f"{where}: the RSA key has {key.key_size} bits; at least "
            f"{MIN_RSA_KEY_BITS} are required (NIST SP 800-131A)"
        )
    return key


def hmac_secret(secret: str, algorithms: Sequence[str]) -> bytes:
    """The secret as pyjwt uses it, if it is long enough for every algorithm."""
    key = secret.encode()
    needed = max(HMAC_MIN_SECRET_BYTES[algorithm] for algorithm in algorithms)
    if len(key) < needed:
        strongest = max(algorithms, key=HMAC_MIN_SECRET_BYTES.__getitem__)
        raise ValueError(
            f"jwt.secret: {strongest} needs a secret of at least {needed} bytes "
            f"(RFC 7518 section 3.2); this one has {len(key)}"
        )
    return key


def public_key(pem: str, algorithms: Sequence[str]) -> PublicKeyTypes:
    """The PEM public key (or certificate's key), if it is the kind ``algorithms`` need."""
    family = key_family(algorithms)
    key = _load_pem(pem)
    if not family.fits(key):
        raise ValueError(
            f"jwt.public_key: {', '.join(algorithms)} need an {family.name}, "
            f"but this is {_describe(key)}"
        )
    return checked_public_key(key, "jwt.public_key")


def verification_key(
    algorithms: Sequence[str], secret: str, pem: str | None, key_set: str | None = None
) -> VerificationKey | None:
    """The key tokens are checked with; ValueError naming the config key that is wrong. None
    when they are checked with a key set's keys (``key_set``: the config key that names it)."""
    if key_set is not None:
        if pem is not None:
            raise ValueError(f"jwt.public_key: set together with {key_set}; set one key source")
        key_set_algorithms(algorithms, key_set)
        return None
    family = key_family(algorithms)
    if family.algorithms == HMAC_ALGORITHMS:
        if pem is not None:
            raise ValueError(
                "jwt.public_key: set, but jwt.algorithms are HMAC, which verify with "
                "jwt.secret; remove one of them"
            )
        return hmac_secret(secret, algorithms)
    if not pem:
        raise ValueError(
            f"jwt.public_key: is required for {', '.join(algorithms)} "
            "(or a key set: jwt.jwks_url or jwt.oidc_issuer)"
        )
    key = public_key(pem, algorithms)
    assert isinstance(key, VerificationKey)  # what family.fits accepted
    return key


def _load_pem(pem: str) -> PublicKeyTypes:
    data = pem.strip().encode()
    if b"PRIVATE KEY-----" in data:
        raise ValueError(
            "jwt.public_key: holds a private key; the gateway only verifies tokens, "
            "give it the public key"
        )
    try:
        if data.startswith(b"-----BEGIN CERTIFICATE-----"):
            return x509.load_pem_x509_certificate(data).public_key()
        return load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            "jwt.public_key: is not a PEM public key (-----BEGIN PUBLIC KEY-----) "
            "or certificate (-----BEGIN CERTIFICATE-----)"
        ) from None


def _describe(key: PublicKeyTypes) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "an RSA key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on curve {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "an EdDSA key"
    return f"a {type(key).__name__}"
