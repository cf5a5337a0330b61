"""The limits counted across replicas, in Redis: running scans and open streams per subject and
in all, and each subject's bucket of scan starts.

Each place is a member of two sorted sets (all, the subject's), scored by when it lapses. An
admission is one Lua script, atomic in Redis: it drops the lapsed places, counts, takes tokens
and adds the new places, or refuses, so the N+1th scan of a subject is refused whichever
replica gets it, however many race. The replica holding places renews them every third of
``lease_seconds``; one that dies stops, and its places lapse within a lease. Time is Redis's
own clock (``TIME``), shared by every replica.

A replica's admissions, releases and renewals go out through one writer (``batches``), in
order and as many as wait at once in one round trip: a surge of streams opening costs a few
round trips, and a release queued after an admission or a renewal is applied after it, so
nothing gives back a place before it is taken or takes back a place given back.

When Redis does not answer, an admission is refused (``StoreUnavailable``, 503): the limits
cannot be checked, and the store could not take the scan or serve the stream anyway. A release
that cannot reach Redis is dropped from the renewals, so its place lapses within a lease; places
that lapsed while Redis was away are counted again at the next renewal once it is back (a
replica counts what it still runs, even past a limit; nothing more is admitted meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gateway.backends.redis.batches import Batches, Queue
from gateway.backends.redis.layout import Keys
from gateway.backends.redis.transaction import connect
from gateway.config import LimitsConfig
from gateway.domain.errors import StoreUnavailable
from gateway.engine.limits import Limits, scans_refused, starts_refused, streams_refused

__all__ = ["RedisLimits"]

log = logging.getLogger(__name__)

SOCKET_TIMEOUT: Final = 5.0  # seconds: no command here blocks in Redis
ADMIT_SECONDS: Final = 10.0  # an admission waits at most this long for its answer
RELEASE_SECONDS: Final = 2.0  # a release too; then the place is left to lapse
RENEW_BATCH: Final = 256  # places renewed per script call

# Redis's clock in milliseconds, unless the caller gave one (ARGV[1]; tests do).
_NOW: Final = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: all, the subject's, the subject's bucket. ARGV: now, lease ms, most in all, most of the
# subject, starts per ms ('' for none), burst, then the ids. {0, 0} admitted; {1, free} over the
# subject's limit, {2, free} over the total, {3, ms} the bucket is short for that long.
_ADMIT: Final = (
    _NOW
    + """
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local wanted = 0
for i = 7, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then wanted = wanted + 1 end
end
local mine = redis.call('ZCARD', KEYS[2])
if wanted > 0 and mine + wanted > tonumber(ARGV[4]) then return {1, tonumber(ARGV[4]) - mine} end
local all = redis.call('ZCARD', KEYS[1])
if wanted > 0 and all + wanted > tonumber(ARGV[3]) then return {2, tonumber(ARGV[3]) - all} end
if ARGV[5] ~= '' and wanted > 0 then
  local rate, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
  local state = redis.call('HMGET', KEYS[3], 'tokens', 'at')
  local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
  if now > at then
    tokens = math.min(burst, tokens + (now - at) * rate)
    at = now
  end
  local cost = math.min(wanted, burst)
  if tokens < cost then return {3, math.ceil((cost - tokens) / rate)} end
  tokens = tokens - cost
  redis.call('HSET', KEYS[3], 'tokens', tokens, 'at', at)
  redis.call('PEXPIRE', KEYS[3], math.ceil((burst - tokens) / rate) + 1)
end
for i = 7, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
  redis.call('ZADD', KEYS[2], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('PEXPIRE', KEYS[2], lease)
return {0, 0}
"""
)

# KEYS: (all, the subject's) for each id in ARGV[3...]. ARGV: now, lease ms. A place that lapsed
# meanwhile is added again: this replica still holds it.
_RENEW: Final = (
    _NOW
    + """
local lease = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + lease, ARGV[2 + math.floor((i + 1) / 2)])
  redis.call('PEXPIRE', KEYS[i], lease)
end
return 1
"""
)

# KEYS: all, the subject's. ARGV: the id. Out of both at once, or neither.
_RELEASE: Final = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

_SUBJECT, _ALL, _STARTS = 1, 2, 3  # the admission script's refusals


class RedisLimits(Limits):
    def __init__(
        self,
        client: Redis,
        config: LimitsConfig,
        *,
        key_prefix: str,
        lease_seconds: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = client
        self._config = config
        self._keys = Keys(key_prefix)
        self._seconds = lease_seconds
        self._ms = max(1, round(lease_seconds * 1000))
        self._clock = clock  # a seam for tests (seconds); None: Redis's own clock
        self._held: dict[str, tuple[str, str]] = {}  # id -> its two sets: places renewed here
        self._admit = client.register_script(_ADMIT)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._closed = False
        scripts = [self._admit, self._renew_script, self._release_script]
        self._batches = Batches(client, scripts=scripts, name="redis-limits-writer")
        self._renewer = asyncio.create_task(self._renew_forever(), name="redis-limits-renewer")

    @classmethod
    async def open(
        cls,
        url: str,
        config: LimitsConfig,
        *,
        key_prefix: str = "xployt:",
        lease_seconds: float = 15.0,
        clock: Callable[[], float] | None = None,
    ) -> RedisLimits:
        # One writer; the others only while one is being replaced.
        client = await connect(url, socket_timeout=SOCKET_TIMEOUT, max_connections=4)
        return cls(client, config, key_prefix=key_prefix, lease_seconds=lease_seconds, clock=clock)

    async def close(self) -> None:
        """Stop renewing and give back what is still held (what cannot be, lapses)."""
        if self._closed:
            return
        self._renewer.cancel()
        await asyncio.wait([self._renewer])
        held, self._held = self._held, {}
        for member, sets in held.items():
            self._give_back(member, sets)
        await self._batches.close(RELEASE_SECONDS)
        self._closed = True
        await self._redis.aclose()

    async def admit_scans(self, subject: str, scan_ids: Sequence[str]) -> None:
        config = self._config
        sets = (self._keys.limit_scans, self._keys.scans_of(subject))
        rate = config.scan_starts_per_second / 1000  # per millisecond, Redis's unit here
        verdict, value, wanted = await self._take(
            sets,
            self._keys.starts_of(subject),
            scan_ids,
            [config.max_running_scans, config.max_running_scans_per_subject, rate],
        )
        if verdict == _STARTS:
            raise starts_refused(config, value / 1000)
        if verdict:
            raise scans_refused(config, mine=verdict == _SUBJECT, wanted=wanted, free=value)

    async def release_scan(self, scan_id: str) -> None:
        await self._release(scan_id)

    async def open_stream(self, subject: str, stream_id: str) -> None:
        config = self._config
        sets = (self._keys.limit_streams, self._keys.streams_of(subject))
        limits: list[int | float | str] = [config.max_streams, config.max_streams_per_subject, ""]
        verdict, _, _ = await self._take(sets, sets[1], [stream_id], limits)
        if verdict:
            raise streams_refused(config, mine=verdict == _SUBJECT)

    async def close_stream(self, stream_id: str) -> None:
        await self._release(stream_id)

    async def _take(
        self,
        sets: tuple[str, str],
        bucket: str,
        ids: Sequence[str],
        limits: list[int | float | str],
    ) -> tuple[int, int, int]:
        """Run the admission script: (verdict, free places or ms to wait, ids not yet held)."""
        if self._closed:
            raise StoreUnavailable("the limits' store is closed")
        members = list(dict.fromkeys(ids))
        fresh = [member for member in members if member not in self._held]
        keys = [*sets, bucket]
        args = [self._now(), self._ms, *limits, self._config.scan_start_burst, *members]

        try:
            reply = await self._batches.call(
                _script(self._admit, keys, args), seconds=ADMIT_SECONDS
            )
        except BaseException:
            # Applied or not: given back after it (or, failing that, left to lapse).
            for member in fresh:
                self._give_back(member, sets)
            raise
        verdict, value = (int(part) for part in reply)
        if not verdict:
            for member in members:
                self._held[member] = sets
        return verdict, value, len(fresh)

    async def _release(self, member: str) -> None:
        sets = self._held.pop(member, None)
        if sets is None or self._closed:
            return
        try:
            await self._batches.call(self._releasing(member, sets), seconds=RELEASE_SECONDS)
        except StoreUnavailable as exc:
            log.debug("could not give back place %s (it lapses within a lease): %s", member, exc)

    def _give_back(self, member: str, sets: tuple[str, str]) -> None:
        """Queue the release of a place nobody waits for."""
        with contextlib.suppress(StoreUnavailable):  # closed: it lapses
            self._batches.send(self._releasing(member, sets))

    def _releasing(self, member: str, sets: tuple[str, str]) -> Queue:
        return _script(self._release_script, list(sets), [member])

    def _now(self) -> str:
        return "" if self._clock is None else repr(self._clock() * 1000)

    async def _renew_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._seconds / 3)
            try:
                await self._renew()
            except StoreUnavailable as exc:  # said once, tried again next tick
                if not failing:
                    log.warning("cannot renew the places this replica holds, retrying: %s", exc)
                failing = True
            except Exception:  # a bug: the next tick tries again
                log.exception("renewing the places this replica holds failed")
            else:
                if failing:
                    log.info("places renewed again")
                failing = False

    async def _renew(self) -> None:
        """Renew what is held now; a release queued after this is applied after it."""
        held = list(self._held.items())
        answers = []
        for start in range(0, len(held), RENEW_BATCH):
            batch = held[start : start + RENEW_BATCH]
            keys = [key for _, sets in batch for key in sets]
            args: list[str | int] = [self._now(), self._ms, *(m for m, _ in batch)]
            answers.append(self._batches.send(_script(self._renew_script, keys, args)))
        if not answers:
            return
        done, pending = await asyncio.wait(answers, timeout=self._seconds)
        if pending:
            raise StoreUnavailable("the store (Redis) does not answer in time")
        for answer in done:
            answer.result()


def _script(script: AsyncScript, keys: list[str], args: Sequence[str | int | float]) -> Queue:
    """The EVALSHA of ``script`` (the writer loads it if Redis does not know it)."""
    return lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args)
