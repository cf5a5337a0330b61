"""The scan collection API: start several scanners on one repository, list, read, cancel
(the merged results are ``collection_results``, the stream ``collection_stream``)."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from gateway.domain.collections import (
    ChildState,
    CollectionProgress,
    CollectionRecord,
    NewCollection,
)
from gateway.domain.errors import Conflict
from gateway.domain.models import EventDraft, NewScan, ScanRecord, Status
from gateway.http.access import listed_subject, require, visible_collection
from gateway.http.appkeys import COLLECTION_RUNNER, COLLECTIONS, CONFIG, STORE
from gateway.http.audit import audit
from gateway.http.collection_schemas import (
    CollectionCreate,
    CollectionCreated,
    CollectionDetail,
    CollectionLinks,
    CollectionStatusView,
    ScanProgress,
    collection_detail,
    collection_view,
)
from gateway.http.operations import Param, Permission, enveloped, operation
from gateway.http.responses import ok
from gateway.http.routes.scans import (
    LIMIT,
    LIST_DEFAULT,
    LIST_MAX,
    SUBJECT,
    USE_SSE,
)
from gateway.http.validation import (
    collection_request,
    parse_bool,
    parse_limit,
    read_json,
)

__all__ = [
    "COLLECTIONS_API",
    "COLLECTION_ID",
    "NOT_FOUND",
    "children",
    "routes",
]

COLLECTIONS_API = "/api/v1/scan-collections"
# How long DELETE waits for the collection's terminal event after cancelling its scans.
CANCEL_WAIT_SECONDS = 10.0

routes = web.RouteTableDef()

COLLECTION_ID = Param(
    "CollectionId",
    "collection_id",
    "path",
    "the collection's id, as `POST /api/v1/scan-collections/` answered it",
    {"type": "string", "minLength": 1},
)
# Every route on one collection answers so for an id the caller cannot see.
NOT_FOUND = (
    404,
    "No such collection, or one of another subject (without `scans:admin`): both answer the "
    "same (`collection_not_found`).",
)


def links(collection_id: str) -> CollectionLinks:
    base = f"{COLLECTIONS_API}/{collection_id}"
    return CollectionLinks(
        stream_url=f"{base}/stream", status_url=base, results_url=f"{base}/results"
    )


@routes.post(f"{COLLECTIONS_API}/")
@routes.post(COLLECTIONS_API)
@operation(
    "startCollection",
    "Start a scan collection: every scanner named on one repository",
    "collections",
    {
        201: enveloped(
            CollectionCreated,
            "The collection and its scans are created and running.",
            {"Location": "The collection's URL (`status_url`)."},
        )
    },
    errors=(400, 401, 403, 408, 413, 415, 422, 429, 503),
    description=(
        "One scan per scanner, each counted against the running-scan limits: if they do not "
        "all fit (`limits.max_running_scans_per_subject`, `limits.max_running_scans`), none "
        "starts (429 saying how many could). `use_sse` works as for a scan."
    ),
    params=(USE_SSE,),
    body=CollectionCreate,
    permission=Permission.WRITE,
)
async def start_collection(request: web.Request) -> web.Response:
    owner = require(request, Permission.WRITE, "starting a scan collection").subject
    use_sse = parse_bool(request.query.get("use_sse"), "use_sse", default=False)
    wanted = collection_request(await read_json(request), request.app[CONFIG].scanners)
    scans = [
        NewScan(str(uuid.uuid4()), owner, wanted.repository_name, name, use_sse, configurations)
        for name, configurations in wanted.configurations.items()
    ]
    new = NewCollection(
        collection_id=str(uuid.uuid4()),
        owner=owner,
        repository_name=wanted.repository_name,
        sse_enabled=use_sse,
        children={scan.scan_id: ChildState(scan.scanner_name) for scan in scans},
    )
    first = EventDraft(Status.PENDING, 0, "Scan queued.")
    record = await request.app[COLLECTION_RUNNER].submit(new, scans, first)
    audit(
        request,
        "collection.started",
        collection_id=record.collection_id,
        scan_ids=",".join(record.scan_ids),
        scanners=",".join(scan.scanner_name for scan in scans),
        repository=record.repository_name,
        use_sse=use_sse,
    )
    urls = links(record.collection_id)
    data = CollectionCreated(
        collection_id=record.collection_id,
        scan_ids=record.scan_ids,
        status=record.status,
        sse_enabled=record.sse_enabled,
        stream_url=urls.stream_url,
        status_url=urls.status_url,
        results_url=urls.results_url,
    )
    response = ok(data, status=201, message="scan collection started")
    response.headers["Location"] = urls.status_url
    return response


@routes.get(f"{COLLECTIONS_API}/")
@routes.get(COLLECTIONS_API)
@operation(
    "listCollections",
    "List the caller's scan collections",
    "collections",
    {
        200: enveloped(
            {"type": "array", "items": {"$ref": "#/components/schemas/CollectionView"}},
            "The caller's collections (or `?subject=`'s), newest first.",
        )
    },
    errors=(400, 401, 403, 503),
    params=(LIMIT, SUBJECT),
    permission=Permission.READ,
)
async def list_collections(request: web.Request) -> web.Response:
    subject = listed_subject(request, "scan collections")
    limit = parse_limit(request.query.get("limit"), default=LIST_DEFAULT, maximum=LIST_MAX)
    records = await request.app[COLLECTIONS].list_owned(subject, limit=limit)
    return ok([collection_view(record) for record in records])


@routes.get(COLLECTIONS_API + "/{collection_id}")
@operation(
    "getCollection",
    "Read a scan collection",
    "collections",
    {200: enveloped(CollectionDetail, "The collection.")},
    errors=(401, 403, NOT_FOUND, 503),
    params=(COLLECTION_ID,),
    permission=Permission.READ,
)
async def get_collection(request: web.Request) -> web.Response:
    record = await visible_collection(request, Permission.READ, "reading a scan collection")
    return ok(collection_detail(record, links(record.collection_id)))


async def children(request: web.Request, record: CollectionRecord) -> list[ScanRecord]:
    """The collection's scans, in its order."""
    store = request.app[STORE]
    found = await asyncio.gather(*(store.get_scan(scan_id) for scan_id in record.scan_ids))
    return [scan for scan in found if scan is not None]  # a scan past its retention: left out


@routes.get(COLLECTIONS_API + "/{collection_id}/status")
@operation(
    "getCollectionStatus",
    "Read a collection's and its scans' progress",
    "collections",
    {200: enveloped(CollectionStatusView, "The collection's progress and each scan's.")},
    errors=(401, 403, NOT_FOUND, 503),
    params=(COLLECTION_ID,),
    permission=Permission.READ,
)
async def collection_status(request: web.Request) -> web.Response:
    record = await visible_collection(request, Permission.READ, "reading a scan collection")
    scans = [
        ScanProgress(
            scan_id=scan.scan_id,
            scanner_name=scan.scanner_name,
            status=scan.status,
            progress_percent=scan.progress_percent,
            progress_text=scan.progress_text,
            error=scan.error,
        )
        for scan in await children(request, record)
    ]
    progress = CollectionProgress(status=record.status, progress_percent=record.progress_percent)
    return ok(CollectionStatusView(collection=progress, scans=scans))


@routes.delete(COLLECTIONS_API + "/{collection_id}")
@operation(
    "cancelCollection",
    "Cancel every running scan of a collection",
    "collections",
    {
        200: enveloped(
            CollectionDetail,
            "Cancelled (or, when its terminal event is still to be written, cancelling).",
        )
    },
    errors=(401, 403, NOT_FOUND, (409, "The collection already ended (`conflict`)."), 503),
    params=(COLLECTION_ID,),
    permission=Permission.CANCEL,
)
async def cancel_collection(request: web.Request) -> web.Response:
    what = "cancelling a scan collection"
    record = await visible_collection(request, Permission.CANCEL, what)
    if record.terminal:
        raise Conflict(
            f"scan collection already ended {record.status.value}; "
            "only a running collection can be cancelled"
        )
    await request.app[COLLECTION_RUNNER].cancel(record, wait=CANCEL_WAIT_SECONDS)
    record = await visible_collection(request, Permission.CANCEL, what)
    audit(request, "collection.cancelled", collection_id=record.collection_id, owner=record.owner)
    message = "scan collection cancelled" if record.terminal else "scan collection cancelling"
    return ok(collection_detail(record, links(record.collection_id)), message=message)
