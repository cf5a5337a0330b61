"""A local identity provider for tests: an aiohttp app on 127.0.0.1 serving an OpenID
discovery document and a JWKS, signing tokens with keys the test controls.

The test publishes keys (``publish``), drops them (``drop``), makes the provider answer
errors (``failing``), stops it and starts it again on the same port (``stop``, ``start``),
holds its key set answers until released (``hold``), and counts what it was asked
(``requests``; ``asked`` waits for a count to be reached, an event rather than a sleep).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tests.keys import PrivateKey, private_key

__all__ = ["AUDIENCE", "DISCOVERY", "JWKS", "IdentityProvider", "Key", "keys_loaded"]

AUDIENCE = "xployt-gateway"
DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/protocol/openid-connect/certs"
# Key kind per algorithm family: the key the test signs with.
KIND = {"RS256": "rsa", "PS256": "rsa", "ES256": "ec-p256", "ES384": "ec-p384", "EdDSA": "ed25519"}


@dataclass(frozen=True)
class Key:
    kid: str
    algorithm: str
    private: PrivateKey

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        data: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.algorithm}


class IdentityProvider:
    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}  # published, in order
        self.requests: Counter[str] = Counter()
        self.cache_control: str | None = "max-age=300"
        self.failing = False  # answer 503 to everything
        self.extra_keys: list[dict[str, Any]] = []  # raw JWKs published besides the keys
        self.discovery_overrides: dict[str, Any] = {}
        self._held: asyncio.Event | None = None
        self._asked = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- the server -------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/test"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}{JWKS}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/realms/test" + DISCOVERY, self._discovery)
        app.router.add_get("/realms/test" + JWKS, self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # A socket of our own: the port the OS chose is kept, so a restart listens on it again.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def hold(self) -> None:
        """Key set answers wait until ``release``."""
        self._held = asyncio.Event()

    def release(self) -> None:
        if self._held is not None:
            self._held.set()
            self._held = None

    async def asked(self, path: str, count: int) -> None:
        """Wait (10 s at most) until ``path`` (``DISCOVERY`` or ``JWKS``) has been asked
        ``count`` times."""
        async with asyncio.timeout(10), self._asked:
            await self._asked.wait_for(lambda: self.requests[path] >= count)

    async def _count(self, path: str) -> None:
        async with self._asked:
            self.requests[path] += 1
            self._asked.notify_all()

    async def _discovery(self, request: web.Request) -> web.Response:
        await self._count(DISCOVERY)
        if self.failing:
            return web.json_response({"error": "down"}, status=503)
        document = {"issuer": self.issuer, "jwks_uri": self.jwks_url, **self.discovery_overrides}
        return web.json_response(document)

    async def _jwks(self, request: web.Request) -> web.Response:
        await self._count(JWKS)
        held = self._held
        if held is not None:
            await held.wait()
        if self.failing:
            return web.json_response({"error": "down"}, status=503)
        body = {"keys": [key.jwk() for key in self.keys.values()] + self.extra_keys}
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return web.json_response(body, headers=headers)

    def jwt_config(
        self, source: str = "oidc", algorithms: tuple[str, ...] = ("RS256",), **extra: Any
    ) -> dict[str, Any]:
        """The gateway's ``jwt`` section for this provider: its discovery (``oidc``) or its
        key set's URL (``jwks``, with ``jwt.issuer``), our audience, a refetch interval short
        enough that a test never waits for it unless it sets its own."""
        config: dict[str, Any] = {
            "algorithms": list(algorithms),
            "audience": AUDIENCE,
            "jwks_min_interval_seconds": 0.001,
        }
        if source == "oidc":
            config["oidc_issuer"] = self.issuer
        else:
            config.update(jwks_url=self.jwks_url, issuer=self.issuer)
        return {**config, **extra}

    # --- keys and tokens --------------------------------------------------------------------

    def publish(self, algorithm: str = "RS256") -> Key:
        """A new key, published (each call: another key pair and kid)."""
        tag = uuid.uuid4().hex[:8]
        key = Key(f"{algorithm}-{tag}", algorithm, private_key(KIND[algorithm], f"idp-{tag}"))
        self.keys[key.kid] = key
        return key

    def drop(self, key: Key) -> None:
        del self.keys[key.kid]

    def claims(self, sub: str = "alice", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "azp": "xployt-cli",
        }
        return {key: value for key, value in {**base, **extra}.items() if value is not None}

    def token(
        self,
        key: Key,
        sub: str = "alice",
        *,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with ``key`` (its kid in the header, ``typ`` at+jwt)."""
        header = {"kid": key.kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode(
            self.claims(sub, **claims), key.private, algorithm=key.algorithm, headers=header
        )

    def bearer(self, key: Key, sub: str = "alice", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(key, sub, **claims)}"}


async def keys_loaded(client: TestClient[Any, Any]) -> None:
    """Wait until the gateway holds a key set, as a load balancer would: asking ``/readyz``
    (whose ``keys`` check is ``ok`` from then on) until it says so; 10 s at most."""
    async with asyncio.timeout(10):
        while True:
            async with client.get("/readyz") as response:
                if (await response.json())["data"]["checks"].get("keys") == "ok":
                    return
