"""What the subscribers of one storm saw, summed over their processes: the ids (exactly 1..n
for each subscriber, n the scan's terminal event), how long until all had left, were back and
were caught up (seconds from the signal), and the latency of live events before and during."""

from __future__ import annotations

from typing import Any

from ..stats import pct, rnd


def _joined(results: list[dict[str, Any]], key: str) -> list[Any]:
    return [value for result in results for value in result[key]]


def _latest(times: list[float | None], since: float) -> float | None:
    """Seconds from ``since`` until the last of ``times``; None if any is missing."""
    if not times or any(t is None for t in times):
        return None
    return round(max(t for t in times if t is not None) - since, 2)


def _median(times: list[float | None], since: float) -> float | None:
    known = sorted(t - since for t in times if t is not None)
    return rnd(pct(known, 50), 2)


def _latency(live: list[list[float]], start: float, end: float) -> dict[str, Any]:
    values = sorted(ms for t, ms in live if start <= t < end)
    return {"count": len(values), "p50": rnd(pct(values, 50), 1), "p99": rnd(pct(values, 99), 1)}


def ids(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Loss and duplicates, per subscriber against the highest id any of them got."""
    last_ids = _joined(results, "last_ids")
    final = max(last_ids, default=0)
    lost = _joined(results, "lost")
    dups = _joined(results, "dups")
    short = sum(final - last for last in last_ids)  # events at the end never received
    return {
        "subscribers": len(last_ids),
        "final_id": final,
        "lost": sum(lost) + short,
        "duplicated": sum(dups),
        "subscribers_not_exact": sum(
            1 for lo, du, la in zip(lost, dups, last_ids, strict=True) if lo or du or la != final
        ),
        "done": sum(r["done"] for r in results),
        "connections": sum(r["connections"] for r in results),
        "failed_attempts": sum(r["failures"] for r in results),
    }


def timings(results: list[dict[str, Any]], signal_at: float) -> dict[str, Any]:
    """Seconds from the signal (epoch ``signal_at``) until all had left, were back, caught up."""
    left, back = _joined(results, "left_at"), _joined(results, "back_at")
    caught = _joined(results, "caught_up_at")
    return {
        "all_left_s": _latest(left, signal_at),
        "all_back_s": _latest(back, signal_at),
        "all_caught_up_s": _latest(caught, signal_at),
        "median_caught_up_s": _median(caught, signal_at),
        "not_caught_up": sum(t is None for t in caught),
    }


def live_latency(
    results: list[dict[str, Any]], before: float, signal_at: float, storm_s: float | None
) -> dict[str, Any]:
    """Live events' latency (ms, from the scanner's emit) before the signal and in the storm,
    from the signal until all were caught up (``storm_s``; None: not measured)."""
    live = _joined(results, "live")
    figures = {"before": _latency(live, before, signal_at)}
    if storm_s is not None:
        figures["storm"] = _latency(live, signal_at, signal_at + storm_s)
    return figures
