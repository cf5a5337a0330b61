"""What the machine and the processes under test spend, read from ``/proc``: CPU and RSS of
named processes around a loadgen run, the hypervisor's steal, and the machine's description."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path
from typing import Any

from .common import MiB
from .harness import Harness
from .stats import rnd


def steal_jiffies() -> tuple[int, int]:
    """(steal, total) jiffies of the whole machine: time the hypervisor gave to others."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0), sum(v[:8])


def steal_pct(since: tuple[int, int]) -> float | None:
    """Steal since ``since``, in % of the machine's time (all CPUs)."""
    now = steal_jiffies()
    total = now[1] - since[1]
    return round(100 * (now[0] - since[0]) / total, 1) if total > 0 else None


class Meters:
    """CPU and RSS of named processes (each with its children), sampled every 0.2 s by the
    harness's Sampler around one loadgen run: RSS at start (base), after all subscribers
    connected (idle, by ``at_ready``) and its peak; CPU over the active window."""

    def __init__(self, harness: Harness, pids: dict[str, int]) -> None:
        self.samplers = {name: harness.sampler([pid]) for name, pid in pids.items()}
        self.base = {name: s.sample() for name, s in self.samplers.items()}
        self.idle: dict[str, Any] = {}
        for sampler in self.samplers.values():
            sampler.start()

    def __enter__(self) -> Meters:
        return self

    def __exit__(self, *_exc: object) -> None:
        for sampler in self.samplers.values():
            sampler.stop_ev.set()

    def at_ready(self) -> None:
        time.sleep(1.0)
        self.idle.update({name: s.sample() for name, s in self.samplers.items()})

    def figures(self, t_go: float, t_act: float, t_end: float) -> dict[str, Any]:
        """``<name>_cpu_pct`` over [t_go, t_act], ``<name>_rss_{base,idle,peak}_mib`` and the
        machine's ``box_cpu_pct``."""
        out: dict[str, Any] = {}
        for name, sampler in self.samplers.items():
            out[f"{name}_cpu_pct"] = rnd(sampler.cpu_pct(t_go, t_act), 1)
            out[f"{name}_rss_base_mib"] = round(self.base[name][2] / MiB, 1)
            if name in self.idle:
                out[f"{name}_rss_idle_mib"] = round(self.idle[name][2] / MiB, 1)
            out[f"{name}_rss_peak_mib"] = round(sampler.peak(t_go, t_end)[0] / MiB, 1)
        first = next(iter(self.samplers.values()))
        out["box_cpu_pct"] = rnd(first.box_pct(t_go, t_act), 1)
        return out


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: the machine may be shared."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "host": platform.node(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_total_mib"] = int(line.split()[1]) // 1024
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    return info
