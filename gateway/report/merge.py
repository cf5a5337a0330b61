"""Placeholder of ``report.merge`` (the agreed interface, /work/wt/notes/REPORT-API.md);
the wt-report branch replaces it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.report.fingerprint import fingerprint

__all__ = ["merge_findings", "summary"]

_RANK: dict[object, int] = {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1}


def merge_findings(
    per_scanner: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for scanner, findings in per_scanner.items():
        for finding in findings:
            key = fingerprint(finding)
            kept = merged.get(key)
            if kept is None:
                merged[key] = {**finding, "fingerprint": key, "reported_by": [scanner]}
                continue
            kept["reported_by"] = sorted({*kept["reported_by"], scanner})
            if _RANK.get(finding.get("severity"), 0) > _RANK.get(kept.get("severity"), 0):
                merged[key] = {**finding, "fingerprint": key, "reported_by": kept["reported_by"]}
    return sorted(
        merged.values(),
        key=lambda f: (
            -_RANK.get(f.get("severity"), 0),
            str(f.get("file_path")),
            str(f.get("line")),
        ),
    )


def summary(findings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    by_severity = dict.fromkeys(_RANK, 0)
    for finding in findings:
        severity = finding.get("severity")
        if severity in by_severity:
            by_severity[severity] += 1
    return {"total": len(findings), "by_severity": by_severity}
