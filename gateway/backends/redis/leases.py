"""Leases on running scans: which replica runs each, and what happens when one stops.

A replica renews the lease of each scan it holds every third of ``lease_seconds``, until the
scan ends; a lease that another replica ended (a cancel there, or a sweep after this lease
lapsed) is told to the ``on_lost`` listeners. A replica that dies stops renewing, and the scans
whose leases lapsed are the ones ``unleased`` finds for a sweep to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis

from gateway.backends.redis.layout import Keys, as_text
from gateway.backends.redis.transaction import answering

__all__ = ["Leases"]

log = logging.getLogger(__name__)

# Renew a lease if its scan still runs and the lease is ours or has lapsed; 0 means lost.
_RENEW: Final = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class Leases:
    def __init__(
        self,
        client: Redis,
        keys: Keys,
        *,
        replica_id: str,
        lease_seconds: float,
        appending: Callable[[str], bool],
    ) -> None:
        self.replica_id = replica_id
        self.ms = max(1, round(lease_seconds * 1000))  # as SET ... PX takes it
        self._redis = client
        self._keys = keys
        self._seconds = lease_seconds
        self._appending = appending  # an append of ours to this scan is under way
        self._held: set[str] = set()  # scans whose lease this replica renews
        self._lost_listeners: list[Callable[[str], None]] = []
        self._script = client.register_script(_RENEW)
        self._renewer = asyncio.create_task(self._renew_forever(), name="redis-lease-renewer")

    def hold(self, scan_id: str) -> None:
        self._held.add(scan_id)

    def drop(self, scan_id: str) -> None:
        """Stop renewing: the scan ended, or this replica gives it up."""
        self._held.discard(scan_id)

    def on_lost(self, callback: Callable[[str], None]) -> None:
        self._lost_listeners.append(callback)

    def stop(self) -> asyncio.Task[None]:
        """Stop renewing; the renewer's task, to wait for."""
        self._renewer.cancel()
        return self._renewer

    async def unleased(self) -> list[str]:
        """Running scans that are not ours and have no lease (a first look, one round trip;
        an append checks again inside its transaction)."""
        members = await self._redis.smembers(self._keys.running)
        candidates = sorted({as_text(m) for m in members} - self._held)
        async with self._redis.pipeline(transaction=False) as pipe:
            for scan_id in candidates:
                pipe.exists(self._keys.lease(scan_id))
            leased = await pipe.execute()
        return [scan_id for scan_id, exists in zip(candidates, leased, strict=True) if not exists]

    async def _renew_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._seconds / 3)
            try:
                with answering():
                    await self._renew()
            except Exception as exc:  # Redis down (or a bug): said once, tried again next tick
                log.debug("lease renewal failed: %s", exc)
                if not failing:
                    log.warning("cannot renew scan leases, retrying: %s", exc)
                failing = True
            else:
                if failing:
                    log.info("scan leases renewed again")
                failing = False

    async def _renew(self) -> None:
        held = sorted(self._held)
        if not held:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for scan_id in held:
                keys = [self._keys.lease(scan_id), self._keys.running]
                await self._script(keys=keys, args=[scan_id, self.replica_id, self.ms], client=pipe)
            renewed = await pipe.execute()
        for scan_id, ok in zip(held, renewed, strict=True):
            # An append of ours under way (a terminal one, maybe) decides on the next tick.
            if not ok and scan_id in self._held and not self._appending(scan_id):
                self._held.discard(scan_id)
                self._tell_lost(scan_id)

    def _tell_lost(self, scan_id: str) -> None:
        for callback in self._lost_listeners:
            try:
                callback(scan_id)
            except Exception:
                log.exception("lost-lease callback failed for scan %s", scan_id)
