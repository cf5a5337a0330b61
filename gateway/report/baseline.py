"""A report against a baseline: which findings are new, which were there, which are gone.

Findings are matched by fingerprint (``gateway.report.fingerprint``), as code scanning services
track alerts across runs: a finding of ``current`` whose fingerprint the baseline holds is
``unchanged``, any other ``new``; a finding of the baseline whose fingerprint ``current`` does
not hold is fixed (``absent``, SARIF's word), listed once per fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from gateway.report.fingerprint import fingerprint

__all__ = ["BaselineState", "compare"]

BaselineState = Literal["new", "unchanged", "absent"]


def compare(
    current: Sequence[Mapping[str, Any]],
    baseline: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``current``'s findings, each with ``fingerprint`` and ``baseline_state`` ``new`` or
    ``unchanged``; the baseline's fixed findings, each with ``fingerprint`` and
    ``baseline_state: "absent"``), in the order given. The inputs are not changed."""
    before: dict[str, Mapping[str, Any]] = {}
    for finding in baseline:
        before.setdefault(fingerprint(finding), finding)
    marked: list[dict[str, Any]] = []
    now: set[str] = set()
    for finding in current:
        mark = fingerprint(finding)
        now.add(mark)
        state: BaselineState = "unchanged" if mark in before else "new"
        marked.append({**finding, "fingerprint": mark, "baseline_state": state})
    fixed = [
        {**finding, "fingerprint": mark, "baseline_state": "absent"}
        for mark, finding in before.items()
        if mark not in now
    ]
    return marked, fixed
