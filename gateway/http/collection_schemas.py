"""The collection API's shapes, each declared once as a msgspec ``Struct`` (as ``schemas``),
registered for the document's components in ``COLLECTION_COMPONENTS``."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.domain.collections import (
    CollectionEventPayload,
    CollectionProgress,
    CollectionRecord,
    CollectionStatus,
    MergedSummary,
)
from gateway.domain.models import Status
from gateway.http.components import Components
from gateway.http.schemas import MAX_REPOSITORY_NAME

__all__ = [
    "COLLECTION_COMPONENTS",
    "PER_SCANNER",
    "CollectionBaseline",
    "CollectionCreate",
    "CollectionCreated",
    "CollectionDetail",
    "CollectionResetEvent",
    "CollectionResults",
    "CollectionStatusView",
    "ScanOutcome",
    "ScanProgress",
    "collection_view",
]

# The key of ``configurations`` that holds per-scanner configurations.
PER_SCANNER: Final = "per_scanner"
_DATE_TIME: Final = {"format": "date-time"}
Count = Annotated[int, Meta(ge=0)]
Percent = Annotated[int, Meta(ge=0, le=100)]


class _Closed(Struct, forbid_unknown_fields=True):
    """A JSON object with exactly its fields (``additionalProperties: false``)."""


class CollectionCreate(_Closed):
    """An empty, duplicate or unknown scanner is refused, naming it (422, or 400
    `unknown_scanner`)."""

    repository_name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_REPOSITORY_NAME,
            pattern=r"\S",
            description="the repository every scanner scans (surrounding blanks are stripped)",
        ),
    ]
    scanners: Annotated[
        list[Annotated[str, Meta(min_length=1)]],
        Meta(
            min_length=1,
            description="configured scanners, each at most once (so at most as many as are "
            "configured)",
        ),
    ]
    configurations: Annotated[
        dict[str, Any] | None,
        Meta(
            description="sent to every scanner as given, but for the key `per_scanner`: "
            "`{name: {...}}`, whose object for a scanner is merged over the others (its keys "
            "win) and sent to that scanner only. Each name must be one of `scanners`."
        ),
    ] = None


class CollectionLinks(_Closed):
    stream_url: Annotated[str, Meta(description="`GET` it for the collection's event stream")]
    status_url: Annotated[str, Meta(description="`GET` it for the collection's status")]
    results_url: Annotated[str, Meta(description="`GET` it for the merged results")]


class CollectionCreated(_Closed):
    collection_id: str
    scan_ids: Annotated[list[str], Meta(description="one scan per scanner, in their order")]
    status: CollectionStatus
    sse_enabled: bool
    stream_url: Annotated[str, Meta(description="`GET` it for the collection's event stream")]
    status_url: Annotated[str, Meta(description="`GET` it for the collection's status")]
    results_url: Annotated[str, Meta(description="`GET` it for the merged results")]


class CollectionView(_Closed):
    """A collection, as the list shows it."""

    id: Annotated[str, Meta(description="the collection's id (a UUID)")]
    repository_name: str
    scanners: list[str]
    scan_ids: list[str]
    sse_enabled: bool
    status: CollectionStatus
    progress_percent: Annotated[
        int, Meta(ge=0, le=100, description="the mean of its scans' progress")
    ]
    created_at: Annotated[str, Meta(extra_json_schema=_DATE_TIME)]
    updated_at: Annotated[str, Meta(extra_json_schema=_DATE_TIME)]
    finished_at: Annotated[
        Annotated[str, Meta(extra_json_schema=_DATE_TIME)] | None,
        Meta(description="when it ended, null while it runs"),
    ]
    last_event_id: Annotated[int, Meta(ge=0, description="the id of its stream's last event")]
    summary: Annotated[
        MergedSummary | None, Meta(description="the merged findings' summary, once ended")
    ]


class CollectionDetail(CollectionView):
    stream_url: str
    status_url: str
    results_url: str


class ScanProgress(_Closed):
    scan_id: str
    scanner_name: str
    status: Status
    progress_percent: Percent
    progress_text: str
    error: str | None


class CollectionStatusView(_Closed):
    collection: CollectionProgress
    scans: list[ScanProgress]


class ScanOutcome(_Closed):
    """How one scanner's scan ended, and what it found (before merging)."""

    scan_id: str
    scanner_name: str
    status: Status
    error: Annotated[str | None, Meta(description="why it failed")]
    findings: Annotated[int, Meta(ge=0, description="findings it reported and the gateway kept")]
    findings_dropped: Count


class CollectionBaseline(_Closed):
    """What `?baseline=` found, over every merged finding of both (not only this page's)."""

    id: Annotated[str, Meta(description="the baseline: a collection's id or a scan's")]
    kind: Literal["collection", "scan"]
    new: Annotated[int, Meta(ge=0, description="findings whose fingerprint it does not hold")]
    unchanged: Annotated[int, Meta(ge=0, description="findings whose fingerprint it holds")]
    fixed: Annotated[
        int, Meta(ge=0, description="its findings whose fingerprint this collection does not hold")
    ]


class CollectionResults(_Closed):
    """A page of the merged findings of an ended collection (whatever its status: a failed
    scan never hides the others' findings), with each scanner's outcome. With `?baseline=`,
    the pages run over the findings, each with `baseline_state` (`new` or `unchanged`), then
    over the baseline's fixed findings (`fixed`, `baseline_state: absent`)."""

    collection_id: str
    repository_name: str
    status: CollectionStatus
    vulnerabilities: Annotated[
        list[dict[str, Any]],
        Meta(
            description="this page of the merged findings: one per fingerprint, each with "
            "`fingerprint` and `reported_by` (the scanners that reported it), and "
            "`related_lines` of all of them when they listed other lines"
        ),
    ]
    summary: MergedSummary
    total_findings: Annotated[int, Meta(ge=0, description="merged findings, over every page")]
    scans: list[ScanOutcome]
    next_cursor: Annotated[
        str | None, Meta(description="pass it as `?cursor=` for the next page; null on the last")
    ]
    baseline: Annotated[
        CollectionBaseline | UnsetType, Meta(description="only with `?baseline=`")
    ] = UNSET
    fixed: Annotated[
        list[dict[str, Any]] | UnsetType,
        Meta(
            description="only with `?baseline=`: this page of the baseline's findings that "
            "this collection no longer has, each with the `reported_by` of the baseline"
        ),
    ] = UNSET


class CollectionResetEvent(CollectionView):
    """The `data:` of an `event: reset` of a collection's stream."""

    reason: str
    timestamp: Annotated[str, Meta(extra_json_schema=_DATE_TIME)]


COLLECTION_COMPONENTS: Final = Components(
    CollectionStatus,
    CollectionCreate,
    CollectionCreated,
    CollectionView,
    CollectionDetail,
    CollectionStatusView,
    CollectionResults,
    CollectionEventPayload,
    CollectionResetEvent,
)


def collection_view(record: CollectionRecord) -> CollectionView:
    return CollectionView(**_view_fields(record))


def collection_detail(record: CollectionRecord, links: CollectionLinks) -> CollectionDetail:
    return CollectionDetail(
        **_view_fields(record),
        stream_url=links.stream_url,
        status_url=links.status_url,
        results_url=links.results_url,
    )


def _view_fields(record: CollectionRecord) -> dict[str, Any]:
    summary = record.summary
    return {
        "id": record.collection_id,
        "repository_name": record.repository_name,
        "scanners": record.scanners,
        "scan_ids": record.scan_ids,
        "sse_enabled": record.sse_enabled,
        "status": record.status,
        "progress_percent": record.progress_percent,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": record.finished_at,
        "last_event_id": record.last_seq,
        "summary": None if summary is None else MergedSummary(**summary),
    }
