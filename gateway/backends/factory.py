"""The backends: which store and which event bus a gateway runs on, opened and closed as one.

Code above this module gets a ``Store``, a ``Bus`` and ``Limits`` and never asks which backend
it has.
The embedded backend is a SQLite file and the in-process hub: one process owns the file. The
shared backend is Redis: its Streams hold the logs, and a ``RedisBus`` feeds this replica's hub
from them, so an event appended by any replica reaches every replica's subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from gateway.backends.redis import RedisBus, RedisLimits, RedisStore
from gateway.backends.sqlite import SQLiteStore
from gateway.config import Config
from gateway.domain.errors import StoreUnavailable
from gateway.engine.hub import Bus, Hub
from gateway.engine.limits import Limits
from gateway.engine.local_limits import LocalLimits
from gateway.engine.store import Store

__all__ = ["REPLICA_LOST", "RESTART_REASON", "open_backend", "open_limits"]

log = logging.getLogger(__name__)

RESTART_REASON = "interrupted: gateway restarted"
REPLICA_LOST = "interrupted: replica lost"


@contextlib.asynccontextmanager
async def open_backend(config: Config, hub: Hub) -> AsyncIterator[tuple[Store, Bus]]:
    """The store and the bus ``config.backend`` names, with ``hub`` as the local fan-out;
    closed, with whatever the backend runs beside them, on the way out."""
    opener = _redis if config.backend == "redis" else _sqlite
    async with opener(config, hub) as backend:
        yield backend


@contextlib.asynccontextmanager
async def open_limits(config: Config) -> AsyncIterator[Limits]:
    """What subjects may run and hold open: counted in this process with SQLite, across every
    replica with Redis (the places a replica holds lapse with it, after ``lease_seconds``)."""
    limits: Limits
    if config.backend == "redis":
        settings = config.redis
        limits = await RedisLimits.open(
            settings.url,
            config.limits,
            key_prefix=settings.key_prefix,
            lease_seconds=settings.lease_seconds,
        )
    else:
        limits = LocalLimits(config.limits)
    try:
        yield limits
    finally:
        await limits.close()


@contextlib.asynccontextmanager
async def _sqlite(config: Config, hub: Hub) -> AsyncIterator[tuple[Store, Bus]]:
    store = await SQLiteStore.open(config.database.path)
    store.on_append(hub.publish)
    # One process owns this file: whatever it left running died with it.
    await _interrupt(store, RESTART_REASON)
    yield store, hub
    await store.close()


@contextlib.asynccontextmanager
async def _redis(config: Config, hub: Hub) -> AsyncIterator[tuple[Store, Bus]]:
    settings = config.redis
    store = await RedisStore.open(
        settings.url,
        key_prefix=settings.key_prefix,
        retention_seconds=settings.retention_seconds,
        record_retention_seconds=settings.record_retention_seconds,
        lease_seconds=settings.lease_seconds,
        retry_seconds=settings.store_retry_seconds,
    )
    bus = RedisBus(hub)
    bus.attach(store)  # live events reach this replica's subscribers from Redis, not here
    sweeper = asyncio.create_task(
        _sweep(store, settings.sweep_interval_seconds, settings.lease_seconds), name="sweeper"
    )
    try:
        yield store, bus
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await store.close()


async def _sweep(store: Store, interval: float, lease: float) -> None:
    """End the scans of replicas that stopped renewing their leases (every replica looks;
    the store makes sure each such scan gets exactly one terminal event).

    Only once Redis has answered this replica for a whole lease: leases lapse while Redis is
    down, and their owners need that long to renew them when it is back."""
    answering_since: float | None = None
    while True:
        try:
            if answering_since is None:
                await store.ping()
                answering_since = time.monotonic()
            if time.monotonic() - answering_since >= lease:
                await _interrupt(store, REPLICA_LOST)
        except StoreUnavailable as exc:
            if answering_since is not None:
                log.warning("could not look for scans of lost replicas: %s", exc.message)
            answering_since = None
        except Exception:  # a bug, or a record it cannot read: the next round tries again
            log.exception("looking for scans of lost replicas failed")
        await asyncio.sleep(interval)


async def _interrupt(store: Store, reason: str) -> None:
    interrupted = await store.interrupt_unfinished(reason)
    if interrupted:
        log.warning("marked %d scan(s) left running as failed: %s", len(interrupted), reason)
