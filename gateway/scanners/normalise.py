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
  passed through ``normalise_vulnerability`` (and bounded, see ``scanners.findings``), anything
  else is skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from gateway.config import FindingsConfig
from gateway.domain.models import Status, UpstreamUpdate
from gateway.domain.text import CONTROLS as _CONTROLS
from gateway.scanners.vulnerability import normalise_vulnerability, plain_number, text_value

__all__ = [
    "FAILURE_TEXT",
    "MAX_TEXT",
    "UpstreamFormatError",
    "normalise_update",
]

MAX_TEXT = 1000
FAILURE_TEXT = "scanner reported failure"
_DEFAULT_LIMITS = FindingsConfig()

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
    continue from it. Each finding is bounded by ``limits`` (see ``scanners.findings``). Only
    the first ``max_findings`` are normalised (the scan has room for no more); the others are
    only counted, so a message of a million findings costs no more than the room left.
    Raises ``UpstreamFormatError`` when ``raw`` is not a dict.
    """
    if not isinstance(raw, dict):
        raise UpstreamFormatError(f"upstream message is not a JSON object: {type(raw).__name__}")
    status, status_text = _status(raw.get("status"))
    text = _firsttext_value(raw, _TEXT_KEYS)
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


def _firsttext_value(raw: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        if (text := text_value(raw.get(key))) is not None:
            return _cap(text)
    return None


def _fold(word: str) -> str:
    return _STATUS_SEPARATORS.sub("", word.casefold())


_STATUS_BY_WORD = {_fold(word): status for status, words in _STATUS_WORDS.items() for word in words}


def _status(value: object) -> tuple[Status | None, str | None]:
    """The status a value names, and the text to show when the value is not one we know."""
    text = text_value(value)
    if text is None:
        return None, None
    known = _STATUS_BY_WORD.get(_fold(text))
    if known is not None:
        return known, None
    return Status.SCANNING, _cap(text)


def _percent(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return min(100, max(0, value))
    if isinstance(value, str):
        value = plain_number(value.strip().removesuffix("%").strip())
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
    if isinstance(value, dict) and (message := text_value(value.get("message"))) is not None:
        return _cap(message)
    return _cap(str(value))


def _raw_findings(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The findings of a message (objects only), so generated ids count only those, no gaps."""
    lists = (value for key in _VULNERABILITY_KEYS if isinstance(value := raw.get(key), list))
    return [item for item in next(lists, []) if isinstance(item, dict)]
