"""Turning scanner progress messages into ``UpstreamUpdate`` values and findings into one shape.

Scanners stream JSON objects that agree on little; this module reads them leniently:

* **text** -- the first non-blank string of ``progress_text``, ``message``, ``text``,
  ``detail``; stripped and capped at ``MAX_TEXT`` characters.
* **progress** -- ``progress_percent`` or ``progress``: an int, a float or a numeric string
  (``"45"``, ``"45.5"``, ``"45%"``), clamped to 0..100 and rounded down. Bools, NaN, infinities
  and anything else are ignored. We do not guess fractions: ``0.45`` means 0 percent, not 45.
* **status** -- matched case-insensitively with ``-``, ``_`` and spaces removed, through a table
  of synonyms. An unknown status counts as ``scanning`` and its text becomes the progress text
  when the message gave none.
* **error** -- a non-empty ``error`` field fails the update whatever the status says. The error
  text is the field's text, else the progress text, else ``FAILURE_TEXT``.
* **completed** -- forces the progress to 100.
* **vulnerabilities** -- ``vulnerabilities`` or ``findings``, when a list; every object in it is
  passed through ``normalise_vulnerability`` (and bounded, see ``gateway.findings``), anything
  else is skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from gateway.config import FindingsConfig
from gateway.findings import bound_finding
from gateway.models import SEVERITIES, Status, UpstreamUpdate
from gateway.text import CONTROLS as _CONTROLS

__all__ = [
    "FAILURE_TEXT",
    "MAX_TEXT",
    "UNTITLED",
    "UpstreamFormatError",
    "normalise_update",
    "normalise_vulnerability",
    "severity_summary",
]

MAX_TEXT = 1000
FAILURE_TEXT = "scanner reported failure"
UNTITLED = "Untitled finding"

T = TypeVar("T")

_TEXT_KEYS = ("progress_text", "message", "text", "detail")
_PROGRESS_KEYS = ("progress_percent", "progress")
_VULNERABILITY_KEYS = ("vulnerabilities", "findings")
_KNOWN_KEYS = frozenset(
    {"status", "error", "scan_id", *_TEXT_KEYS, *_PROGRESS_KEYS, *_VULNERABILITY_KEYS}
)
# ``extra`` carries a message's other scalar fields (scanner-specific details, timestamps) to
# clients, within these bounds.
MAX_EXTRA_FIELDS = 16
MAX_EXTRA_KEY = 64
MAX_EXTRA_TEXT = 256
_DESCRIPTION_KEYS = ("description", "details", "message")

# Lines, columns and CWE numbers beyond these are not positions or weaknesses but noise; a
# string of digits is not even handed to int() past _MAX_DIGITS (int() refuses 4300 digits).
MAX_POSITION = 2**31 - 1
MAX_CWE = 10**6
_MAX_DIGITS = 24
_DEFAULT_LIMITS = FindingsConfig()

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_CWE = re.compile(r"(?:cwe-)?(\d+)", re.ASCII | re.IGNORECASE)
_STATUS_SEPARATORS = re.compile(r"[-_\s]+")

_STATUS_WORDS: dict[Status, tuple[str, ...]] = {
    Status.COMPLETED: ("complete", "completed", "done", "finished", "success", "succeeded"),
    Status.FAILED: ("failed", "failure", "error", "errored"),
    Status.INITIALIZING: (
        "setting up",
        "setup",
        "initializing",
        "initialising",
        "init",
        "starting",
        "started",
        "queued",
        "pending",
    ),
    Status.CLONING: ("cloning", "clone", "fetching"),
    Status.ANALYZING: ("analyzing", "analysing", "analysis"),
    Status.SCANNING: ("scanning", "running", "in progress", "in_progress"),
    Status.PROCESSING: ("processing", "postprocessing"),
    Status.SAVING: ("saving", "uploading", "reporting"),
}

_SEVERITY_WORDS: dict[str, str] = {
    **{level: level for level in SEVERITIES},
    "crit": "critical",
    "moderate": "medium",
    "warning": "medium",
    "med": "medium",
    "informational": "info",
    "information": "info",
    "note": "info",
    "none": "info",
    "error": "high",
}


class UpstreamFormatError(ValueError):
    """An upstream message is not a JSON object."""


# --------------------------------------------------------------------------- updates


def normalise_update(
    raw: object,
    *,
    scanner: str,
    start_index: int = 0,
    limits: FindingsConfig = _DEFAULT_LIMITS,
    max_findings: int | None = None,
) -> UpstreamUpdate:
    """One upstream message as an ``UpstreamUpdate``; ``None`` fields were not said.

    ``start_index`` is the number of findings already seen on this scan: generated finding ids
    continue from it. Each finding is bounded by ``limits`` (see ``gateway.findings``). Only
    the first ``max_findings`` are normalised (the scan has room for no more); the others are
    only counted, so a message of a million findings costs no more than the room left.
    Raises ``UpstreamFormatError`` when ``raw`` is not a dict.
    """
    if not isinstance(raw, dict):
        raise UpstreamFormatError(f"upstream message is not a JSON object: {type(raw).__name__}")
    status, status_text = _status(raw.get("status"))
    text = _first_text(raw, _TEXT_KEYS)
    if text is None:
        text = status_text
    progress = _progress(raw)
    error = _error(raw.get("error"))
    if error is not None or status is Status.FAILED:
        status = Status.FAILED
        error = error or text or FAILURE_TEXT
    elif status is Status.COMPLETED:
        progress = 100
    found = _raw_findings(raw)
    room = len(found) if max_findings is None else max(0, max_findings)
    vulnerabilities = tuple(
        normalise_vulnerability(item, scanner=scanner, index=start_index + i, limits=limits)
        for i, item in enumerate(found[:room])
    )
    over = len(found) - len(vulnerabilities)
    return UpstreamUpdate(status, progress, text, error, vulnerabilities, _extra(raw), over)


def _extra(raw: Mapping[str, Any]) -> tuple[tuple[str, object], ...]:
    """The message's unknown scalar fields, bounded in number and size; nested values are
    left out (findings have their own schema)."""
    kept: list[tuple[str, object]] = []
    for key, value in raw.items():
        if key in _KNOWN_KEYS or len(key) > MAX_EXTRA_KEY or len(kept) == MAX_EXTRA_FIELDS:
            continue
        if _CONTROLS.search(key):
            continue  # a key is shown as given: one with control characters is left out
        if isinstance(value, str):
            kept.append((key, _CONTROLS.sub(" ", value)[:MAX_EXTRA_TEXT]))
        elif value is None or isinstance(value, bool | int | float):
            if isinstance(value, float) and not math.isfinite(value):
                continue
            kept.append((key, value))
    return tuple(kept)


def _cap(text: str) -> str:
    """Status text as clients show it: one line, no control characters, bounded."""
    return _CONTROLS.sub(" ", text).strip()[:MAX_TEXT]


def _text(value: object) -> str | None:
    """A string stripped of surrounding whitespace, or ``None`` when blank or not a string."""
    if isinstance(value, str) and (stripped := value.strip()):
        return stripped
    return None


def _first_text(raw: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        if (text := _text(raw.get(key))) is not None:
            return _cap(text)
    return None


def _fold(word: str) -> str:
    return _STATUS_SEPARATORS.sub("", word.casefold())


_STATUS_BY_WORD = {_fold(word): status for status, words in _STATUS_WORDS.items() for word in words}


def _status(value: object) -> tuple[Status | None, str | None]:
    """The status a value names, and the text to show when the value is not one we know."""
    text = _text(value)
    if text is None:
        return None, None
    known = _STATUS_BY_WORD.get(_fold(text))
    if known is not None:
        return known, None
    return Status.SCANNING, _cap(text)


def _number(text: str) -> float | None:
    """A plain decimal number (no exponent, no ``nan``/``inf``), or ``None``."""
    return float(text) if _NUMBER.fullmatch(text) else None


def _percent(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return min(100, max(0, value))
    if isinstance(value, str):
        value = _number(value.strip().removesuffix("%").strip())
    if isinstance(value, float) and math.isfinite(value):
        return int(min(100.0, max(0.0, value)))
    return None


def _progress(raw: Mapping[str, Any]) -> int | None:
    for key in _PROGRESS_KEYS:
        if (percent := _percent(raw.get(key))) is not None:
            return percent
    return None


def _error(value: object) -> str | None:
    """The text of an ``error`` field: ``None`` for no error, ``""`` for an error without text.

    Falsy values (null, false, 0, blank strings, empty containers) are no error; ``true`` is an
    error that says nothing else.
    """
    if value is True:
        return ""
    if not value:
        return None
    if isinstance(value, str):
        return _cap(value.strip()) or None
    if isinstance(value, dict) and (message := _text(value.get("message"))) is not None:
        return _cap(message)
    return _cap(str(value))


def _raw_findings(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The findings of a message (objects only), so generated ids count only those, no gaps."""
    lists = (value for key in _VULNERABILITY_KEYS if isinstance(value := raw.get(key), list))
    return [item for item in next(lists, []) if isinstance(item, dict)]


# --------------------------------------------------------------------------- findings


class _Reader:
    """Reads a raw finding, remembering which keys (and ``location`` keys) supplied a value."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.used: set[str] = set()
        location = raw.get("location")
        self.location: Mapping[str, Any] = location if isinstance(location, dict) else {}
        self.location_used: set[str] = set()

    def first(self, keys: Iterable[str], convert: Callable[[Any], T | None]) -> T | None:
        return _take(self.raw, keys, convert, self.used)

    def in_location(self, keys: Iterable[str], convert: Callable[[Any], T | None]) -> T | None:
        return _take(self.location, keys, convert, self.location_used)

    def rest(self) -> dict[str, Any]:
        """Every key that supplied nothing; ``location`` keeps only its unused keys."""
        rest = {key: value for key, value in self.raw.items() if key not in self.used}
        if self.location_used:
            left = {k: v for k, v in self.location.items() if k not in self.location_used}
            if left:
                rest["location"] = left
            else:
                del rest["location"]
        return rest


def _take(
    source: Mapping[str, Any],
    keys: Iterable[str],
    convert: Callable[[Any], T | None],
    used: set[str],
) -> T | None:
    """The first key whose value converts, marked as used."""
    for key in keys:
        if key in source and (value := convert(source[key])) is not None:
            used.add(key)
            return value
    return None


def normalise_vulnerability(
    raw: Mapping[str, Any],
    *,
    scanner: str,
    index: int,
    limits: FindingsConfig = _DEFAULT_LIMITS,
) -> dict[str, Any]:
    """One finding in the gateway's shape; keys that supplied no field go to ``metadata``.

    ``index`` is the finding's 0-based position on the scan, used for an id when it has none.
    Text fields and ``metadata`` are bounded by ``limits``; a finding cut names what was cut in
    ``truncated_fields``.
    """
    read = _Reader(raw)
    found_id = read.first(("id", "vulnerability_id", "fingerprint"), _identifier)
    kind = read.first(
        ("type", "vulnerability_type", "category", "rule_id", "check_id", "secret_type", "rule"),
        _text,
    )
    severity = read.first(("severity",), _severity)
    # A secret scanner's ``secret_type`` ("RSA Private Key") reads better than its rule id.
    title = read.first(("title", "name", "message", "summary", "secret_type"), _text)
    # ``message`` describes the finding only when it did not already title it.
    description_keys = [key for key in _DESCRIPTION_KEYS if key not in read.used]
    finding = {
        "id": found_id or f"{scanner}-{index + 1}",
        "scanner": scanner,
        "type": kind,
        "severity": severity or "unknown",
        "title": title or kind or UNTITLED,
        "description": read.first(description_keys, _text),
        "file_path": _file_path(read),
        "line": _line(read),
        "column": read.first(("column", "col", "start_column"), _position),
        "code_snippet": read.first(("code_snippet", "snippet", "code", "evidence"), _snippet),
        "confidence": read.first(("confidence",), _confidence),
        "remediation": read.first(("remediation", "fix", "recommendation", "solution"), _text),
        "cwe": read.first(("cwe", "cwe_id"), _cwe),
        "metadata": read.rest(),
    }
    return bound_finding(finding, limits)


def _file_path(read: _Reader) -> str | None:
    return (
        read.first(("file_path", "file", "path", "filename"), _text)
        or read.in_location(("path", "file"), _text)
        or read.first(("url",), _text)
    )


def _line(read: _Reader) -> int | None:
    line = read.first(("line", "line_number", "start_line"), _position)
    return line if line is not None else read.in_location(("line",), _position)


def _identifier(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _snippet(value: object) -> str | None:
    """Code kept exactly as given (indentation matters), unless blank."""
    return value if isinstance(value, str) and value.strip() else None


def _confidence(value: object) -> str | int | float | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # not JSON: left to metadata, where bounding drops it
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return None


def _first_item(value: object) -> object:
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _position(value: object) -> int | None:
    """A line or column: a non-negative int, an integral float or an integer string."""
    value = _first_item(value)
    if isinstance(value, str) and len(value) <= _MAX_DIGITS and _INTEGER.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_POSITION:
        return value
    return None


def _cwe(value: object) -> str | None:
    """``"CWE-<n>"`` from ``89``, ``"89"``, ``"CWE-89"`` or ``"cwe-89"`` (or a list of them)."""
    value = _first_item(value)
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (
        isinstance(value, str)
        and len(value) <= _MAX_DIGITS
        and (m := _CWE.fullmatch(value.strip()))
    ):
        number = int(m.group(1))
    return f"CWE-{number}" if number is not None and 0 < number <= MAX_CWE else None


def _severity(value: object) -> str | None:
    """One of ``SEVERITIES`` from a word or a CVSS-like score, or ``None`` when unrecognised."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _SEVERITY_WORDS:
            return _SEVERITY_WORDS[word]
        value = _number(word)
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return _score_severity(value)
    return None


def _score_severity(score: float) -> str:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "info"


def severity_summary(vulns: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many findings have each severity, every one of ``SEVERITIES`` present in order."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for vuln in vulns:
        counts[_severity(vuln.get("severity")) or "unknown"] += 1
    return counts
