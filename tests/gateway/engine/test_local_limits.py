"""What only the in-process limits do: forget the buckets of subjects that have been quiet
long enough to have a full one again, and only those."""

from __future__ import annotations

import pytest

from gateway.config import config_from_dict
from gateway.domain.errors import LimitExceeded
from gateway.engine.local_limits import PRUNE_AT, LocalLimits
from tests.helpers import Clock


async def test_forgetting_full_buckets_keeps_the_ones_still_refilling():
    clock = Clock()
    config = config_from_dict({"limits": {"scan_starts_per_second": 1, "scan_start_burst": 1}})
    limits = LocalLimits(config.limits, clock=clock)
    await limits.admit_scans("early", ["e1"])  # full again one second later
    clock.now += 1
    await limits.admit_scans("alice", ["a1"])  # empty until a second from now
    for i in range(2 * PRUNE_AT):  # enough subjects to have the table pruned
        await limits.admit_scans(f"s{i}", [f"x{i}"])
        await limits.release_scan(f"x{i}")
    with pytest.raises(LimitExceeded, match="you start scans faster"):
        await limits.admit_scans("alice", ["a2"])
    await limits.admit_scans("early", ["e2"])  # forgotten or not, its bucket was full
    clock.now += 1
    await limits.admit_scans("alice", ["a2"])
