"""The collection manager under a drain, with replicas on one real Redis: a draining replica
takes over no collection (it is about to stop; another replica will), a replica that is not
draining does."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from gateway.backends.redis.layout import Keys
from gateway.domain.collections import log_id
from gateway.http.appkeys import COLLECTION_RUNNER, CONFIG, DRAIN
from tests.helpers import start_collection

pytestmark = pytest.mark.parametrize("backend", ["redis"], indirect=True)


async def test_a_draining_replica_takes_over_no_collection(gateway):
    first = await gateway()
    created = await start_collection(
        first, scanners=["sast_scanner"], configurations={"stall_at": 50}
    )
    draining = await gateway()
    draining.app[DRAIN].begin()
    config = first.app[CONFIG]
    lease = Keys(config.redis.key_prefix).lease(log_id(created["collection_id"]))
    async with Redis.from_url(config.redis.url) as redis:
        assert await redis.delete(lease) == 1  # as if the first replica had died

    assert await draining.app[COLLECTION_RUNNER].take_over() == 0
    assert draining.app[COLLECTION_RUNNER].aggregating == 0
    # One that is not draining takes it (as it starts).
    other = await gateway()
    assert other.app[COLLECTION_RUNNER].aggregating == 1
