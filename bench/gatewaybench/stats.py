"""Figures from what the loadgens report: percentiles, totals over several instances, and the
per-event records of their ``--raw-out`` files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def pct(sorted_values: Sequence[float], p: float) -> float | None:
    """The loadgen's percentile: nearest rank on a sorted list."""
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(p / 100.0 * (len(sorted_values) - 1) + 0.5))
    return sorted_values[i]


def summary_ms(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    return {
        "samples": len(v),
        "p50": rnd(pct(v, 50)),
        "p90": rnd(pct(v, 90)),
        "p99": rnd(pct(v, 99)),
        "max": rnd(v[-1] if v else None),
        "mean": rnd(sum(v) / len(v) if v else None),
    }


def raw_events(path: Path) -> list[tuple[int, int, int]]:
    """A loadgen --raw-out file: per event (by seq), its deliveries and their min and max
    latency (µs)."""
    out: list[tuple[int, int, int]] = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        _, count, low, high = (int(x) for x in line.split("\t"))
        out.append((count, low, high))
    return out


def raw_latencies(path: Path) -> list[float]:
    """Every delivery's latency (ms) from a loadgen --raw-out file with at most 2 subscribers:
    per event it holds the count and the min and max latency, i.e. each sample."""
    out: list[float] = []
    for count, low, high in raw_events(path):
        if count >= 1:
            out.append(low / 1000)
        if count >= 2:
            out.append(high / 1000)
        if count > 2:
            raise ValueError("raw files give every sample only for at most 2 subscribers")
    return out


def active_window(results: Sequence[dict[str, Any]]) -> float:
    """Seconds from GO to the last delivery or the end of publishing, whichever is later."""
    active = max(max(r.get("last_delivery_s") or 0, r.get("pub_total_s") or 0) for r in results)
    return max(active, 0.5)


def lg_cpu_s(result: dict[str, Any]) -> float:
    """A loadgen's CPU over its publishing window: subscriber process plus publisher."""
    return float(result.get("lg_cpu_window_s", 0) + result.get("pub_cpu_s", 0))


def load_totals(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The subscriber side of several loadgens together."""
    expected = sum(r["expected"] for r in results)
    delivered = sum(r["delivered"] for r in results)
    return {
        "established": sum(r["established"] for r in results),
        "expected": expected,
        "delivered": delivered,
        "loss_pct": round(100 * (expected - min(delivered, expected)) / expected, 4)
        if expected
        else None,
        "disconnects": sum(r.get("disconnects", 0) for r in results),
    }


def worst_p99(results: Sequence[dict[str, Any]], key: str) -> float:
    """The highest p99 of one of the loadgens' latency figures (``latency_from_schedule_ms``)."""
    return max((r.get(key) or {}).get("p99") or 0 for r in results)


def merged_latency(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Latency over the deliveries of several loadgens, from their JSON.

    The loadgen reports percentiles, not samples (its ``--raw-out`` keeps per event only the
    min and max), so samples, mean and max are exact, and each percentile of the union is given
    as the range between the loadgens' own: the union's lies within it (to one rank)."""
    parts = [r["latency_ms"] for r in results if (r.get("latency_ms") or {}).get("samples")]
    samples = sum(int(p["samples"]) for p in parts)
    out: dict[str, Any] = {
        "samples": samples,
        "exact": len(parts) <= 1,
        "mean": rnd(sum(p["mean"] * p["samples"] for p in parts) / samples) if samples else None,
        "max": max((p["max"] for p in parts), default=None),
    }
    for key in ("p50", "p90", "p99"):
        values = [p[key] for p in parts]
        out[f"{key}_range"] = [min(values), max(values)] if values else None
        out[key] = max(values, default=None)  # the upper bound: what a verdict may rely on
    return out


def merged_all_n(raw_files: Sequence[Path], established: int) -> dict[str, Any]:
    """Per event, the time until the last of all subscribers (over every loadgen) had it:
    exact, from the loadgens' --raw-out files (per event: deliveries, min and max latency)."""
    per_file = [raw_events(path) for path in raw_files]
    full: list[float] = []
    for rows in zip(*per_file, strict=True):
        if established and sum(count for count, _, _ in rows) >= established:
            full.append(max(high for _, _, high in rows) / 1000)
    v = sorted(full)
    return {
        "events": len(v),
        "p50": rnd(pct(v, 50)),
        "p99": rnd(pct(v, 99)),
        "max": rnd(v[-1] if v else None),
    }
