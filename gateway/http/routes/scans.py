"""The scan API: start, list, read status, read results."""

from __future__ import annotations

import contextlib
import uuid

import msgspec
from aiohttp import web

from gateway.domain.errors import BadRequest, Conflict, ScanNotFound, ScanNotReady
from gateway.domain.models import EventDraft, NewScan, ScanFinished, ScanRecord, Status
from gateway.http.appkeys import CONFIG, RUNNER, STORE
from gateway.http.auth import principal
from gateway.http.report_query import (
    ReportQuery,
    information_uri,
    report_query,
    sarif_response,
)
from gateway.http.responses import ok
from gateway.http.results import baseline_results, scan_sarif, whole_scan
from gateway.http.schemas import (
    Results,
    ScanCreated,
    ScanLinks,
    SeveritySummary,
    scan_detail,
    scan_view,
)
from gateway.http.validation import (
    parse_bool,
    parse_cursor,
    parse_limit,
    parse_status,
    read_json,
    scan_request,
)
from gateway.report.baseline import compare

__all__ = ["API", "has_results", "owned_scan", "routes"]

API = "/api/v1/scans"
LIST_DEFAULT = 50
LIST_MAX = 500

routes = web.RouteTableDef()


async def owned_scan(request: web.Request, scan_id: str | None = None) -> ScanRecord:
    """The scan named in the path (or ``scan_id``), if the caller owns it; 404 alike for
    absent and foreign."""
    scan_id = request.match_info["scan_id"] if scan_id is None else scan_id
    scan = await request.app[STORE].get_scan(scan_id)
    if scan is None or scan.owner != principal(request).subject:
        raise ScanNotFound(scan_id)
    return scan


def links(scan_id: str) -> ScanLinks:
    return ScanLinks(
        stream_url=f"{API}/{scan_id}/stream",
        status_url=f"{API}/{scan_id}",
        results_url=f"{API}/{scan_id}/results",
    )


@routes.post(f"{API}/")
@routes.post(API)
async def start_scan(request: web.Request) -> web.Response:
    use_sse = parse_bool(request.query.get("use_sse"), "use_sse", default=False)
    wanted = scan_request(await read_json(request), request.app[CONFIG].scanners)
    new = NewScan(
        scan_id=str(uuid.uuid4()),
        owner=principal(request).subject,
        repository_name=wanted.repository_name,
        scanner_name=wanted.scanner_name,
        sse_enabled=use_sse,
        configurations=wanted.configurations or {},
    )
    scan = await request.app[RUNNER].submit(new, EventDraft(Status.PENDING, 0, "Scan queued."))
    urls = links(scan.scan_id)
    data = ScanCreated(scan.scan_id, scan.status, scan.sse_enabled, **msgspec.structs.asdict(urls))
    response = ok(data, status=201, message="scan started")
    response.headers["Location"] = urls.status_url
    return response


@routes.get(f"{API}/")
@routes.get(API)
async def list_scans(request: web.Request) -> web.Response:
    limit = parse_limit(request.query.get("limit"), default=LIST_DEFAULT, maximum=LIST_MAX)
    status = parse_status(request.query.get("status"))
    scans = await request.app[STORE].list_scans(
        principal(request).subject, limit=limit, status=status
    )
    return ok([scan_view(scan) for scan in scans])


@routes.get(API + "/{scan_id}")
async def get_scan(request: web.Request) -> web.Response:
    scan = await owned_scan(request)
    return ok(scan_detail(scan, links(scan.scan_id)))


@routes.delete(API + "/{scan_id}")
async def cancel_scan(request: web.Request) -> web.Response:
    scan = await owned_scan(request)
    if not scan.terminal:
        with contextlib.suppress(ScanFinished):  # it ended meanwhile: answered below
            await request.app[RUNNER].cancel(scan.scan_id)
        scan = await owned_scan(request)
        if scan.status is Status.CANCELLED:
            return ok(scan_detail(scan, links(scan.scan_id)), message="scan cancelled")
    raise Conflict(f"scan already ended {scan.status.value}; only a running scan can be cancelled")


@routes.get(API + "/{scan_id}/results")
async def get_results(request: web.Request) -> web.Response:
    scan = await owned_scan(request)
    query = report_query(request)
    has_results(scan)
    if query.sarif or query.baseline is not None:
        return await _report(request, scan, query)
    bounds = request.app[CONFIG].findings
    limit = parse_limit(
        request.query.get("limit"), default=bounds.page_size, maximum=bounds.max_page_size
    )
    start = parse_cursor(request.query.get("cursor"))
    page = await request.app[STORE].findings_page(
        scan.scan_id, start=start, limit=limit, max_bytes=bounds.max_page_bytes
    )
    if start > page.total:
        raise BadRequest(
            f"query parameter 'cursor' is past the end of the results ({page.total} findings); "
            "pass the next_cursor of the page before"
        )
    end = start + len(page.vulnerabilities)
    return ok(
        Results(
            scan_id=scan.scan_id,
            scanner_name=scan.scanner_name,
            repository_name=scan.repository_name,
            status="completed",
            vulnerabilities=page.vulnerabilities,
            summary=msgspec.convert(page.summary, SeveritySummary),
            total_findings=page.total,
            findings_dropped=page.dropped,
            truncated=page.dropped > 0,
            next_cursor=str(end) if end < page.total else None,
        )
    )


def has_results(scan: ScanRecord, what: str = "scan") -> None:
    """409 unless the scan completed: a failed or cancelled one has no results."""
    if scan.status is Status.FAILED:
        raise ScanNotReady(f"{what} failed, so it has no results: {scan.error}")
    if scan.status is Status.CANCELLED:
        raise ScanNotReady(f"{what} was cancelled, so it has no results")
    if scan.status is not Status.COMPLETED:
        raise ScanNotReady(
            f"{what} is still {scan.status.value} ({scan.progress_percent}%); "
            "results are available once it completes"
        )


async def _report(request: web.Request, scan: ScanRecord, query: ReportQuery) -> web.Response:
    """SARIF, or JSON against a baseline (see gateway.http.results)."""
    if query.sarif and ("limit" in request.query or "cursor" in request.query):
        raise BadRequest(
            "query parameters 'limit' and 'cursor' page the JSON results; "
            "a SARIF report is one document of the whole scan"
        )
    bounds = request.app[CONFIG].findings
    store = request.app[STORE]
    current = await whole_scan(store, scan.scan_id, bounds)
    uri = information_uri(request)
    if query.baseline is None:
        return sarif_response(
            scan_sarif(scan, current.vulnerabilities, baseline=False, information_uri=uri)
        )
    base = await owned_scan(request, query.baseline)
    has_results(base, f"baseline scan {base.scan_id!r}")
    compared = compare(
        current.vulnerabilities, (await whole_scan(store, base.scan_id, bounds)).vulnerabilities
    )
    if query.sarif:
        return sarif_response(scan_sarif(scan, *compared, baseline=True, information_uri=uri))
    limit = parse_limit(
        request.query.get("limit"), default=bounds.page_size, maximum=bounds.max_page_size
    )
    start = parse_cursor(request.query.get("cursor"))
    page = baseline_results(
        scan, current, base, compared, start=start, limit=limit, max_bytes=bounds.max_page_bytes
    )
    return ok(page)
