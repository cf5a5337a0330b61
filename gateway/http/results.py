"""A completed scan's results as a report: all of its findings, as SARIF or against a baseline.

The JSON results are paged (``findings.page_size``, ``?cursor=``); a report is not, or not
only:

* **SARIF** is one document of the whole scan. ``findings.max_per_scan`` and
  ``findings.max_bytes_per_scan`` bound what a scan holds, and every SARIF result is bounded by
  its finding's size and a constant (``gateway.report.sarif`` cuts each text), so the document
  is bounded too. ``limit`` and ``cursor`` page JSON only: with SARIF they are 400.
* **Against a baseline**, every finding of both scans is read and compared by fingerprint; the
  pages then run over the scan's findings (``vulnerabilities``, each with ``fingerprint`` and
  ``baseline_state``) and, after them, the baseline's fixed ones (``fixed``), with
  ``next_cursor`` as usual; a page holds one or the other, within ``limit`` and
  ``findings.max_page_bytes``. ``baseline`` counts new, unchanged and fixed over all of them.

Every read goes through the store's pages (``findings.max_page_bytes`` each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from gateway.config import FindingsConfig
from gateway.domain.errors import BadRequest
from gateway.domain.models import FindingsPage, ScanRecord
from gateway.engine.store import Store
from gateway.http.schemas import BaselineCounts, Results, SeveritySummary
from gateway.report.sarif import SarifRun, to_sarif
from gateway.scanners.findings import encoded_size

__all__ = ["baseline_results", "page_length", "scan_sarif", "whole_scan"]


async def whole_scan(store: Store, scan_id: str, bounds: FindingsConfig) -> FindingsPage:
    """Every finding the scan kept, read page by page, with its summary and dropped count."""
    found: list[dict[str, Any]] = []
    while True:
        page = await store.findings_page(
            scan_id, start=len(found), limit=bounds.max_page_size, max_bytes=bounds.max_page_bytes
        )
        found += page.vulnerabilities
        if not page.vulnerabilities or len(found) >= page.total:
            return FindingsPage(found, page.summary, page.dropped)


def scan_sarif(
    scan: ScanRecord,
    findings: Sequence[Mapping[str, Any]],
    fixed: Sequence[Mapping[str, Any]] = (),
    *,
    baseline: bool,
    information_uri: str,
) -> dict[str, Any]:
    """The SARIF log of one scan: one run, its scanner's."""
    run = SarifRun(scan.scanner_name, findings, fixed)
    return to_sarif([run], baseline=baseline, information_uri=information_uri)


def page_length(items: Sequence[Any], start: int, *, limit: int, max_bytes: int) -> int:
    """How many of ``items`` from ``start`` make a page: at most ``limit``, and no more than
    fit in ``max_bytes`` of JSON (at least one, as the store's pages)."""
    size = 0
    count = 0
    for item in items[start : start + limit]:
        size += encoded_size(item)
        if count and size > max_bytes:
            break
        count += 1
    return count


def baseline_results(
    scan: ScanRecord,
    current: FindingsPage,
    base: ScanRecord,
    compared: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    *,
    start: int,
    limit: int,
    max_bytes: int,
) -> Results:
    """The page from ``start`` of the scan's findings marked against the baseline's, then of
    the fixed ones (see the module docstring)."""
    marked, fixed = compared
    everything = len(marked) + len(fixed)
    if start > everything:
        raise BadRequest(
            f"query parameter 'cursor' is past the end of the results ({len(marked)} findings "
            f"and {len(fixed)} fixed); pass the next_cursor of the page before"
        )
    if start < len(marked):
        count = page_length(marked, start, limit=limit, max_bytes=max_bytes)
        page, fixed_page = marked[start : start + count], []
    else:
        count = page_length(fixed, start - len(marked), limit=limit, max_bytes=max_bytes)
        page, fixed_page = [], fixed[start - len(marked) : start - len(marked) + count]
    end = start + count
    new = sum(1 for finding in marked if finding["baseline_state"] == "new")
    return Results(
        scan_id=scan.scan_id,
        scanner_name=scan.scanner_name,
        repository_name=scan.repository_name,
        status="completed",
        vulnerabilities=page,
        summary=msgspec.convert(current.summary, SeveritySummary),
        total_findings=current.total,
        findings_dropped=current.dropped,
        truncated=current.dropped > 0,
        next_cursor=str(end) if end < everything else None,
        baseline=BaselineCounts(
            scan_id=base.scan_id, new=new, unchanged=len(marked) - new, fixed=len(fixed)
        ),
        fixed=fixed_page,
    )
