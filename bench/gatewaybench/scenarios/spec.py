"""A scenario's name, ``NxRATExSECONDS`` (N subscribers, R events/s, for S seconds), and the
row of one that produced no figures."""

from __future__ import annotations

from typing import Any


def parse_scenario(spec: str) -> tuple[int, float, float]:
    n, r, s = spec.lower().split("x")
    return int(n), float(r), float(s)


def split_list(text: str) -> list[str]:
    """A comma list from the command line, without blanks."""
    return [item.strip() for item in text.split(",") if item.strip()]


def failed_row(server: str, spec: str, error: str) -> dict[str, Any]:
    """The result row of a scenario that produced no figures."""
    n, rate, seconds = parse_scenario(spec)
    return {
        "server": server,
        "scenario": spec,
        "n": n,
        "rate": rate,
        "seconds": seconds,
        "events": int(rate * seconds),
        "status": "error",
        "error": error,
    }
