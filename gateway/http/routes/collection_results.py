"""An ended collection's results: its merged findings a page at a time, as SARIF (one run per
scanner), or against a baseline (an earlier collection or scan the caller can see), read as a
scan's are (``report_query``, ``results``)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from aiohttp import web

from gateway.domain.collections import CollectionRecord, MergedSummary
from gateway.domain.errors import CollectionNotFound, NotFound, ScanNotFound, ScanNotReady
from gateway.http.access import visible_collection, visible_scan
from gateway.http.appkeys import COLLECTIONS, CONFIG, REPORT_BUILDS, STORE
from gateway.http.collection_schemas import CollectionBaseline, CollectionResults, ScanOutcome
from gateway.http.operations import Permission, enveloped, operation
from gateway.http.report_query import (
    BASELINE,
    FORMAT,
    NOT_ACCEPTABLE,
    SARIF_LOG,
    SARIF_MEDIA_TYPE,
    ReportQuery,
    information_uri,
    report_query,
    sarif_response,
)
from gateway.http.responses import ok
from gateway.http.results import (
    baseline_page,
    collection_sarif,
    page_request,
    report_build,
    results_page,
    unpaged,
    whole_results,
)
from gateway.http.routes.collections import (
    COLLECTION_ID,
    COLLECTIONS_API,
    children,
)
from gateway.http.routes.scans import CURSOR, RESULTS_LIMIT, has_results
from gateway.report.baseline import compare

__all__ = ["routes"]

routes = web.RouteTableDef()

Findings = list[dict[str, Any]]


@routes.get(COLLECTIONS_API + "/{collection_id}/results")
@operation(
    "getCollectionResults",
    "Read an ended collection's merged findings",
    "collections",
    {
        200: enveloped(
            CollectionResults,
            "A page of the merged findings; or, asked for SARIF, the SARIF log of all of them "
            "(one run per scanner).",
            also={SARIF_MEDIA_TYPE: SARIF_LOG},
        )
    },
    errors=(
        400,
        401,
        403,
        (
            404,
            "No such collection, or one of another subject without `scans:admin` "
            "(`collection_not_found`); or a `baseline` that is no collection or scan the "
            "caller can see (`not_found`).",
        ),
        NOT_ACCEPTABLE,
        (
            409,
            "The collection (or the baseline) has not ended, or the baseline scan has no "
            "results (`scan_not_ready`).",
        ),
        429,
        503,
    ),
    description=(
        "Served whatever way the collection ended: a failed scan never hides the others' "
        "findings. One finding per fingerprint, each with `reported_by` (the scanners that "
        "reported it alike). Pages as a scan's results. "
        f"`Accept: {SARIF_MEDIA_TYPE}` or `?format=sarif` answers with SARIF 2.1.0 instead: "
        "one document, one run per scanner holding the findings it reported (no `limit` or "
        "`cursor`: 400). `?baseline=` names an earlier collection or scan of the caller's: "
        "the pages run over the findings (each with `baseline_state`), then over the "
        "baseline's fixed ones (`fixed`), and `baseline` counts them all. At most "
        "`limits.max_report_builds` ({config.limits.max_report_builds}) SARIF or baseline "
        "reports are built at once; past it, 429 with `Retry-After`."
    ),
    params=(COLLECTION_ID, RESULTS_LIMIT, CURSOR, FORMAT, BASELINE),
    permission=Permission.READ,
)
async def collection_results(request: web.Request) -> web.Response:
    record = await visible_collection(request, Permission.READ, "reading results")
    query = report_query(request)
    _ended(record, "scan collection")
    if query.sarif or query.baseline is not None:
        if query.sarif:
            unpaged(request.query, "collection")
        async with report_build(request.app[REPORT_BUILDS], request.app[CONFIG].limits):
            return await _report(request, record, query)
    page, next_cursor = await results_page(
        request.app[COLLECTIONS], record.collection_id, request.query, request.app[CONFIG].findings
    )
    return ok(
        await _results(
            request, record, page.vulnerabilities, total=page.total, next_cursor=next_cursor
        )
    )


def _ended(record: CollectionRecord, what: str) -> None:
    """409 until the collection has ended (its merged findings are stored with its end)."""
    if not record.terminal or record.summary is None:
        raise ScanNotReady(
            f"{what} is still {record.status.value} ({record.progress_percent}%); "
            "results are available once every scan has ended"
        )


async def _results(
    request: web.Request,
    record: CollectionRecord,
    findings: Findings,
    *,
    total: int,
    next_cursor: str | None,
    **baseline: Any,
) -> CollectionResults:
    assert record.summary is not None  # ended
    return CollectionResults(
        collection_id=record.collection_id,
        repository_name=record.repository_name,
        status=record.status,
        vulnerabilities=findings,
        summary=msgspec.convert(record.summary, MergedSummary),
        total_findings=total,
        scans=await _outcomes(request, record),
        next_cursor=next_cursor,
        **baseline,
    )


async def _outcomes(request: web.Request, record: CollectionRecord) -> list[ScanOutcome]:
    store = request.app[STORE]
    outcomes = []
    for scan in await children(request, record):
        kept = await store.findings_page(scan.scan_id, start=0, limit=1, max_bytes=1)
        outcomes.append(
            ScanOutcome(
                scan_id=scan.scan_id,
                scanner_name=scan.scanner_name,
                status=scan.status,
                error=scan.error,
                findings=kept.total,
                findings_dropped=kept.dropped,
            )
        )
    return outcomes


async def _report(
    request: web.Request, record: CollectionRecord, query: ReportQuery
) -> web.Response:
    """SARIF, or JSON against a baseline (see gateway.http.results)."""
    bounds = request.app[CONFIG].findings
    current = await whole_results(request.app[COLLECTIONS], record.collection_id, bounds)
    uri = information_uri(request)
    # Seconds of CPU at the bounds, times the scanners: in a worker thread, so that streams
    # and other requests go on meanwhile.
    if query.baseline is None:
        sarif = await asyncio.to_thread(
            collection_sarif, record, current.vulnerabilities, baseline=False, information_uri=uri
        )
        return await sarif_response(sarif)
    kind, before = await _baseline(request, query.baseline)
    compared = await asyncio.to_thread(compare, current.vulnerabilities, before)
    if query.sarif:
        sarif = await asyncio.to_thread(
            collection_sarif, record, *compared, baseline=True, information_uri=uri
        )
        return await sarif_response(sarif)
    start, limit = page_request(request.query, bounds)
    page = baseline_page(compared, start=start, limit=limit, max_bytes=bounds.max_page_bytes)
    counts = CollectionBaseline(
        id=query.baseline, kind=kind, new=page.new, unchanged=page.unchanged, fixed=page.fixed_total
    )
    results = await _results(
        request,
        record,
        page.vulnerabilities,
        total=current.total,
        next_cursor=page.next_cursor,
        baseline=counts,
        fixed=page.fixed,
    )
    return ok(results)


async def _baseline(
    request: web.Request, baseline_id: str
) -> tuple[Literal["collection", "scan"], Findings]:
    """The findings of the collection or scan ``baseline_id`` the caller can see: a
    collection's merged ones, or a scan's, each ``reported_by`` its scanner. 404 alike for
    absent and unseen."""
    bounds = request.app[CONFIG].findings
    what = "reading a baseline"
    try:
        other = await visible_collection(request, Permission.READ, what, baseline_id)
    except CollectionNotFound:
        pass
    else:
        _ended(other, f"baseline collection {baseline_id!r}")
        found = await whole_results(request.app[COLLECTIONS], baseline_id, bounds)
        return "collection", found.vulnerabilities
    try:
        scan = await visible_scan(request, Permission.READ, what, baseline_id)
    except ScanNotFound:
        raise NotFound(f"baseline {baseline_id!r} is no scan collection or scan of yours") from None
    has_results(scan, f"baseline scan {baseline_id!r}")
    found = await whole_results(request.app[STORE], baseline_id, bounds)
    return "scan", [{**f, "reported_by": [scan.scanner_name]} for f in found.vulnerabilities]
