"""Placeholder of ``report.fingerprint`` (the agreed interface, /work/wt/notes/REPORT-API.md);
the wt-report branch replaces it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from gateway.domain.models import compact_json

__all__ = ["fingerprint"]


def fingerprint(finding: Mapping[str, Any]) -> str:
    """A stable id from what identifies a finding, not from the scanner that reported it."""
    text = " ".join(
        " ".join(str(finding.get(k) or "").split()) for k in ("code_snippet", "description")
    )
    key = [finding.get("type") or finding.get("id"), finding.get("file_path"), finding.get("line")]
    digest = hashlib.sha256(compact_json([*key, text]).encode()).hexdigest()
    return digest[:32]
