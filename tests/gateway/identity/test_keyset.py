"""The identity provider's key set in a running gateway: fetched in the background, refreshed
as its Cache-Control says, asked again for an unknown kid at most once per interval (what a
flood of forged kids costs the provider is counted on the provider), kept while the provider
is down, and /readyz not ready until a first one is loaded."""

from __future__ import annotations

import asyncio
import logging
import time

import jwt
import pytest

from gateway.identity.keyset import KeySet
from tests.helpers import error_shape
from tests.identity_provider import DISCOVERY, JWKS, IdentityProvider, keys_loaded


async def started(gateway, provider: IdentityProvider, **jwt_config):
    client = await gateway(
        jwt=provider.jwt_config("oidc", **jwt_config), readiness={"check_scanners": False}
    )
    return client


def forged(provider: IdentityProvider, kid: str) -> dict[str, str]:
    """A well-formed RS256 token naming a kid the provider never published."""
    key = next(iter(provider.keys.values()))
    value = jwt.encode(provider.claims(), key.private, "RS256", headers={"kid": kid})
    return {"Authorization": f"Bearer {value}"}


async def test_a_flood_of_forged_kids_costs_the_provider_one_fetch_per_interval(
    gateway, identity_provider
):
    interval = 0.25
    client = await started(gateway, identity_provider, jwks_min_interval_seconds=interval)
    await keys_loaded(client)
    before = identity_provider.requests[JWKS]
    began = time.monotonic()
    statuses = []
    for wave in range(40):  # 40 waves of 10 concurrent requests, each with kids of its own
        answers = await asyncio.gather(
            *(
                client.get("/api/v1/scans/", headers=forged(identity_provider, f"f{wave}-{n}"))
                for n in range(10)
            )
        )
        statuses += [answer.status for answer in answers]
    elapsed = time.monotonic() - began
    fetches = identity_provider.requests[JWKS] - before
    assert statuses == [401] * 400
    # One fetch may begin at once, then at most one per interval.
    assert fetches <= 1 + elapsed / interval, (fetches, elapsed)
    assert fetches < 40, "each wave did not get a fetch of its own"


async def test_concurrent_unknown_kids_share_one_fetch(gateway, identity_provider):
    client = await started(gateway, identity_provider)
    await keys_loaded(client)
    before = identity_provider.requests[JWKS]
    new = identity_provider.publish("RS256")
    identity_provider.hold()
    requests = [
        asyncio.ensure_future(client.get("/api/v1/scans/", headers=identity_provider.bearer(new)))
        for _ in range(20)
    ]
    await identity_provider.asked(JWKS, before + 1)  # the one fetch is under way, held
    identity_provider.release()
    answers = await asyncio.gather(*requests)
    # Every request that joined the fetch got the new key from it; one that came after it
    # found the key already there.
    assert [answer.status for answer in answers] == [200] * 20
    assert identity_provider.requests[JWKS] == before + 1


async def test_provider_down_at_start_not_ready_then_ready(gateway, identity_provider):
    key = next(iter(identity_provider.keys.values()))
    await identity_provider.stop()
    client = await started(
        gateway, identity_provider, jwks_min_interval_seconds=0.05, jwks_cache_seconds=0.05
    )
    ready = await client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["data"]["checks"]["keys"].startswith("no key set yet: ")
    assert "ClientConnectorError" in body["data"]["checks"]["keys"]
    # Tokens cannot be checked yet: 503 with Retry-After, not 401 (the token may be good).
    response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(key))
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    body = await response.json()
    error_shape(body)
    assert body["error"] == "keys_unavailable"
    await identity_provider.start()
    await keys_loaded(client)
    assert (await client.get("/readyz")).status == 200
    response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(key))
    assert response.status == 200


async def test_a_request_during_the_first_fetch_waits_for_it(gateway, identity_provider):
    key = next(iter(identity_provider.keys.values()))
    identity_provider.hold()
    client = await started(gateway, identity_provider)
    await identity_provider.asked(JWKS, 1)  # the first fetch is under way, held
    request = asyncio.ensure_future(
        client.get("/api/v1/scans/", headers=identity_provider.bearer(key))
    )
    # Not a 503 at once: it waits for that fetch (a negative can only be shown over time).
    done, _ = await asyncio.wait([request], timeout=0.3)
    assert not done
    identity_provider.release()
    assert (await request).status == 200
    assert identity_provider.requests[JWKS] == 1


async def test_provider_down_mid_run_cached_keys_keep_working(gateway, identity_provider, caplog):
    key = next(iter(identity_provider.keys.values()))
    identity_provider.cache_control = "max-age=0"  # stale at once: refreshed every interval
    client = await started(
        gateway, identity_provider, jwks_min_interval_seconds=0.05, jwks_cache_seconds=0.05
    )
    await keys_loaded(client)
    caplog.set_level(logging.WARNING, logger="gateway.identity.keyset")
    identity_provider.failing = True
    failed = identity_provider.requests[DISCOVERY] + identity_provider.requests[JWKS]
    await identity_provider.asked(JWKS, identity_provider.requests[JWKS] + 1)
    await identity_provider.stop()  # and now not even listening
    assert identity_provider.requests[DISCOVERY] + identity_provider.requests[JWKS] > failed
    for _ in range(3):
        response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(key))
        assert response.status == 200, await response.text()
    assert (await client.get("/readyz")).status == 200  # it holds a key set: ready
    assert "not refreshed (the 1 cached key(s) stay in use)" in caplog.text
    # A key the gateway has not seen cannot be fetched meanwhile: 401, not a hang.
    new = identity_provider.publish("RS256")
    response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(new))
    assert response.status == 401
    identity_provider.failing = False
    await identity_provider.start()
    identity_provider.requests.clear()
    await identity_provider.asked(JWKS, 1)  # the retries find it back (by discovery again)
    assert identity_provider.requests[DISCOVERY] >= 1
    response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(new))
    assert response.status == 200


async def test_max_age_decides_when_the_key_set_is_asked_again(gateway, identity_provider):
    key = next(iter(identity_provider.keys.values()))
    client = await started(gateway, identity_provider, jwks_min_interval_seconds=0.05)
    await keys_loaded(client)
    # max-age=300: tokens with a known kid never make it ask.
    for _ in range(5):
        response = await client.get("/api/v1/scans/", headers=identity_provider.bearer(key))
        assert response.status == 200
    assert identity_provider.requests[JWKS] == 1
    assert identity_provider.requests[DISCOVERY] == 1
    # max-age=0 (and no-store): again after the least interval, each time, without a token.
    identity_provider.cache_control = "no-store"
    new = identity_provider.publish("RS256")  # makes it ask once, and learn no-store
    assert (await client.get("/api/v1/scans/", headers=identity_provider.bearer(new))).status == 200
    await identity_provider.asked(JWKS, 5)
    assert identity_provider.requests[DISCOVERY] == 1, "discovery is asked once while it works"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"issuer": "http://127.0.0.1:1/realms/evil"}, "names the issuer"),
        ({"jwks_uri": "http://127.0.0.2:1/certs"}, "is not on the issuer's origin"),
        ({"jwks_uri": "https://id.example/certs"}, "is not on the issuer's origin"),
        ({"jwks_uri": "ftp://127.0.0.1/certs"}, "is not an https URL"),
        ({"jwks_uri": 7}, "not a discovery document"),
    ],
)
async def test_a_discovery_document_that_cannot_be_trusted_loads_nothing(
    gateway, identity_provider, overrides, needle
):
    identity_provider.discovery_overrides = overrides
    client = await started(gateway, identity_provider)
    await identity_provider.asked(DISCOVERY, 1)
    # Its answer has been read once the next request to the gateway is; it stays unloaded.
    ready = await client.get("/readyz")
    await identity_provider.asked(DISCOVERY, 2)  # it tried again (after the least interval)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert needle in (await ready.json())["data"]["checks"]["keys"]
    assert identity_provider.requests[JWKS] == 0


async def test_an_unusable_key_set_loads_nothing_and_says_why(gateway, identity_provider):
    identity_provider.keys.clear()
    identity_provider.extra_keys = [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]
    client = await started(gateway, identity_provider)
    await identity_provider.asked(JWKS, 2)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (
        "kty 'oct' is not an asymmetric key type" in (await ready.json())["data"]["checks"]["keys"]
    )


async def test_refetch_without_the_refresh_task_answers_at_once():
    """A key set whose task is not running (a verifier outside an app) never waits."""
    from gateway.config import config_from_dict

    config = config_from_dict(
        {"jwt": {"algorithms": ["RS256"], "jwks_url": "https://id.example/jwks"}}
    )
    key_set = KeySet(config.jwt)
    assert not key_set.loaded
    assert key_set.status() == "no key set yet: not fetched yet"
    assert await key_set.refetch() is False
