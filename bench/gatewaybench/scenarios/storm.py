"""Reconnect storms: N subscribers of one running bench scan, all told to reconnect at once.

* replicas (``backend: redis``): every subscriber on replica A; A gets SIGTERM and drains (its
  scan runs on), telling each stream to reconnect after ``retry:`` (``stream.retry_ms`` plus a
  random share of ``stream.reconnect_spread_ms``); each comes back to replica B with
  ``Last-Event-ID`` while events go on at R/s. Then the scan is finished.
* restart (SQLite, one gateway): the gateway gets SIGTERM with N open streams (no drain: its
  scan ends interrupted, the terminal event stored), is waited for and started again on its
  port; each subscriber comes back with ``Last-Event-ID`` and gets that terminal event.

Each subscriber's ids must be exactly 1..n. Times count from the SIGTERM: until every stream
had ended (left), had been answered again (back), and had been caught up (a live event, or the
terminal one, on the new stream). Live events' latency is compared over the seconds before
the signal and over the storm; CPU over the same windows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..harness import Harness
from ..meters import Meters, steal_jiffies, steal_pct
from ..stack import Stack, scanning
from ..storm import tally
from ..storm.crowd import Crowd
from ..storm.publisher import Publisher

BEFORE_S: Final = 5.0  # the window of live latency and CPU before the signal
STORM_BOUND_S: Final = 240.0  # the longest a storm may take before the run fails
SUBSCRIBER_S: Final = 420.0  # each subscriber's own deadline
READY_BOUND_S: Final = 180.0


@dataclass(frozen=True)
class Storm:
    """One storm's shape: N subscribers, R events/s, the retry spread, the subscriber
    processes, and ``server.backlog`` (None: the gateway's default)."""

    n: int
    rate: float
    spread_ms: int
    workers: int
    backlog: int | None = None

    def config(self, drain_s: float) -> dict[str, Any]:
        server: dict[str, Any] = {"drain_seconds": drain_s}
        if self.backlog is not None:
            server["backlog"] = self.backlog
        return {"server": server, "stream": {"reconnect_spread_ms": self.spread_ms}}

    def row(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "n": self.n,
            "rate": self.rate,
            "spread_ms": self.spread_ms,
            "backlog": self.backlog or "default (4096)",
            "status": "ok",
        }


def _bench_scan(stack: Stack) -> str:
    scan_id = stack.create_scan(stamp_emit=True)
    stack.wait_scans([scan_id], scanning, 30)
    return scan_id


def _cpu(meters: Meters, start: float, end: float) -> dict[str, Any]:
    figures = meters.figures(start, end, end)
    return {k[: -len("_cpu_pct")]: v for k, v in figures.items() if k.endswith("_cpu_pct")}


def _publisher(st: Stack, scan_id: str, storm: Storm) -> Publisher:
    return Publisher(st.publish_url(scan_id), storm.rate, round(storm.rate * SUBSCRIBER_S))


def storm_replicas(harness: Harness, logdir: Path, storm: Storm) -> dict[str, Any]:
    """N subscribers on replica A, A drains, all resume on replica B (see the module)."""
    row = storm.row("replicas")
    config = storm.config(drain_s=600)
    tag = f"storm-replicas-{storm.spread_ms}"
    with Stack(tag, logdir, replicas=2, redis=True, config=config) as st:
        scan_id = _bench_scan(st)
        urls = [st.stream_url(scan_id, 0), st.stream_url(scan_id, 1)]
        crowd = Crowd(urls, storm.n, st.token, storm.workers, SUBSCRIBER_S, st.tmp)
        publisher = _publisher(st, scan_id, storm)
        try:
            crowd.wait_ready(READY_BOUND_S)
            pids = {"gateway_a": st.gw_pids[0], "gateway_b": st.gw_pids[1]}
            pids |= {"redis": st.redis_pid, "mock": st.mock_pid}
            steal0 = steal_jiffies()
            with Meters(harness, pids) as meters:
                publisher.start()
                before, before_epoch = time.monotonic(), time.time()
                time.sleep(BEFORE_S)  # a window to measure, not a wait for something
                signal_at, signal_epoch = time.monotonic(), time.time()
                st.sigterm(0)
                caught_up, row["all_caught_up"] = crowd.wait_caught_up(STORM_BOUND_S)
            row["steal_pct"] = steal_pct(steal0)
            publisher.stop()
            st.finish(scan_id)
            results = crowd.results(120)
        finally:
            publisher.stop()
            crowd.stop()
    row["published"], row["publish_errors"] = publisher.published, publisher.errors
    row["cpu_pct_before"] = _cpu(meters, before, signal_at)
    row["cpu_pct_storm"] = _cpu(meters, signal_at, caught_up)
    return _tallied(row, results, before_epoch, signal_epoch)


def storm_restart(harness: Harness, logdir: Path, storm: Storm) -> dict[str, Any]:
    """One gateway on SQLite restarted under N open streams (see the module)."""
    row = storm.row("restart")
    config = storm.config(drain_s=0)
    with Stack(f"storm-restart-{storm.spread_ms}", logdir, config=config) as st:
        scan_id = _bench_scan(st)
        urls = [st.stream_url(scan_id)]
        crowd = Crowd(urls, storm.n, st.token, storm.workers, SUBSCRIBER_S, st.tmp)
        publisher = _publisher(st, scan_id, storm)
        try:
            crowd.wait_ready(READY_BOUND_S)
            publisher.start()
            before_epoch = time.time()
            time.sleep(BEFORE_S)  # live events before the restart, to compare with none
            publisher.stop()  # the scan ends with the gateway: nothing to publish into after
            signal_at, signal_epoch = time.monotonic(), time.time()
            st.restart(0)
            row["listening_again_s"] = round(time.monotonic() - signal_at, 2)
            with Meters(harness, {"gateway": st.gw_pid}) as meters:
                listening = time.monotonic()
                caught_up, row["all_caught_up"] = crowd.wait_caught_up(STORM_BOUND_S)
            results = crowd.results(120)
        finally:
            publisher.stop()
            crowd.stop()
    row["cpu_pct_storm"] = _cpu(meters, listening, caught_up)
    return _tallied(row, results, before_epoch, signal_epoch, live_in_storm=False)


def _tallied(
    row: dict[str, Any],
    results: list[dict[str, Any]],
    before: float,
    signal_at: float,
    *,
    live_in_storm: bool = True,
) -> dict[str, Any]:
    """The row with the subscribers' figures; ``live_in_storm`` False where nothing is
    published during the storm (a restart: the scan ended with the gateway)."""
    row["ids"] = tally.ids(results)
    row["times"] = tally.timings(results, signal_at)
    storm_s = row["times"]["all_caught_up_s"] if live_in_storm else None
    row["latency_ms"] = tally.live_latency(results, before, signal_at, storm_s)
    return row
