"""A finding's stable fingerprint: the same finding in the same code, the same fingerprint.

It is made of what identifies a finding and nothing that changes from run to run or scanner to
scanner: the rule (``location.rule_id``), the repository-relative path, the first line
(``location.first_line``), and a hash of the code snippet (each line stripped, blank lines and
runs of spaces dropped, so re-indenting does not change it) or, without one, of the
description (spaces collapsed, case folded). Not the scanner's name, so two scanners that
report a finding alike give it the same fingerprint; not its id, severity, confidence or
metadata, which scanners word differently; not its other lines (``related_lines``), which one
scanner may list more of than another, and which would change every list-valued finding's
fingerprint from what it was before they were kept.

The fingerprint is 32 hex digits (128 bits of SHA-256). ``VERSION`` is hashed in: a change to
what goes in is a new version, so that fingerprints of different versions never match by chance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from gateway.report.location import file_path, first_line, rule_id, text

__all__ = ["VERSION", "fingerprint"]

VERSION = "xployt/v1"
_SEPARATOR = "\x1f"  # no part holds it: each is cleaned of control characters or is hex


def fingerprint(finding: Mapping[str, Any]) -> str:
    """The finding's fingerprint (32 lowercase hex digits)."""
    line = first_line(finding)
    parts = (
        VERSION,
        rule_id(finding),
        file_path(finding) or "",
        "" if line is None else str(line),
        _content_hash(finding),
    )
    joined = _SEPARATOR.join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()[:32]


def _content_hash(finding: Mapping[str, Any]) -> str:
    snippet = text(finding.get("code_snippet"))
    if snippet is not None:
        code = "\n".join(" ".join(line.split()) for line in snippet.splitlines() if line.strip())
        content = f"code:{code}"
    elif (description := text(finding.get("description"))) is not None:
        content = f"text:{' '.join(description.split()).casefold()}"
    else:
        return ""
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
