"""Findings of several scanners as one list: alike ones merged, each saying who reported it.

``merge_findings`` gives every finding its ``fingerprint`` and ``reported_by`` (the scanners
that reported it, sorted). Findings with the same fingerprint are one: the one kept is the most
severe (the first of the scanners in name order, then in the order given, among equals), and
its ``reported_by`` names every scanner that reported any of them. They share their first line
(it is in the fingerprint) but not always the others: the one kept has ``related_lines`` of
all of them -- its own, then the least of the others', at most ``MAX_RELATED_LINES``,
ascending -- so that no scanner's location is lost in the merge. The list is ordered by
severity (``critical`` first, ``unknown`` last, as ``SEVERITIES``), then path, line and
fingerprint, so the same findings always come out in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.domain.models import SEVERITIES, count_severities
from gateway.report.fingerprint import fingerprint
from gateway.report.location import file_path, first_line, lines, severity
from gateway.scanners.lines import MAX_RELATED_LINES

__all__ = ["SEVERITY_RANK", "merge_findings", "order_key", "summary"]

# Lower is more severe: the order of ``SEVERITIES``.
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def merge_findings(
    per_scanner: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """Every scanner's findings as one list (see the module docstring); the input is not
    changed."""
    kept: dict[str, dict[str, Any]] = {}
    reporters: dict[str, set[str]] = {}
    seen_lines: dict[str, set[int]] = {}
    for scanner in sorted(per_scanner):
        for finding in per_scanner[scanner]:
            mark = fingerprint(finding)
            reporters.setdefault(mark, set()).add(scanner)
            seen_lines.setdefault(mark, set()).update(lines(finding))
            held = kept.get(mark)
            if held is None or SEVERITY_RANK[severity(finding)] < SEVERITY_RANK[severity(held)]:
                kept[mark] = {**finding, "fingerprint": mark}
    merged = [
        _with_lines({**finding, "reported_by": sorted(reporters[mark])}, seen_lines[mark])
        for mark, finding in kept.items()
    ]
    merged.sort(key=order_key)
    return merged


def _with_lines(finding: dict[str, Any], seen: set[int]) -> dict[str, Any]:
    """``finding`` with ``related_lines`` of the lines any of its group named, when another
    finding of the group added one; otherwise as it was."""
    own = lines(finding)
    if seen.issubset(own):
        return finding
    first = first_line(finding)
    others = sorted(line for line in seen.difference(own) if line != first)
    related = [line for line in own if line != first]
    room = MAX_RELATED_LINES - len(related)
    return {**finding, "related_lines": sorted(related + others[:room])}


def order_key(finding: Mapping[str, Any]) -> tuple[int, str, int, str]:
    """Severity first, then path, line and fingerprint: the report's order."""
    mark = finding.get("fingerprint")
    return (
        SEVERITY_RANK[severity(finding)],
        file_path(finding) or "",
        first_line(finding) or 0,
        mark if isinstance(mark, str) else fingerprint(finding),
    )


def summary(findings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"total": n, "by_severity": {severity: count}}``, every one of ``SEVERITIES`` listed
    (``unknown`` for a severity that is none of the others)."""
    by_severity = count_severities(_severities(findings))
    return {"total": len(findings), "by_severity": by_severity}


def _severities(findings: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    return (severity(finding) for finding in findings)
