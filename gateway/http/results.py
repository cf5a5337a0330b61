"""Results as a report: all of a scan's (or a collection's merged) findings, as SARIF or against
a baseline.

The JSON results are paged (``findings.page_size``, ``?cursor=``); a report is not, or not
only:

* **SARIF** is one document of all the results: a scan's is one run, a collection's one run
  per scanner. ``findings.max_per_scan`` and ``findings.max_bytes_per_scan`` bound what a scan
  holds (a collection's merged findings are at most its scans' together), and every SARIF
  result is bounded by its finding's size and a constant (``gateway.report.sarif`` cuts each
  text), so the document is bounded too. ``limit`` and ``cursor`` page JSON only: with SARIF
  they are 400.
* **Against a baseline**, every finding of both is read and compared by fingerprint; the
  pages then run over the findings (``vulnerabilities``, each with ``fingerprint`` and
  ``baseline_state``) and, after them, the baseline's fixed ones (``fixed``), with
  ``next_cursor`` as usual; a page holds one or the other, within ``limit`` and
  ``findings.max_page_bytes``. ``baseline`` counts new, unchanged and fixed over all of them.

Building one takes CPU seconds and 100+ MiB at the bounds: at most ``limits.max_report_builds``
are built at once (``report_build``), the next is 429.

Every read goes through the store's pages (``findings.max_page_bytes`` each).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from gateway.config import FindingsConfig, LimitsConfig
from gateway.domain.collections import CollectionRecord
from gateway.domain.errors import BadRequest, LimitExceeded
from gateway.domain.models import FindingsPage, ScanRecord
from gateway.http.schemas import BaselineCounts, Results, SeveritySummary
from gateway.http.validation import parse_cursor, parse_limit
from gateway.report.sarif import SarifRun, to_sarif
from gateway.scanners.findings import encoded_size

__all__ = [
    "BaselinePage",
    "FindingsPages",
    "baseline_page",
    "baseline_results",
    "collection_sarif",
    "page_length",
    "page_request",
    "report_build",
    "results_page",
    "scan_sarif",
    "unpaged",
    "whole_results",
]


class FindingsPages(Protocol):
    """Where findings are read a page at a time: the scan store, or the collection store (a
    collection's merged findings)."""

    async def findings_page(
        self, results_id: str, /, *, start: int, limit: int, max_bytes: int | None = None
    ) -> FindingsPage: ...


async def whole_results(
    source: FindingsPages, results_id: str, bounds: FindingsConfig
) -> FindingsPage:
    """Every finding kept, read page by page, with its summary and dropped count."""
    found: list[dict[str, Any]] = []
    while True:
        page = await source.findings_page(
            results_id,
            start=len(found),
            limit=bounds.max_page_size,
            max_bytes=bounds.max_page_bytes,
        )
        found += page.vulnerabilities
        if not page.vulnerabilities or len(found) >= page.total:
            return FindingsPage(found, page.summary, page.dropped)


def page_request(query: Mapping[str, str], bounds: FindingsConfig) -> tuple[int, int]:
    """(start, limit) of the page ``?cursor=`` and ``?limit=`` ask for (400 past the bounds)."""
    limit = parse_limit(query.get("limit"), default=bounds.page_size, maximum=bounds.max_page_size)
    return parse_cursor(query.get("cursor")), limit


async def results_page(
    source: FindingsPages, results_id: str, query: Mapping[str, str], bounds: FindingsConfig
) -> tuple[FindingsPage, str | None]:
    """The page of findings ``query`` asks for, and the cursor of the next (None: the last);
    a cursor past the end is 400."""
    start, limit = page_request(query, bounds)
    page = await source.findings_page(
        results_id, start=start, limit=limit, max_bytes=bounds.max_page_bytes
    )
    if start > page.total:
        raise BadRequest(
            f"query parameter 'cursor' is past the end of the results ({page.total} findings); "
            "pass the next_cursor of the page before"
        )
    end = start + len(page.vulnerabilities)
    return page, str(end) if end < page.total else None


def unpaged(query: Mapping[str, str], what: str) -> None:
    """400 when a SARIF report is asked for a page (``limit``, ``cursor``)."""
    if "limit" in query or "cursor" in query:
        raise BadRequest(
            "query parameters 'limit' and 'cursor' page the JSON results; "
            f"a SARIF report is one document of the whole {what}"
        )


@contextlib.asynccontextmanager
async def report_build(builds: asyncio.Semaphore, limits: LimitsConfig) -> AsyncIterator[None]:
    """Hold one of the ``limits.max_report_builds`` places while a report is built; 429 (with
    ``Retry-After``) when none is free, rather than queue work of that size."""
    if builds.locked():
        raise LimitExceeded(
            f"the gateway is building its maximum of {limits.max_report_builds} reports (SARIF "
            "or against a baseline) at once; try again shortly, or read the JSON results",
            retry_after=limits.retry_after_seconds,
        )
    async with builds:
        yield


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


def collection_sarif(
    record: CollectionRecord,
    findings: Sequence[Mapping[str, Any]],
    fixed: Sequence[Mapping[str, Any]] = (),
    *,
    baseline: bool,
    information_uri: str,
) -> dict[str, Any]:
    """The SARIF log of a collection: one run per scanner, in the collection's order, each
    with the merged findings that scanner reported (``reported_by``): a finding two scanners
    reported alike is a result of both runs, with the same fingerprint. A fixed finding goes
    to the runs of the scanners that reported it in the baseline; one of a scanner the
    collection did not run gets a run of its own (after the others)."""
    names = list(record.scanners)
    names += sorted({name for finding in fixed for name in _reporters(finding)} - set(names))
    runs = [
        SarifRun(
            name,
            [finding for finding in findings if name in _reporters(finding)],
            [finding for finding in fixed if name in _reporters(finding)],
        )
        for name in names
    ]
    return to_sarif(runs, baseline=baseline, information_uri=information_uri)


def _reporters(finding: Mapping[str, Any]) -> list[str]:
    reporters = finding.get("reported_by")
    return (
        [name for name in reporters if isinstance(name, str)] if isinstance(reporters, list) else []
    )


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


@dataclass(frozen=True, slots=True)
class BaselinePage:
    """One page of results against a baseline, and the counts over all of them."""

    vulnerabilities: list[dict[str, Any]]
    fixed: list[dict[str, Any]]
    next_cursor: str | None
    new: int
    unchanged: int
    fixed_total: int


def baseline_page(
    compared: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    *,
    start: int,
    limit: int,
    max_bytes: int,
) -> BaselinePage:
    """The page from ``start`` of the findings marked against the baseline, then of the fixed
    ones (see the module docstring)."""
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
    return BaselinePage(
        vulnerabilities=page,
        fixed=fixed_page,
        next_cursor=str(end) if end < everything else None,
        new=new,
        unchanged=len(marked) - new,
        fixed_total=len(fixed),
    )


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
    """A scan's results page against a baseline scan (``baseline_page``)."""
    page = baseline_page(compared, start=start, limit=limit, max_bytes=max_bytes)
    return Results(
        scan_id=scan.scan_id,
        scanner_name=scan.scanner_name,
        repository_name=scan.repository_name,
        status="completed",
        vulnerabilities=page.vulnerabilities,
        summary=msgspec.convert(current.summary, SeveritySummary),
        total_findings=current.total,
        findings_dropped=current.dropped,
        truncated=current.dropped > 0,
        next_cursor=page.next_cursor,
        baseline=BaselineCounts(
            scan_id=base.scan_id, new=page.new, unchanged=page.unchanged, fixed=page.fixed_total
        ),
        fixed=page.fixed,
    )
