"""Fan-out: one bench scan, N subscribers on its stream, events published at R/s through the
mock scanner; driven by the shared harness (``ssebench.py run --no-start --pid <gateway>``), so
the figures are the anchors' own."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ..common import PY
from ..harness import Harness
from ..meters import steal_jiffies, steal_pct
from ..procs import shell_quote
from ..stack import Stack
from .spec import failed_row, parse_scenario

SERVER = "xployt-gateway"


def harness_cmd(shared: Path, stack: Stack, scan_id: str, spec: str, prefix: str) -> list[str]:
    """``ssebench.py run`` against the running gateway, publishing through the mock."""
    cmd = [PY, str(shared / "ssebench.py"), "run", "--no-start"]
    cmd += ["--pid", str(stack.gw_pid), "--name", SERVER]
    cmd += ["--sub-url", stack.stream_url(scan_id), "-H", stack.auth_header]
    cmd += ["--pub-url", stack.publish_url(scan_id), "--pub-body", "{{DATA}}"]
    cmd += ["--scenarios", spec, "--prefix", prefix]
    return cmd


def latest_result(harness: Harness, prefix: str, since: float) -> Path | None:
    """The harness's newest result file of this scenario, written after ``since``."""
    found = sorted(
        (p for p in harness.results.glob(f"{prefix}-*.json") if p.stat().st_mtime >= since),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1] if found else None


def fanout(
    harness: Harness, shared: Path, spec: str, logdir: Path, *, redis: bool = False
) -> dict[str, Any]:
    """One harness scenario against a fresh gateway, one bench scan; with ``redis``, the
    gateway on ``backend: redis`` (a redis-server of its own)."""
    seconds = parse_scenario(spec)[2]
    tag = f"fanout-{spec}{'-redis' if redis else ''}"
    with Stack(tag, logdir, redis=redis) as stack:
        scan_id = stack.start_bench_scan()
        prefix = f"xployt-gateway-{spec}"
        cmd = harness_cmd(shared, stack, scan_id, spec, prefix)
        (logdir / f"{tag}-harness.cmd").write_text(
            " ".join(shell_quote(c) for c in cmd).replace(stack.token, "$TOKEN") + "\n"
        )
        started = time.time()
        mock0, t0 = harness.ticks(stack.mock_pid), time.monotonic()
        steal0 = steal_jiffies()
        subprocess.run(cmd, check=False, timeout=seconds + 400)
        steal = steal_pct(steal0)
        mock_cpu_s = (harness.ticks(stack.mock_pid) - mock0) / harness.clk_tck
        wall = time.monotonic() - t0
        stack.finish(scan_id)
        found = latest_result(harness, prefix, started)
        if found is None:
            return failed_row(SERVER, spec, "the harness wrote no result")
        data = json.loads(found.read_text())
        row: dict[str, Any] = data["rows"][-1]
        row["backend"] = "redis" if redis else "sqlite"
        row["harness_json"] = str(found)
        row["harness_meta"] = data["meta"]
        row["mock_cpu_s"] = round(mock_cpu_s, 2)
        row["steal_pct"] = steal
        row["harness_wall_s"] = round(wall, 1)
        active = row.get("active_window_s")
        if active:
            # The mock works only while events are published: its CPU over the active window.
            row["mock_cpu_pct_est"] = round(100 * mock_cpu_s / active, 1)
        return row
