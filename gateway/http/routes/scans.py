"""The scan API: start, list, read status, read results."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import msgspec
from aiohttp import web

from gateway.domain.errors import Conflict, ScanNotReady
from gateway.domain.models import EventDraft, NewScan, ScanFinished, ScanRecord, Status
from gateway.http.access import MAX_SUBJECT, SUBJECT_PARAM, listed_subject, require, visible_scan
from gateway.http.appkeys import CONFIG, REPORT_BUILDS, RUNNER, STORE
from gateway.http.audit import audit
from gateway.http.operations import Param, Permission, enveloped, operation
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
    baseline_results,
    page_request,
    report_build,
    results_page,
    scan_sarif,
    unpaged,
    whole_results,
)
from gateway.http.schemas import (
    Results,
    ScanCreate,
    ScanCreated,
    ScanDetail,
    ScanLinks,
    SeveritySummary,
    scan_detail,
    scan_view,
)
from gateway.http.validation import (
    MAX_NUMBER_DIGITS,
    parse_bool,
    parse_limit,
    parse_status,
    read_json,
    scan_request,
)
from gateway.report.baseline import compare

__all__ = [
    "API",
    "CURSOR",
    "LIMIT",
    "RESULTS_LIMIT",
    "SCAN_ID",
    "USE_SSE",
    "has_results",
    "links",
    "routes",
]

API = "/api/v1/scans"
LIST_DEFAULT = 50
LIST_MAX = 500

routes = web.RouteTableDef()

SCAN_ID = Param(
    "ScanId",
    "scan_id",
    "path",
    "the scan's id, as `POST /api/v1/scans/` answered it",
    {"type": "string", "minLength": 1},
)
USE_SSE = Param(
    "UseSSE",
    "use_sse",
    "query",
    "true: the configured scanner runs the scan (the gateway reads its stream); false: the "
    "gateway simulates it. `true/false`, `1/0`, `yes/no`, `on/off` are accepted; anything "
    "else is 400.",
    {"type": "boolean", "default": False},
)
LIMIT = Param(
    "Limit",
    "limit",
    "query",
    f"how many scans at most; outside 1-{LIST_MAX} is 400",
    {"type": "integer", "minimum": 1, "maximum": LIST_MAX, "default": LIST_DEFAULT},
)
STATUS = Param(
    "StatusFilter",
    "status",
    "query",
    "only scans with this status (case-insensitive); unknown is 400",
    {"$ref": "#/components/schemas/Status"},
)
RESULTS_LIMIT = Param(
    "ResultsLimit",
    "limit",
    "query",
    "how many findings at most on this page (`findings.page_size`, "
    "{config.findings.page_size}, when absent); outside 1-{config.findings.max_page_size} "
    "(`findings.max_page_size`) is 400",
    lambda config: {
        "type": "integer",
        "minimum": 1,
        "maximum": config.findings.max_page_size,
        "default": config.findings.page_size,
    },
)
CURSOR = Param(
    "Cursor",
    "cursor",
    "query",
    "where the page starts: the `next_cursor` of the page before (absent or empty: the first "
    f"page). Anything else (not {MAX_NUMBER_DIGITS} digits at most, or past the last finding) "
    "is 400.",
    {"type": "string", "pattern": f"^[0-9]{{0,{MAX_NUMBER_DIGITS}}}$"},
)


SUBJECT = Param(
    "Subject",
    SUBJECT_PARAM,
    "query",
    "whose scans: another subject's needs `scans:admin` (403 without it); absent, the "
    f"caller's own. Empty, longer than {MAX_SUBJECT} characters or not printable is 400.",
    {"type": "string", "minLength": 1, "maxLength": MAX_SUBJECT},
)


def links(scan_id: str) -> ScanLinks:
    return ScanLinks(
        stream_url=f"{API}/{scan_id}/stream",
        status_url=f"{API}/{scan_id}",
        results_url=f"{API}/{scan_id}/results",
    )


# Starting a scan while the store is down, the key set not loaded yet, or while this gateway
# drains before it stops.
STARTS_NOTHING = (
    503,
    "The store does not answer (`store_unavailable`); the identity provider's key set is not "
    "loaded yet (`keys_unavailable`, with `Retry-After`); or this gateway is draining before it "
    "stops (`draining`, with `Retry-After`): another replica takes the same request.",
)


@routes.post(f"{API}/")
@routes.post(API)
@operation(
    "startScan",
    "Start a scan",
    "scans",
    {
        201: enveloped(
            ScanCreated,
            "The scan is created and running.",
            {"Location": "The scan's URL (`status_url`)."},
        )
    },
    errors=(400, 401, 403, 408, 413, 415, 422, 429, STARTS_NOTHING),
    permission=Permission.WRITE,
    description=(
        "Starts a scan of `repository_name` with `scanner_name`. With `use_sse=true` the "
        "gateway POSTs it to the configured scanner once and reads its progress stream; "
        "otherwise it simulates the scan. 429 when the caller "
        "(`limits.max_running_scans_per_subject`) or the gateway (`limits.max_running_scans`; "
        "with Redis, every replica) runs its maximum of scans, or when the caller starts scans "
        "faster than `limits.scan_starts_per_second` (bursts of `limits.scan_start_burst`)."
    ),
    params=(USE_SSE,),
    body=ScanCreate,
)
async def start_scan(request: web.Request) -> web.Response:
    who = require(request, Permission.WRITE, "starting a scan")
    use_sse = parse_bool(request.query.get("use_sse"), "use_sse", default=False)
    wanted = scan_request(await read_json(request), request.app[CONFIG].scanners)
    new = NewScan(
        scan_id=str(uuid.uuid4()),
        owner=who.subject,
        repository_name=wanted.repository_name,
        scanner_name=wanted.scanner_name,
        sse_enabled=use_sse,
        configurations=wanted.configurations or {},
    )
    scan = await request.app[RUNNER].submit(new, EventDraft(Status.PENDING, 0, "Scan queued."))
    audit(
        request,
        "scan.started",
        scan_id=scan.scan_id,
        scanner=scan.scanner_name,
        repository=scan.repository_name,
        use_sse=use_sse,
    )
    urls = links(scan.scan_id)
    data = ScanCreated(scan.scan_id, scan.status, scan.sse_enabled, **msgspec.structs.asdict(urls))
    response = ok(data, status=201, message="scan started")
    response.headers["Location"] = urls.status_url
    return response


@routes.get(f"{API}/")
@routes.get(API)
@operation(
    "listScans",
    "List the caller's scans",
    "scans",
    {200: enveloped("ScanList", "The caller's scans (or `?subject=`'s), newest first.")},
    errors=(400, 401, 403, 503),
    params=(LIMIT, STATUS, SUBJECT),
    permission=Permission.READ,
)
async def list_scans(request: web.Request) -> web.Response:
    subject = listed_subject(request)
    limit = parse_limit(request.query.get("limit"), default=LIST_DEFAULT, maximum=LIST_MAX)
    status = parse_status(request.query.get("status"))
    scans = await request.app[STORE].list_scans(subject, limit=limit, status=status)
    return ok([scan_view(scan) for scan in scans])


@routes.get(API + "/{scan_id}")
@operation(
    "getScan",
    "Read a scan",
    "scans",
    {200: enveloped(ScanDetail, "The scan.")},
    errors=(401, 403, 404, 503),
    params=(SCAN_ID,),
    permission=Permission.READ,
)
async def get_scan(request: web.Request) -> web.Response:
    scan = await visible_scan(request, Permission.READ, "reading a scan")
    return ok(scan_detail(scan, links(scan.scan_id)))


@routes.delete(API + "/{scan_id}")
@operation(
    "cancelScan",
    "Cancel a running scan",
    "scans",
    {
        200: enveloped(
            ScanDetail,
            "Cancelled: the upstream request is closed and a `cancelled` event ends the log "
            "and every stream.",
        )
    },
    errors=(401, 403, 404, (409, "The scan already ended (`conflict`)."), 503),
    params=(SCAN_ID,),
    permission=Permission.CANCEL,
)
async def cancel_scan(request: web.Request) -> web.Response:
    scan = await visible_scan(request, Permission.CANCEL, "cancelling a scan")
    if not scan.terminal:
        with contextlib.suppress(ScanFinished):  # it ended meanwhile: answered below
            await request.app[RUNNER].cancel(scan.scan_id)
        scan = await visible_scan(request, Permission.CANCEL, "cancelling a scan")
        if scan.status is Status.CANCELLED:
            audit(request, "scan.cancelled", scan_id=scan.scan_id, owner=scan.owner)
            return ok(scan_detail(scan, links(scan.scan_id)), message="scan cancelled")
    raise Conflict(f"scan already ended {scan.status.value}; only a running scan can be cancelled")


@routes.get(API + "/{scan_id}/results")
@operation(
    "getResults",
    "Read a completed scan's results",
    "scans",
    {
        200: enveloped(
            Results,
            "A page of the findings, and their severity summary; or, asked for SARIF, the "
            "SARIF log of all of them.",
            also={SARIF_MEDIA_TYPE: SARIF_LOG},
        )
    },
    errors=(
        400,
        401,
        403,
        404,
        NOT_ACCEPTABLE,
        (
            409,
            "The scan (or the baseline) has not completed (`scan_not_ready`): still running "
            "(the message gives its status), failed (with the reason) or cancelled.",
        ),
        429,
        503,
    ),
    description=(
        "The findings come a page at a time: follow `next_cursor` with `?cursor=` until it is "
        "null. `summary` and `total_findings` cover every page. A scan keeps at most "
        "`findings.max_per_scan` findings ({config.findings.max_per_scan}) of at most "
        "`findings.max_bytes_per_scan` bytes in all ({config.findings.max_bytes_per_scan}): "
        "the first ones; the scanner's later findings are dropped, counted in "
        "`findings_dropped`, and `truncated` is true. "
        f"`Accept: {SARIF_MEDIA_TYPE}` or `?format=sarif` answers with SARIF 2.1.0 instead, "
        "one document of the whole scan (no `limit` or `cursor`: 400). With `?baseline=`, the "
        "pages run over the findings (each with `fingerprint` and `baseline_state`), then over "
        "the baseline's fixed ones (`fixed`), and `baseline` counts them all. The gateway "
        "builds at most `limits.max_report_builds` ({config.limits.max_report_builds}) SARIF "
        "or baseline reports at once; past it, 429 with `Retry-After`."
    ),
    params=(SCAN_ID, RESULTS_LIMIT, CURSOR, FORMAT, BASELINE),
    permission=Permission.READ,
)
async def get_results(request: web.Request) -> web.Response:
    scan = await visible_scan(request, Permission.READ, "reading results")
    query = report_query(request)
    has_results(scan)
    if query.sarif or query.baseline is not None:
        return await _report(request, scan, query)
    page, next_cursor = await results_page(
        request.app[STORE], scan.scan_id, request.query, request.app[CONFIG].findings
    )
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
            next_cursor=next_cursor,
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
    if query.sarif:
        unpaged(request.query, "scan")
    app = request.app
    async with report_build(app[REPORT_BUILDS], app[CONFIG].limits):
        return await _build_report(request, scan, query)


async def _build_report(request: web.Request, scan: ScanRecord, query: ReportQuery) -> web.Response:
    bounds = request.app[CONFIG].findings
    store = request.app[STORE]
    current = await whole_results(store, scan.scan_id, bounds)
    uri = information_uri(request)
    # Reports of a scan at its bounds take a second or more of CPU: in a worker thread, so
    # that streams and other requests go on meanwhile.
    if query.baseline is None:
        sarif = await asyncio.to_thread(
            scan_sarif, scan, current.vulnerabilities, baseline=False, information_uri=uri
        )
        return await sarif_response(sarif)
    base = await visible_scan(request, Permission.READ, "reading a baseline", query.baseline)
    has_results(base, f"baseline scan {base.scan_id!r}")
    before = await whole_results(store, base.scan_id, bounds)
    compared = await asyncio.to_thread(compare, current.vulnerabilities, before.vulnerabilities)
    if query.sarif:
        sarif = await asyncio.to_thread(
            scan_sarif, scan, *compared, baseline=True, information_uri=uri
        )
        return await sarif_response(sarif)
    start, limit = page_request(request.query, bounds)
    page = baseline_results(
        scan, current, base, compared, start=start, limit=limit, max_bytes=bounds.max_page_bytes
    )
    return ok(page)
