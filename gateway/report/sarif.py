"""Findings as SARIF 2.1.0, valid against the OASIS schema and ready for GitHub code scanning.

One run per scanner. Its ``tool.driver`` is the scanner (its name, the gateway's version, the
``informationUri`` given) with one rule per rule id (``location.rule_id``), and
``automationDetails.id`` ``xployt/<scanner>/``, which code scanning takes as the run's category
(it refuses two runs of one tool in one category). Each finding is a result with ``ruleId``,
``level``, ``message``, one location and ``partialFingerprints`` (``xployt/v1``: the
fingerprint); with a baseline, ``baselineState``, and the baseline's fixed findings are results
too (``absent``).

What code scanning needs and SARIF leaves optional is always there: a location with a
repository-relative ``artifactLocation.uri`` (``NO_FILE`` for a finding that names no file,
since code scanning refuses a result without one), a ``region`` whose ``startLine`` is at least
1 (1 when the finding has no line), ``security-severity`` as a number in a string. A finding
with several lines (``related_lines`` beside its ``line``, or a list-valued ``line``) has its
region at the first and the others as ``relatedLocations`` in the same file.

Every text is cut (``MAX_*_CHARS``, ending with ``TRUNCATED``), so a result is bounded whatever
the finding holds.
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from gateway.domain.models import SEVERITIES
from gateway.domain.text import CONTROLS, MULTILINE_CONTROLS
from gateway.report.fingerprint import VERSION, fingerprint
from gateway.report.location import (
    MAX_INPUT_CHARS,
    column,
    file_path,
    lines,
    rule_id,
    severity,
    text,
)
from gateway.report.merge import SEVERITY_RANK
from gateway.scanners.findings import TRUNCATED
from gateway.scanners.vulnerability import UNTITLED

__all__ = [
    "BASELINE_STATES",
    "INFORMATION_URI",
    "LEVELS",
    "MAX_MESSAGE_CHARS",
    "NO_FILE",
    "SCHEMA_URI",
    "SECURITY_SEVERITY",
    "SarifRun",
    "to_sarif",
]

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
# The driver's informationUri unless the caller gives one (the HTTP layer gives the gateway's
# API docs as the client reached them).
INFORMATION_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/"
NO_FILE = "xployt-no-file"
BASELINE_STATES = frozenset({"new", "unchanged", "absent"})
LEVELS = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
    "unknown": "warning",
}
# Code scanning reads these as critical (over 9.0), high (7.0-8.9), medium (4.0-6.9), low.
SECURITY_SEVERITY = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
    "info": "1.0",
    "unknown": "4.0",
}
MAX_MESSAGE_CHARS = 4000
MAX_SHORT_CHARS = 1000
MAX_DESCRIPTION_CHARS = 4000
MAX_SNIPPET_CHARS = 4000
MAX_PROPERTY_CHARS = 200
MAX_TAGS = 10  # code scanning reads the first 10
MAX_REPORTERS = 20
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_NOT_ID = re.compile(r"[^0-9A-Za-z_.-]+")
_CWE = re.compile(r"CWE-(\d{1,7})", re.ASCII)


@dataclass(frozen=True, slots=True)
class SarifRun:
    """One scanner's findings (and, against a baseline, the fixed ones) for one SARIF run."""

    scanner_name: str
    findings: Sequence[Mapping[str, Any]]
    fixed: Sequence[Mapping[str, Any]] = ()


def to_sarif(
    runs: Sequence[SarifRun],
    *,
    baseline: bool = False,
    information_uri: str = INFORMATION_URI,
) -> dict[str, Any]:
    """The SARIF log of ``runs``; with ``baseline``, results carry ``baselineState`` (a
    finding's own ``baseline_state``, else ``new``) and each run's ``fixed`` are results too."""
    sarif_runs = [_run(run, baseline, information_uri) for run in runs]
    # Code scanning refuses two runs in one category: scanner names that read alike (or two
    # runs of one scanner) get a number.
    seen: set[str] = set()
    for run in sarif_runs:
        category = base = run["automationDetails"]["id"].rstrip("/")
        number = 1
        while category in seen:
            number += 1
            category = f"{base}-{number}"
        seen.add(category)
        run["automationDetails"]["id"] = f"{category}/"
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": sarif_runs}


@cache
def _gateway_version() -> str:
    try:
        return importlib.metadata.version("xployt-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree not installed
        return "0.0.0"


def _run(run: SarifRun, baseline: bool, information_uri: str) -> dict[str, Any]:
    name = _one_line(run.scanner_name, MAX_PROPERTY_CHARS) or "scanner"
    rules = _Rules()
    results = [_result(f, rules, baseline, "new") for f in run.findings]
    if baseline:
        results += [_result(f, rules, baseline, "absent") for f in run.fixed]
    return {
        "tool": {
            "driver": {
                "name": name,
                "fullName": f"{name} (through the Xployt gateway)",
                "version": _gateway_version(),
                "informationUri": information_uri,
                "rules": rules.descriptors(),
            }
        },
        "automationDetails": {"id": f"xployt/{_NOT_ID.sub('-', name)}/"},
        "results": results,
    }


class _Rules:
    """The run's rules, in the order first met; each as severe as its most severe result."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._rules: list[dict[str, Any]] = []
        self._rank: list[int] = []
        self._tags: list[dict[str, None]] = []

    def add(self, rule: str, finding: Mapping[str, Any]) -> int:
        index = self._index.get(rule)
        if index is None:
            index = self._index[rule] = len(self._rules)
            self._rules.append(_descriptor(rule, finding))
            self._rank.append(len(SEVERITY_RANK))
            self._tags.append({"security": None})
        self._rank[index] = min(self._rank[index], SEVERITY_RANK[severity(finding)])
        if (cwe := _cwe(finding)) and len(self._tags[index]) < MAX_TAGS:
            self._tags[index][f"external/cwe/cwe-{cwe}"] = None
        return index

    def descriptors(self) -> list[dict[str, Any]]:
        for rule, rank, tags in zip(self._rules, self._rank, self._tags, strict=True):
            worst = SEVERITIES[rank]
            rule["defaultConfiguration"] = {"level": LEVELS[worst]}
            rule["properties"] = {
                "security-severity": SECURITY_SEVERITY[worst],
                "tags": list(tags),
            }
        return self._rules


def _descriptor(rule: str, finding: Mapping[str, Any]) -> dict[str, Any]:
    title = _title(finding)
    description = _multiline(finding.get("description"), MAX_DESCRIPTION_CHARS)
    remediation = _multiline(finding.get("remediation"), MAX_DESCRIPTION_CHARS)
    return {
        "id": rule,
        "name": "".join(part.capitalize() for part in _NOT_ALNUM.split(rule))[:100] or "Finding",
        "shortDescription": {"text": _one_line(title, MAX_SHORT_CHARS) or UNTITLED},
        "fullDescription": {"text": description or _cut(title, MAX_DESCRIPTION_CHARS)},
        "help": {"text": remediation or description or _cut(title, MAX_DESCRIPTION_CHARS)},
    }


def _result(
    finding: Mapping[str, Any], rules: _Rules, baseline: bool, default_state: str
) -> dict[str, Any]:
    rule = rule_id(finding)
    level_of = severity(finding)
    # A lone surrogate has no UTF-8 form: it is written as "?" (%3F).
    uri = urllib.parse.quote(file_path(finding) or NO_FILE, safe="/", errors="replace")
    found = lines(finding)
    result: dict[str, Any] = {
        "ruleId": rule,
        "ruleIndex": rules.add(rule, finding),
        "level": LEVELS[level_of],
        "message": {"text": _message(finding)},
        "locations": [{"physicalLocation": _physical(uri, found, finding)}],
        "partialFingerprints": {VERSION: fingerprint(finding)},
        "properties": _properties(finding, level_of),
    }
    if len(found) > 1:
        result["relatedLocations"] = [
            {
                "id": number,
                "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": n}},
                "message": {"text": f"line {n}"},
            }
            for number, n in enumerate(found[1:], start=1)
        ]
    if baseline:
        state = finding.get("baseline_state")
        if default_state == "absent" or not isinstance(state, str) or state not in BASELINE_STATES:
            state = default_state
        result["baselineState"] = state
    return result


def _physical(uri: str, found: list[int], finding: Mapping[str, Any]) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": found[0] if found else 1}
    if found and (col := column(finding)) is not None:
        region["startColumn"] = col
    if snippet := _multiline(finding.get("code_snippet"), MAX_SNIPPET_CHARS, strip=False):
        region["snippet"] = {"text": snippet}
    return {"artifactLocation": {"uri": uri}, "region": region}


def _message(finding: Mapping[str, Any]) -> str:
    title = _title(finding)
    description = _multiline(finding.get("description"), MAX_MESSAGE_CHARS)
    if description and description != title:
        return _cut(f"{title}\n\n{description}", MAX_MESSAGE_CHARS)
    return _cut(title, MAX_MESSAGE_CHARS)


def _properties(finding: Mapping[str, Any], level_of: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "severity": level_of,
        "security-severity": SECURITY_SEVERITY[level_of],
    }
    for key in ("id", "scanner", "confidence", "cwe"):
        value = finding.get(key)
        if _finite_number(value):
            properties[key] = value
        elif found := _one_line(value, MAX_PROPERTY_CHARS):
            properties[key] = found
    reporters = finding.get("reported_by")
    if isinstance(reporters, list):
        names = [_one_line(name, MAX_PROPERTY_CHARS) for name in reporters[:MAX_REPORTERS]]
        properties["reported_by"] = [name for name in names if name]
    return properties


def _finite_number(value: object) -> bool:
    """A JSON number any reader takes: finite, and an integer within 64 bits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) < 2**63 if isinstance(value, int) else math.isfinite(value)


def _cwe(finding: Mapping[str, Any]) -> str | None:
    value = text(finding.get("cwe"))
    match = _CWE.fullmatch(value) if value else None
    return match.group(1) if match else None


def _title(finding: Mapping[str, Any]) -> str:
    return _multiline(finding.get("title"), MAX_MESSAGE_CHARS) or rule_id(finding)


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(TRUNCATED)] + TRUNCATED


def _multiline(value: object, limit: int, *, strip: bool = True) -> str | None:
    """Text that keeps its tabs and line breaks, cut at ``limit``; ``None`` when blank."""
    if not text(value):
        return None
    assert isinstance(value, str)
    cleaned = MULTILINE_CONTROLS.sub("", value[:MAX_INPUT_CHARS])
    cleaned = cleaned.strip() if strip else cleaned
    return _cut(cleaned, limit) if cleaned.strip() else None


def _one_line(value: object, limit: int) -> str | None:
    found = text(value)
    cleaned = " ".join(CONTROLS.sub(" ", found).split()) if found else ""
    return _cut(cleaned, limit) if cleaned else None
