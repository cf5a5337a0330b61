"""Where a finding is and which rule it breaks, read from any mapping, however hostile.

Fingerprints and SARIF read the same things the same way: the rule id, the repository-relative
path, the lines and the column. A finding is normally what ``gateway.scanners.vulnerability``
made of a scanner's (``type``, ``file_path``, ``line``, ``related_lines``, ``column``), but
nothing here trusts that: any value of any type is read or ignored, every string is cut before
it is worked on, and a list of lines is read only as far as ``MAX_LINE_ITEMS``.

Paths are made repository-relative, as SARIF and code scanning want them: the scheme and host of
a ``file:`` URL, a drive letter and leading slashes go; backslashes become slashes; ``.`` and
``..`` are resolved within the path (a ``..`` that would climb above the root is dropped); a
web URL (a DAST finding's) becomes ``host/path`` without userinfo, query or fragment, which may
hold credentials.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from gateway.domain.models import SEVERITIES
from gateway.domain.text import CONTROLS
from gateway.scanners.lines import (
    MAX_LINE_ITEMS,
    MAX_RELATED_LINES,
    first_named,
    position,
    related_lines,
)

__all__ = [
    "MAX_INPUT_CHARS",
    "MAX_LINES",
    "MAX_LINE_ITEMS",
    "MAX_PATH_CHARS",
    "MAX_RULE_CHARS",
    "column",
    "cut_with_hash",
    "file_path",
    "first_line",
    "lines",
    "repository_path",
    "rule_id",
    "severity",
    "text",
]

# A string from a finding is read at most this far (a stored finding's fields are shorter:
# ``findings.max_field_chars``); the rest could not change what is read but would cost time.
MAX_INPUT_CHARS = 16_384
# A path or rule id longer than this is cut and ends with a hash of the whole, so that two long
# ones that differ only past the cut still differ.
MAX_PATH_CHARS = 1024
MAX_RULE_CHARS = 128
# A finding's lines: its first and at most ``MAX_RELATED_LINES`` others (``scanners.lines``).
MAX_LINES = 1 + MAX_RELATED_LINES

_FILE_KEYS = ("file_path", "file", "path", "url")
_RULE_KEYS = ("type", "rule_id", "check_id", "rule")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"[A-Za-z]:(?:/|$)")
_NOT_WORD = re.compile(r"[^0-9a-z]+")
_SEVERITY_SET = frozenset(SEVERITIES)


def text(value: object) -> str | None:
    """A string cut at ``MAX_INPUT_CHARS``, stripped; ``None`` when blank or not a string."""
    if isinstance(value, str) and (stripped := value[:MAX_INPUT_CHARS].strip()):
        return stripped
    return None


def cut_with_hash(value: str, limit: int) -> str:
    """``value`` if it fits in ``limit`` characters, else its start and a hash of the whole."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{value[: limit - 17]}~{digest}"


def rule_id(finding: Mapping[str, Any]) -> str:
    """The rule a finding breaks: its ``type`` (or a scanner's ``rule_id``/``check_id``/
    ``rule``; an integer counts), else a slug of its title, else ``finding``."""
    for key in _RULE_KEYS:
        value = finding.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if (found := text(value)) and (clean := CONTROLS.sub(" ", found).strip()):
            return cut_with_hash(" ".join(clean.split()), MAX_RULE_CHARS)
    title = text(finding.get("title"))
    slug = _NOT_WORD.sub("-", title.lower()).strip("-") if title else ""
    return cut_with_hash(slug, MAX_RULE_CHARS) if slug else "finding"


def severity(finding: Mapping[str, Any]) -> str:
    """One of ``SEVERITIES``; anything else is ``unknown``."""
    value = finding.get("severity")
    if isinstance(value, str) and (word := value.strip().lower()) in _SEVERITY_SET:
        return word
    return "unknown"


def file_path(finding: Mapping[str, Any]) -> str | None:
    """The finding's repository-relative path, or ``None`` when it names none."""
    for key in _FILE_KEYS:
        if (path := repository_path(finding.get(key))) is not None:
            return path
    return None


def repository_path(value: object) -> str | None:
    """``value`` as a path relative to the repository's root (see the module docstring)."""
    raw = text(value)
    if raw is None:
        return None
    path = _without_scheme(raw).replace("\\", "/")
    if _DRIVE.match(path):
        path = path[2:]
    segments: list[str] = []
    for segment in path.split("/"):
        segment = CONTROLS.sub("", segment).strip()
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return cut_with_hash("/".join(segments), MAX_PATH_CHARS) if segments else None


def _without_scheme(raw: str) -> str:
    is_file = raw[:5].lower() == "file:"
    if not is_file and not _URL.match(raw):
        return raw
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:  # an invalid host ("http://[::1"): read it as a path
        return raw
    path = urllib.parse.unquote(parts.path)
    if is_file:
        return path
    host = parts.hostname or ""
    if (port := _port(parts)) is not None:
        host = f"{host}:{port}"
    return f"{host}/{path}"


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:  # out of range, or not a number
        return None


def first_line(finding: Mapping[str, Any]) -> int | None:
    """The finding's line (1-based): ``line`` as a number, a string of digits or a range, or
    the first line named by the items of a list. Zero, negative, huge and unreadable values are
    left out."""
    for item in itertools.islice(_line_items(finding), MAX_LINE_ITEMS):
        line = first_named(item)
        if line is not None:
            return line
    return None


def lines(finding: Mapping[str, Any]) -> list[int]:
    """``first_line``, then the others, ascending: those of a list-valued or range ``line`` and
    of ``related_lines`` (``scanners.lines.related_lines`` reads both). Without a first line,
    the others alone."""
    first = first_line(finding)
    related_value = finding.get("related_lines")
    others = related_value if isinstance(related_value, list | tuple) else ()
    related = related_lines(itertools.chain(_line_items(finding), others), first).lines
    return related if first is None else [first, *related]


def _line_items(finding: Mapping[str, Any]) -> list[Any] | tuple[Any, ...]:
    value = finding.get("line")
    return value if isinstance(value, list | tuple) else (value,)


def column(finding: Mapping[str, Any]) -> int | None:
    """The finding's column (1-based), or ``None``."""
    value = position(finding.get("column"))
    return value if value is not None and value >= 1 else None
