"""What an idle open stream costs the gateway: RSS and tracemalloc snapshots of a traced
gateway (``bench/gateway_traced.py``) with no stream and with N idle streams, compared."""

from __future__ import annotations

import os
import shutil
import signal
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from ..common import MiB, short_path
from ..harness import Harness
from ..loadgen import LoadSpec, run_loadgens
from ..stack import Stack


def _snapshot(gw_pid: int, snapdir: Path, k: int) -> tracemalloc.Snapshot:
    """Ask the traced gateway for its ``k``-th snapshot (SIGUSR1) and load it."""
    os.kill(gw_pid, signal.SIGUSR1)
    done = snapdir / f"snapshot-{k}.done"
    deadline = time.monotonic() + 120
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(snapdir / f"snapshot-{k}.pickle"))


def _site(frame: tracemalloc.Frame) -> str:
    return f"{short_path(frame.filename)}:{frame.lineno}"


def _owners(stats: list[tracemalloc.StatisticDiff]) -> Counter[str]:
    """Growth by the innermost gateway frame of each allocation's traceback."""
    owners: Counter[str] = Counter()
    for st in stats:
        inner = [f for f in st.traceback if "/gateway/" in f.filename]
        owners[
            _site(inner[-1]) if inner else "(no gateway frame in the 8 traced: aiohttp/asyncio)"
        ] += st.size_diff
    return owners


def _report(
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    by_line: list[tracemalloc.StatisticDiff],
    rss: list[int],
    est: int,
) -> str:
    """The summary text: RSS and traced growth per stream, by line, file, gateway frame."""
    per = max(est, 1)
    stats = after.compare_to(before, "traceback")
    grown = sum(s.size_diff for s in by_line)
    lines = [
        f"gateway RSS: {rss[0] / MiB:.1f} MiB with no stream, {rss[1] / MiB:.1f} MiB with "
        f"{est} idle streams (tracemalloc on, which adds its own overhead): "
        f"{(rss[1] - rss[0]) / 1024 / per:.1f} KiB per stream",
        f"Python heap growth traced by tracemalloc: {grown / MiB:.1f} MiB = "
        f"{grown / 1024 / per:.2f} KiB per stream",
        "",
        "top allocation sites by growth (KiB per stream, count per stream):",
    ]
    for stat in by_line[:25]:
        lines.append(
            f"  {stat.size_diff / 1024 / per:7.2f} KiB  "
            f"{stat.count_diff / per:6.1f}  {_site(stat.traceback[0])}"
        )
    by_file = after.compare_to(before, "filename")
    lines += ["", "growth by file (KiB per stream):"]
    lines += [
        f"  {st.size_diff / 1024 / per:7.2f} KiB  {short_path(st.traceback[0].filename)}"
        for st in by_file[:20]
    ]
    lines += ["", "growth by innermost gateway frame of the allocation (KiB per stream):"]
    lines += [
        f"  {size / 1024 / per:7.2f} KiB  {site}" for site, size in _owners(stats).most_common(15)
    ]
    lines += ["", "top tracebacks (innermost last):"]
    for stat in stats[:8]:
        lines.append(f"  {stat.size_diff / 1024 / per:.2f} KiB per stream:")
        lines += [f"      {short_path(f.filename)}:{f.lineno}" for f in stat.traceback]
    return "\n".join(lines) + "\n"


def _figures(by_line: list[tracemalloc.StatisticDiff], rss: list[int], est: int) -> dict[str, Any]:
    per = max(est, 1)
    grown = sum(s.size_diff for s in by_line)
    return {
        "streams": est,
        "rss_base_mib": round(rss[0] / MiB, 1),
        "rss_idle_mib": round(rss[1] / MiB, 1),
        "traced_growth_kib_per_stream": round(grown / 1024 / per, 2),
        "top_sites": [
            {
                "site": _site(s.traceback[0]),
                "kib_per_stream": round(s.size_diff / 1024 / per, 2),
                "count_per_stream": round(s.count_diff / per, 1),
            }
            for s in by_line[:15]
        ],
    }


def profile_memory(
    harness: Harness, logdir: Path, n: int, out: Path, *, redis: bool = False
) -> dict[str, Any]:
    """tracemalloc snapshots of the gateway with no stream and with N idle streams (on
    ``backend: redis`` with ``redis``)."""
    snapdir = out.parent / f"{out.stem}-snapshots"
    shutil.rmtree(snapdir, ignore_errors=True)
    with Stack(f"profile-memory-{n}", logdir, snapshots=snapdir, redis=redis) as stack:
        scan_id = stack.start_bench_scan()
        snaps: list[tracemalloc.Snapshot] = []
        rss: list[int] = []

        def at_ready() -> None:
            time.sleep(1.0)
            rss.append(harness.rss(stack.gw_pid))
            snaps.append(_snapshot(stack.gw_pid, snapdir, 2))

        rss.append(harness.rss(stack.gw_pid))
        snaps.append(_snapshot(stack.gw_pid, snapdir, 1))
        spec = LoadSpec(
            f"memory/{n}",
            stack.stream_url(scan_id),
            n,
            0,
            1.0,
            headers=[stack.auth_header],
            hold=0.5,
        )
        run = run_loadgens(harness.loadgen, [spec], on_ready=at_ready)
        stack.finish(scan_id)
    est = run.results[0]["established"]
    before, after = snaps
    by_line = after.compare_to(before, "lineno")
    summary = out.with_suffix(".summary.txt")
    summary.write_text(_report(before, after, by_line, rss, est))
    shutil.rmtree(snapdir, ignore_errors=True)
    return {"summary": str(summary), **_figures(by_line, rss, est)}
