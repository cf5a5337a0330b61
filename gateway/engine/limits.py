"""Admission: how many scans a subject runs and streams it holds open, and how fast it starts
scans; the interface, the refusals every implementation words alike, and the token bucket.

``Limits`` counts running scans and open streams by id, per subject and in all, so a second
release of one id does nothing and no count goes below zero. An admission checks the running
limits and the subject's bucket of starts together: a refused start takes no token, and a start
the bucket refuses holds no place. ``LocalLimits`` counts in the process (SQLite: one process
owns the scans); ``backends.redis.limits.RedisLimits`` counts across replicas, where the places
a replica holds lapse with it (``redis.lease_seconds``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config import LimitsConfig
from gateway.domain.errors import LimitExceeded

__all__ = [
    "Bucket",
    "Limits",
    "retry_after",
    "scans_refused",
    "start_cost",
    "starts_refused",
    "streams_refused",
    "take",
]


class Limits(ABC):
    """Running scans and open streams, counted per subject and in all; scan starts, rated."""

    @abstractmethod
    async def admit_scans(self, subject: str, scan_ids: Sequence[str]) -> None:
        """Count every scan as running for ``subject`` and take their starts from its bucket,
        or none of them: ``LimitExceeded`` (429) says which limit refused; ``StoreUnavailable``
        when the counts cannot be read (a shared store down: refused, never let through).
        An id already counted is not counted twice."""

    @abstractmethod
    async def release_scan(self, scan_id: str) -> None:
        """The scan no longer runs; a second release, or one of an id never admitted, does
        nothing. Never raises for the store: what it cannot reach lapses on its own."""

    @abstractmethod
    async def open_stream(self, subject: str, stream_id: str) -> None:
        """Count an open stream for ``subject``, or refuse it as ``admit_scans`` does."""

    @abstractmethod
    async def close_stream(self, stream_id: str) -> None:
        """The stream closed; as ``release_scan``."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Stop whatever the implementation runs beside the counts."""


# -- the refusals ---------------------------------------------------------------------------------


def scans_refused(config: LimitsConfig, *, mine: bool, wanted: int, free: int) -> LimitExceeded:
    """``wanted`` more running scans would pass the subject's limit (``mine``) or the total;
    ``free`` places are left."""
    free = max(0, free)
    retry = config.retry_after_seconds
    if mine:
        most = config.max_running_scans_per_subject
        if wanted == 1:
            message = (
                f"you already run {most} scans, the maximum; wait for one to end or cancel one"
            )
        else:
            message = (
                f"these {wanted} scans would take you past your maximum of {most} running "
                f"scans; {free} more can start now"
            )
        return LimitExceeded(message, retry_after=retry)
    most = config.max_running_scans
    if wanted == 1:
        message = f"the gateway runs its maximum of {most} scans; try later"
    else:
        message = (
            f"the gateway runs near its maximum of {most} scans and {free} more can start now, "
            f"not {wanted}; try later"
        )
    return LimitExceeded(message, retry_after=retry)


def streams_refused(config: LimitsConfig, *, mine: bool) -> LimitExceeded:
    if mine:
        most = config.max_streams_per_subject
        message = f"you already have {most} streams open, the maximum; close one"
    else:
        message = f"the gateway serves its maximum of {config.max_streams} streams; try later"
    return LimitExceeded(message, retry_after=config.retry_after_seconds)


def starts_refused(config: LimitsConfig, wait_seconds: float) -> LimitExceeded:
    seconds = retry_after(wait_seconds)
    return LimitExceeded(
        f"you start scans faster than the {config.scan_starts_per_second:g} per second allowed "
        f"(at most {config.scan_start_burst} at once); the next can start in {seconds} s",
        retry_after=seconds,
    )


def retry_after(wait_seconds: float) -> int:
    """Whole seconds, at least 1 (``Retry-After`` is an integer; 0 would invite a storm)."""
    return max(1, math.ceil(wait_seconds))


# -- the token bucket ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """A subject's scan starts: ``tokens`` as counted at ``at`` (seconds, the limiter's clock)."""

    tokens: float
    at: float


def start_cost(wanted: int, burst: int) -> int:
    """Tokens ``wanted`` starts take at once: one each, but never more than a full bucket, so
    a batch larger than the burst waits for a full bucket rather than for ever."""
    return min(wanted, burst)


def take(
    bucket: Bucket | None, now: float, *, rate: float, burst: int, cost: int
) -> tuple[Bucket, float]:
    """The bucket after taking ``cost`` tokens at ``now`` and 0; or, when it holds too few, the
    bucket refilled to ``now`` (nothing taken) and the seconds until it holds ``cost``.

    An absent bucket is full. A clock that went back refills nothing (``at`` never decreases).
    """
    if bucket is None:
        bucket = Bucket(float(burst), now)
    elif now > bucket.at:
        bucket = Bucket(min(float(burst), bucket.tokens + (now - bucket.at) * rate), now)
    if bucket.tokens < cost:
        return bucket, (cost - bucket.tokens) / rate
    return Bucket(bucket.tokens - cost, bucket.at), 0.0
