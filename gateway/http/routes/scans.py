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
from gateway.http.responses import ok
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

__all__ = ["API", "owned_scan", "routes"]

API = "/api/v1/scans"
LIST_DEFAULT = 50
LIST_MAX = 500

routes = web.RouteTableDef()


async def owned_scan(request: web.Request) -> ScanRecord:
    """The scan named in the path, if the caller owns it; 404 alike for absent and foreign."""
    scan_id = request.match_info["scan_id"]
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
    if scan.status is Status.FAILED:
        raise ScanNotReady(f"scan failed, so it has no results: {scan.error}")
    if scan.status is Status.CANCELLED:
        raise ScanNotReady("scan was cancelled, so it has no results")
    if scan.status is not Status.COMPLETED:
        raise ScanNotReady(
            f"scan is still {scan.status.value} ({scan.progress_percent}%); "
            "results are available once it completes"
        )
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
