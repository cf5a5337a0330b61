"""``--profile``: which profile each item of the list names (``fanout:N``, ``memory:N``,
``pipeline:K``, ``collections:C`` (of 4 scanners), ``first``, ``replay``) and the fan-out
profile, which no part runs itself."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from .harness import Harness
from .loadgen import LoadSpec, run_loadgens
from .profiles.memory import profile_memory
from .profiles.pyspy import finish_pyspy, start_pyspy
from .scenarios.collections import collections
from .scenarios.first_event import first_event
from .scenarios.pipeline import pipeline
from .scenarios.replay import replay
from .stack import Stack

LOAD_KEYS = ("established", "delivered", "expected", "loss_pct", "latency_ms", "disconnects")


def profile_fanout(
    harness: Harness, logdir: Path, n: int, rate: float, seconds: float, out: Path
) -> dict[str, Any]:
    """py-spy on the gateway while N subscribers read one bench scan at R/s."""
    with Stack(f"profile-fanout-{n}", logdir) as stack:
        scan_id = stack.start_bench_scan()
        spy: list[subprocess.Popen[bytes]] = []
        spec = LoadSpec(
            f"profile/{n}",
            stack.stream_url(scan_id),
            n,
            int(rate * seconds),
            rate,
            headers=[stack.auth_header],
            pub_url=stack.publish_url(scan_id),
        )
        run = run_loadgens(
            harness.loadgen,
            [spec],
            on_go=lambda: spy.append(start_pyspy(stack.gw_pid, min(seconds, 10), out)),
        )
        stack.finish(scan_id)
        result = finish_pyspy(spy[0], out)
        g = run.results[0]
        result["load"] = {k: g.get(k) for k in LOAD_KEYS}
        return result


def run_profile(
    harness: Harness,
    logdir: Path,
    item: str,
    out: Path,
    *,
    first_scans: int,
    replay_events: int,
    pipeline_rate: float,
    pipeline_seconds: float,
    redis: bool = False,
) -> dict[str, Any]:
    """The profile one ``--profile`` item names, written beside ``out`` (``memory`` on
    ``backend: redis`` with ``redis``)."""
    kind, _, arg = item.partition(":")
    if kind == "fanout":
        return profile_fanout(harness, logdir, int(arg), 20, 10, out)
    if kind == "memory":
        return profile_memory(harness, logdir, int(arg), out, redis=redis)
    if kind == "pipeline":
        row = pipeline(harness, logdir, int(arg), pipeline_rate, pipeline_seconds, profile=out)
        profile: dict[str, Any] = row["profile"]
    elif kind == "collections":
        row = collections(
            harness, logdir, int(arg), 4, pipeline_rate, pipeline_seconds, profile=out
        )
        profile = row["profile"]
    elif kind == "first":
        profile = first_event(harness, logdir, first_scans * 3, profile=out)["profile"]
    elif kind == "replay":
        profile = replay(harness, logdir, replay_events, 1, profile=out)["profile"]
    else:
        raise ValueError(f"unknown profile {item!r}")
    return profile


def profile_path(out_dir: Path, stamp: str, item: str) -> Path:
    kind, _, arg = item.partition(":")
    return out_dir / f"{stamp}-profile-{kind}{('-' + arg) if arg else ''}.folded"
