"""Pipeline: K scans at R ev/s each with 1-2 subscribers (alternating), one loadgen process per
scan; latency from the scanner's emit (the mock stamps ``t`` as it writes upstream,
``stamp_emit``) to receipt, over every delivery. The same load on the harness's aiohttp-sse
anchor server (from the publisher's stamp) gives the scale of one plain publish->SSE hop."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..harness import Harness
from ..loadgen import LoadRun, LoadSpec, run_loadgens
from ..meters import Meters
from ..procs import free_port
from ..profiles.pyspy import finish_pyspy, start_pyspy
from ..stack import Stack, scanning
from ..stats import active_window, lg_cpu_s, load_totals, raw_latencies, summary_ms, worst_p99


@dataclass(frozen=True)
class Load:
    """K scans x R ev/s for S seconds; per scan 2, 1, 2, ... subscribers, raw files in rawdir."""

    scans: int
    rate: float
    seconds: float
    rawdir: Path

    @property
    def subs(self) -> list[int]:
        return [2 if i % 2 == 0 else 1 for i in range(self.scans)]

    @property
    def events(self) -> int:
        return round(self.rate * self.seconds)

    def raw(self, i: int) -> Path:
        return self.rawdir / f"{i}.raw"


@dataclass(frozen=True)
class Target:
    """What the loadgens run against: the processes to meter, one spec per scan, and what
    ends the scans once the loadgens are done."""

    pids: dict[str, int]
    specs: list[LoadSpec]
    finish: Callable[[], None] = lambda: None


def _baseline_target(port: int) -> dict[str, Any]:
    """The harness's aiohttp-sse server as a harness target."""
    return {
        "name": "aiohttp-sse",
        "procs": [
            {
                "name": "aiohttp",
                "cwd": "{bench}/servers",
                "cmd": f"exec {{venv_py}} py_aiohttp.py --port {port}",
            }
        ],
        "wait_ports": [port],
    }


@contextlib.contextmanager
def _baseline(harness: Harness, logdir: Path, load: Load) -> Iterator[Target]:
    """The harness's aiohttp-sse server, one channel per scan."""
    port = free_port(set())
    server = harness.server(_baseline_target(port), logdir, f"pipeline-baseline-{load.scans}")
    try:
        server.start()
        base = f"http://127.0.0.1:{port}"
        specs = [
            LoadSpec(
                f"baseline/{i}",
                f"{base}/sub/scan{i}",
                load.subs[i],
                load.events,
                load.rate,
                pub_url=f"{base}/pub/scan{i}",
                raw_out=load.raw(i),
            )
            for i in range(load.scans)
        ]
        yield Target({"server": server.procs[0].pid}, specs)
    finally:
        server.stop()


@contextlib.contextmanager
def _gateway(logdir: Path, load: Load) -> Iterator[Target]:
    """A fresh gateway with K bench scans that stamp their events as the mock writes them."""
    stack = Stack(f"pipeline-{load.scans}", logdir)
    try:
        stack.start()
        # The mock stamps `t` as it writes each event upstream: latency is then the
        # gateway's own, from the scanner's emit to the subscriber (target d).
        scan_ids = [stack.create_scan(stamp_emit=True) for _ in range(load.scans)]
        stack.wait_scans(scan_ids, scanning, 60)
        specs = [
            LoadSpec(
                f"gateway/{i}",
                stack.stream_url(sid),
                load.subs[i],
                load.events,
                load.rate,
                headers=[stack.auth_header],
                pub_url=stack.publish_url(sid),
                raw_out=load.raw(i),
            )
            for i, sid in enumerate(scan_ids)
        ]

        def finish() -> None:
            for sid in scan_ids:
                stack.finish(sid)

        yield Target({"server": stack.gw_pid, "mock": stack.mock_pid}, specs, finish)
    finally:
        stack.stop()


def pipeline_row(load: Load, run: LoadRun, meters: Meters, baseline: bool) -> dict[str, Any]:
    """The figures of one run: deliveries and loss, latency over every delivery, CPU and RSS."""
    latencies = sorted(lat for i in range(load.scans) for lat in raw_latencies(load.raw(i)))
    res = run.results
    active = active_window(res)
    return {
        "server": "aiohttp-sse (baseline)" if baseline else "xployt-gateway",
        "scans": load.scans,
        "subscribers": sum(load.subs),
        "rate_per_scan": load.rate,
        "seconds": load.seconds,
        **load_totals(res),
        "published": sum(r.get("published", 0) for r in res),
        "pub_errors": sum(r.get("pub_errors", 0) for r in res),
        "latency_ms": summary_ms(latencies),
        "worst_scan_sched_p99_ms": worst_p99(res, "latency_from_schedule_ms"),
        "pub_rtt_p99_ms_worst": worst_p99(res, "pub_rtt_ms"),
        "active_window_s": round(active, 2),
        "lg_processes": len(res) * 2,
        "lg_cpu_pct": round(100 * sum(lg_cpu_s(r) for r in res) / active, 1),
        **meters.figures(run.t_go, run.t_go + active, run.t_end),
    }


def pipeline(
    harness: Harness,
    logdir: Path,
    scans: int,
    rate: float,
    seconds: float,
    *,
    baseline: bool = False,
    profile: Path | None = None,
) -> dict[str, Any]:
    """K scans x R ev/s, subscribers alternating 2, 1, 2, ... per scan; one loadgen per scan.

    ``baseline``: the same load on the harness's aiohttp-sse server (one channel per scan).
    """
    rawdir = logdir / f"pipeline-{'baseline-' if baseline else ''}{scans}"
    shutil.rmtree(rawdir, ignore_errors=True)
    rawdir.mkdir(parents=True)
    load = Load(scans, rate, seconds, rawdir)
    target = _baseline(harness, logdir, load) if baseline else _gateway(logdir, load)
    with target as t:
        spy: list[Any] = []

        def at_go() -> None:
            if profile:
                spy.append(start_pyspy(t.pids["server"], 10, profile))

        with Meters(harness, t.pids) as meters:
            run = run_loadgens(harness.loadgen, t.specs, on_ready=meters.at_ready, on_go=at_go)
        t.finish()
        out = pipeline_row(load, run, meters, baseline)
        if spy and profile:
            out["profile"] = finish_pyspy(spy[0], profile)
        return out
