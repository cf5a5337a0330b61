"""Bounds on findings: the size of one finding, and what one scan may keep.

A scanner decides how many findings it sends and how big they are; the gateway decides what it
keeps (``findings`` in the config):

* **one finding** (``bound_finding``) -- each text field without control characters but tabs
  and line breaks (``gateway.domain.text``), and at most ``max_field_chars``
  characters; a longer one is cut and ends with ``TRUNCATED``. ``metadata`` nests at most
  ``max_metadata_depth`` containers (a deeper value becomes ``TRUNCATED``), its strings and
  keys are cut like text fields, and its keys are kept in order while its JSON stays within
  ``max_metadata_bytes`` (the others are left out). A finding that lost anything names the
  fields in ``truncated_fields``.
* **one scan** (``FindingsBudget``) -- the first findings are kept while they number at most
  ``max_per_scan`` and their JSON takes at most ``max_bytes_per_scan`` bytes; from the first
  that does not fit, every later one is dropped and counted. The results say how many.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.config import FindingsConfig
from gateway.domain.models import compact_json
from gateway.domain.text import MULTILINE_CONTROLS

__all__ = ["TEXT_FIELDS", "TRUNCATED", "FindingsBudget", "bound_finding", "encoded_size"]

TRUNCATED = "… [truncated]"
# The fields of a normalised finding that hold free text from the scanner.
TEXT_FIELDS = (
    "id",
    "type",
    "title",
    "description",
    "file_path",
    "code_snippet",
    "confidence",
    "remediation",
)


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as stored: compact JSON in UTF-8 (a lone surrogate counted as 3)."""
    return len(compact_json(value).encode("utf-8", "surrogatepass"))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def bound_finding(finding: Mapping[str, Any], limits: FindingsConfig) -> dict[str, Any]:
    """``finding`` (normalised) within the limits of one finding."""
    bounded = dict(finding)
    cut: list[str] = []
    for name in TEXT_FIELDS:
        value = bounded.get(name)
        if isinstance(value, str):
            # Tabs and line breaks stay (code, descriptions); ESC, NUL and bidi controls go.
            value = bounded[name] = MULTILINE_CONTROLS.sub("", value)
        if isinstance(value, str) and len(value) > limits.max_field_chars:
            bounded[name] = _cut(value, limits.max_field_chars)
            cut.append(name)
    metadata = bounded.get("metadata")
    if isinstance(metadata, dict):
        trimmed, metadata_cut = _bound_metadata(metadata, limits)
        bounded["metadata"] = trimmed
        if metadata_cut:
            cut.append("metadata")
    if cut:
        bounded["truncated_fields"] = cut
    return bounded


def _bound_metadata(
    metadata: dict[str, Any], limits: FindingsConfig
) -> tuple[dict[str, Any], bool]:
    cut = [False]
    shaped = _bound_value(metadata, limits.max_metadata_depth, limits.max_field_chars, cut)
    assert isinstance(shaped, dict)
    if encoded_size(shaped) <= limits.max_metadata_bytes:
        return shaped, cut[0]
    kept: dict[str, Any] = {}
    size = 2  # the braces
    for key, value in shaped.items():
        item = encoded_size({key: value}) - 2 + (1 if kept else 0)  # and a comma
        if size + item <= limits.max_metadata_bytes:
            kept[key] = value
            size += item
    return kept, True


def _bound_value(value: Any, levels: int, chars: int, cut: list[bool]) -> Any:
    """``value`` with strings cut at ``chars`` and containers below ``levels`` replaced."""
    if isinstance(value, str):
        if len(value) > chars:
            cut[0] = True
            return _cut(value, chars)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity; the scanner edge refuses them already
    if isinstance(value, dict | list):
        if levels <= 0:
            cut[0] = True
            return TRUNCATED
        if isinstance(value, list):
            return [_bound_value(item, levels - 1, chars, cut) for item in value]
        return {
            _bound_value(str(key), 1, chars, cut): _bound_value(item, levels - 1, chars, cut)
            for key, item in value.items()
        }
    return value


class FindingsBudget:
    """The findings one scan keeps: the first ones within the count and byte bounds."""

    def __init__(self, limits: FindingsConfig) -> None:
        self._limits = limits
        self.kept: list[dict[str, Any]] = []
        self.bytes = 0
        self.dropped = 0

    @property
    def room(self) -> int:
        """How many more findings could be kept (by count; bytes are checked as they come)."""
        return 0 if self.dropped else self._limits.max_per_scan - len(self.kept)

    def drop(self, count: int) -> None:
        """Count findings that were never normalised because there was no room for them."""
        self.dropped += count

    def add(self, findings: Iterable[dict[str, Any]]) -> None:
        for finding in findings:
            size = encoded_size(finding)
            if (
                self.dropped
                or len(self.kept) >= self._limits.max_per_scan
                or self.bytes + size > self._limits.max_bytes_per_scan
            ):
                self.dropped += 1
                continue
            self.kept.append(finding)
            self.bytes += size
