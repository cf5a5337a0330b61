"""The collection store beside the backend's scan store, opened and closed as one.

Code above it gets a ``CollectionStore`` and never asks which backend it has. The collection
store keeps collection logs where the scan store keeps scan logs, so the bus carries them as
it carries scans': on one process its appends go to the hub, with Redis the bus reads every
log from Redis and learns where a collection's log ends from the collection store.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.backends.redis import RedisBus, RedisStore
from gateway.backends.redis.collections import RedisCollections
from gateway.backends.sqlite import SQLiteStore
from gateway.backends.sqlite.collections import SQLiteCollections
from gateway.config import Config
from gateway.domain.collections import LOG_PREFIX
from gateway.domain.models import Event
from gateway.engine.collection_store import CollectionStore
from gateway.engine.hub import Bus
from gateway.engine.store import Store

__all__ = ["open_collections"]


@contextlib.asynccontextmanager
async def open_collections(
    config: Config, store: Store, bus: Bus
) -> AsyncIterator[CollectionStore]:
    """The collection store of the backend ``store`` belongs to."""
    collections: CollectionStore
    if isinstance(store, RedisStore):
        collections = shared = await RedisCollections.open(config.redis)
        if isinstance(bus, RedisBus):
            bus.attach(_Logs(store, shared))
    else:
        assert isinstance(store, SQLiteStore), "one of the two backends"
        # Through the scan store's writer: its events reach the hub as scans' do.
        collections = await SQLiteCollections.open(store)
    try:
        yield collections
    finally:
        await collections.close()


class _Logs:
    """What the Redis bus reads: every log from the scan store, where a collection's log ends
    from the collection store (its record is a collection's, not a scan's)."""

    def __init__(self, scans: RedisStore, collections: RedisCollections) -> None:
        self._scans = scans
        self._collections = collections

    async def position(self, scan_id: str) -> tuple[int, bool]:
        if scan_id.startswith(LOG_PREFIX):
            return await self._collections.position(scan_id)
        return await self._scans.position(scan_id)

    async def tail(self, scan_id: str, after: int, *, block_ms: int) -> list[Event]:
        return await self._scans.tail(scan_id, after, block_ms=block_ms)
