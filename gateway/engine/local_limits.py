"""The limits counted inside one process: the embedded backend's, where one process owns the
scans and serves the streams. Every check and its update happen without an await, so
concurrent requests are admitted one after the other."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from gateway.config import LimitsConfig
from gateway.engine.limits import (
    Bucket,
    Limits,
    scans_refused,
    start_cost,
    starts_refused,
    streams_refused,
    take,
)

__all__ = ["LocalLimits"]

# Buckets are forgotten once full (a full bucket and none are the same): looked for when the
# table has grown to this many, then to twice what is left, so the work stays linear.
PRUNE_AT = 1024


class _Counted:
    """Ids per subject: the counts are what the table holds, never below zero."""

    def __init__(self) -> None:
        self._subjects: dict[str, str] = {}  # id -> subject
        self._per_subject: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._subjects)

    def of(self, subject: str) -> int:
        return self._per_subject[subject]

    def new(self, ids: Sequence[str]) -> list[str]:
        return [i for i in dict.fromkeys(ids) if i not in self._subjects]

    def add(self, subject: str, ids: Sequence[str]) -> None:
        for i in ids:
            self._subjects[i] = subject
            self._per_subject[subject] += 1

    def remove(self, i: str) -> None:
        subject = self._subjects.pop(i, None)
        if subject is None:
            return
        self._per_subject[subject] -= 1
        if not self._per_subject[subject]:
            del self._per_subject[subject]


class LocalLimits(Limits):
    def __init__(self, config: LimitsConfig, *, clock: Callable[[], float] = time.monotonic):
        self._config = config
        self._clock = clock  # seconds; a test passes its own to watch the bucket refill
        self._scans = _Counted()
        self._streams = _Counted()
        self._buckets: dict[str, Bucket] = {}
        self._prune_at = PRUNE_AT

    async def admit_scans(self, subject: str, scan_ids: Sequence[str]) -> None:
        config = self._config
        new = self._scans.new(scan_ids)
        wanted = len(new)
        if not wanted:
            return
        mine = self._scans.of(subject)
        if mine + wanted > config.max_running_scans_per_subject:
            free = config.max_running_scans_per_subject - mine
            raise scans_refused(config, mine=True, wanted=wanted, free=free)
        if len(self._scans) + wanted > config.max_running_scans:
            free = config.max_running_scans - len(self._scans)
            raise scans_refused(config, mine=False, wanted=wanted, free=free)
        bucket, wait = take(
            self._buckets.get(subject),
            self._clock(),
            rate=config.scan_starts_per_second,
            burst=config.scan_start_burst,
            cost=start_cost(wanted, config.scan_start_burst),
        )
        if wait:
            raise starts_refused(config, wait)
        self._keep(subject, bucket)
        self._scans.add(subject, new)

    async def release_scan(self, scan_id: str) -> None:
        self._scans.remove(scan_id)

    async def open_stream(self, subject: str, stream_id: str) -> None:
        config = self._config
        if not self._streams.new([stream_id]):
            return
        if self._streams.of(subject) >= config.max_streams_per_subject:
            raise streams_refused(config, mine=True)
        if len(self._streams) >= config.max_streams:
            raise streams_refused(config, mine=False)
        self._streams.add(subject, [stream_id])

    async def close_stream(self, stream_id: str) -> None:
        self._streams.remove(stream_id)

    def _keep(self, subject: str, bucket: Bucket) -> None:
        self._buckets[subject] = bucket
        if len(self._buckets) < self._prune_at:
            return
        now, config = self._clock(), self._config
        rate, burst = config.scan_starts_per_second, config.scan_start_burst
        self._buckets = {
            name: kept
            for name, kept in self._buckets.items()
            if kept.tokens + (now - kept.at) * rate < burst
        }
        self._prune_at = max(PRUNE_AT, 2 * len(self._buckets))
