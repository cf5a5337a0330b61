"""How a figure is printed in the report: ``-`` for none, floats to a given precision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_range(values: Sequence[float] | None, digits: int = 1) -> str:
    """``lo–hi``, or one value when both are equal."""
    if not values:
        return "-"
    lo, hi = fmt(values[0], digits), fmt(values[1], digits)
    return lo if lo == hi else f"{lo}–{hi}"
