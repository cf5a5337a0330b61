"""Replicas: two gateways with ``backend: redis`` sharing a ``redis-server`` the scenario starts
(free port, no persistence). One bench scan POSTed on replica A, N/2 subscribers on A's stream
and N/2 on B's, one loadgen per replica, GO to both at once: A's publishes at R/s through the
mock scanner, B's keeps the same schedule into a sink (``--pub-pipe``), so it still expects
every event and measures latency from the stamp ``t`` A's publisher wrote. Both replicas',
Redis's and the mock's CPU and RSS are sampled from /proc."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

from ..harness import Harness
from ..loadgen import LoadRun, LoadSpec, run_loadgens
from ..meters import Meters, steal_jiffies, steal_pct
from ..procs import redis_version
from ..stack import Stack
from ..stats import (
    active_window,
    lg_cpu_s,
    load_totals,
    merged_all_n,
    merged_latency,
    worst_p99,
)
from .spec import parse_scenario

# The loadgen on replica B: its subscribers get the events replica A's loadgen publishes, so its
# own publisher only keeps the same schedule (E events at R/s, into a sink): the loadgen still
# expects E events per subscriber and measures latency from the stamp ``t`` in each event (its
# "sched" latency counts from its own schedule, which starts with A's: GO goes to both at once).
SINK_PUBLISHER: Final = "exec cat >/dev/null"
REPLICA_NAMES: Final = ("a", "b")
SERVER: Final = "xployt-gateway x2 (backend redis)"


def _specs(
    stack: Stack, scan_id: str, n: int, rate: float, events: int, rawdir: Path
) -> list[LoadSpec]:
    """One loadgen per replica, half the subscribers each; A's publishes, B's into a sink."""
    halves = (n - n // 2, n // 2)
    return [
        LoadSpec(
            f"replicas/{name}",
            stack.stream_url(scan_id, i),
            halves[i],
            events,
            rate,
            headers=[stack.auth_header],
            pub_url=stack.publish_url(scan_id) if i == 0 else None,
            pub_pipe=None if i == 0 else SINK_PUBLISHER,
            raw_out=rawdir / f"{name}.raw",
        )
        for i, name in enumerate(REPLICA_NAMES)
    ]


def _per_replica(
    specs: list[LoadSpec], res: list[dict[str, Any]], figures: dict[str, Any], active: float
) -> list[dict[str, Any]]:
    """One row per replica: its loadgen's figures beside its gateway's CPU and RSS."""
    rows = []
    for name, load, r in zip(REPLICA_NAMES, specs, res, strict=True):
        rows.append(
            {
                "replica": name.upper(),
                "publishes": load.pub_url is not None,
                "n": load.n,
                **load_totals([r]),
                "dups": r.get("dups"),
                "out_of_order": r.get("out_of_order"),
                "stray": r.get("stray"),
                "latency_ms": r.get("latency_ms"),
                "sched_p99_ms": (r.get("latency_from_schedule_ms") or {}).get("p99"),
                "connect_s": r.get("connect_s"),
                "lg_cpu_pct": round(100 * lg_cpu_s(r) / active, 1),
                "srv_cpu_pct": figures[f"gateway_{name}_cpu_pct"],
                "srv_rss_base_mib": figures[f"gateway_{name}_rss_base_mib"],
                "srv_rss_idle_mib": figures.get(f"gateway_{name}_rss_idle_mib"),
                "srv_rss_peak_mib": figures[f"gateway_{name}_rss_peak_mib"],
            }
        )
    return rows


def _row(
    spec: str, specs: list[LoadSpec], run: LoadRun, meters: Meters, steal: float | None
) -> dict[str, Any]:
    n, rate, seconds = parse_scenario(spec)
    res = run.results
    active = active_window(res)
    totals = load_totals(res)
    figures = meters.figures(run.t_go, run.t_go + active, run.t_end)
    publisher = res[0]
    return {
        "server": SERVER,
        "scenario": spec,
        "n": n,
        "rate": rate,
        "seconds": seconds,
        "events": round(rate * seconds),
        "status": "ok",
        "redis_version": redis_version(),
        **totals,
        "published": publisher.get("published"),
        "pub_errors": publisher.get("pub_errors"),
        "pub_rate_achieved": publisher.get("pub_rate_achieved"),
        "latency_ms": merged_latency(res),
        "sched_p99_ms_worst": worst_p99(res, "latency_from_schedule_ms"),
        "fanout_all_ms": merged_all_n(
            [s.raw_out for s in specs if s.raw_out], totals["established"]
        ),
        "active_window_s": round(active, 2),
        "steal_pct": steal,
        "per_replica": _per_replica(specs, res, figures, active),
        **figures,
        "loadgens": res,
    }


def replicas(harness: Harness, logdir: Path, spec: str) -> dict[str, Any]:
    """Two gateway replicas sharing one Redis: one bench scan POSTed on replica A, N/2
    subscribers on A's stream and N/2 on B's; one loadgen per replica, GO to both at once. A's
    loadgen publishes through the mock scanner; B's keeps the same schedule into a sink."""
    n, rate, seconds = parse_scenario(spec)
    tag = f"replicas-{spec}"
    rawdir = logdir / tag
    shutil.rmtree(rawdir, ignore_errors=True)
    rawdir.mkdir(parents=True)
    with Stack(tag, logdir, replicas=2, redis=True) as stack:
        scan_id = stack.start_bench_scan()
        specs = _specs(stack, scan_id, n, rate, round(rate * seconds), rawdir)
        pids = dict(zip([f"gateway_{name}" for name in REPLICA_NAMES], stack.gw_pids, strict=True))
        pids |= {"redis": stack.redis_pid, "mock": stack.mock_pid}
        steal0: list[tuple[int, int]] = []
        with Meters(harness, pids) as meters:
            run = run_loadgens(
                harness.loadgen,
                specs,
                on_ready=meters.at_ready,
                on_go=lambda: steal0.append(steal_jiffies()),
            )
        steal = steal_pct(steal0[0])
        stack.finish(scan_id)
    return _row(spec, specs, run, meters, steal)
