"""The API's shapes, each declared once as a msgspec ``Struct``.

A request body is decoded and checked against its Struct (``validation``), a view is built as
its Struct and turned into JSON values with ``msgspec.to_builtins`` (the routes), and the
OpenAPI document's ``components.schemas`` are generated from the same Structs, registered in
``COMPONENTS`` (``http.components``). Field order is the order the JSON bodies have. What
depends on the deployment (the scanners' names, the findings' bounds) the document adds to the
generated schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.domain.models import EventPayload, ScanRecord, SeveritySummary, Status
from gateway.http.components import Components

__all__ = [
    "COMPONENTS",
    "DEFAULT_SUBJECT",
    "MAX_REPOSITORY_NAME",
    "MAX_SUBJECT",
    "AuthExpiredEvent",
    "BaselineCounts",
    "DevToken",
    "DevTokenRequest",
    "Envelope",
    "Error",
    "EventPayload",
    "Health",
    "NotReady",
    "Readiness",
    "Results",
    "ScanCreate",
    "ScanCreated",
    "ScanDetail",
    "ScanLinks",
    "ScanView",
    "Session",
    "SeveritySummary",
    "StreamTicket",
    "scan_detail",
    "scan_view",
]

MAX_REPOSITORY_NAME: Final = 500
# The subject of a development token (POST /api/v1/dev/token): its default and longest.
DEFAULT_SUBJECT: Final = "demo"
MAX_SUBJECT: Final = 100
# Every answer's timestamp, and every other time the API gives: ISO 8601 text in UTC.
_DATE_TIME: Final = {"format": "date-time"}
_ANSWERED = "when the answer was made (ISO 8601, UTC)"
_ERROR_CODES = (
    "`bad_request`, `invalid_json`, `unknown_scanner` (400); `unauthorized` (401); "
    "`forbidden` (403); `not_found`, `scan_not_found`, `collection_not_found` (404); "
    "`method_not_allowed` (405); `not_acceptable` (406); `request_timeout` (408); "
    "`conflict`, `scan_not_ready` (409); `payload_too_large` (413); "
    "`unsupported_media_type` (415); `validation_error` (422); `limit_exceeded` (429); "
    "`internal_error` (500); `store_unavailable`, `keys_unavailable`, `draining` (503); "
    "`http_error` for another status from the HTTP layer"
)

Count = Annotated[int, Meta(ge=0)]
Percent = Annotated[int, Meta(ge=0, le=100)]
NonEmpty = Annotated[str, Meta(min_length=1)]


class _Closed(Struct, forbid_unknown_fields=True):
    """A JSON object with exactly its fields (``additionalProperties: false``)."""


class ScanCreate(_Closed):
    """A missing, mistyped, empty or unknown field is 422; an unknown scanner 400."""

    repository_name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_REPOSITORY_NAME,
            pattern=r"\S",
            description="the repository to scan (surrounding blanks are stripped)",
        ),
    ]
    scanner_name: Annotated[
        str,
        Meta(
            min_length=1,
            pattern=r"\S",
            description="one of the configured scanners (`scanners` in the config)",
        ),
    ]
    configurations: Annotated[
        dict[str, Any] | None,
        Meta(description="sent to the scanner as given; null or absent: `{}`"),
    ] = None


# A scan's routes, as every body that links to them gives them.
_StreamUrl = Annotated[str, Meta(description="`GET` it for the event stream")]
_StatusUrl = Annotated[str, Meta(description="`GET` it for the scan")]
_ResultsUrl = Annotated[str, Meta(description="`GET` it for the results")]


class ScanLinks(_Closed, kw_only=True):
    """The URLs of a scan's routes. Keyword-only fields come after all others, so a Struct
    built on this one ends with them, as its JSON does."""

    stream_url: _StreamUrl
    status_url: _StatusUrl
    results_url: _ResultsUrl


class ScanCreated(ScanLinks):
    scan_id: str
    status: Status
    sse_enabled: bool


class ScanView(_Closed):
    """A scan, as the list shows it."""

    scan_id: Annotated[str, Meta(description="the scan's id (a UUID)")]
    repository_name: str
    scanner_name: str
    sse_enabled: Annotated[
        bool,
        Meta(description="true: the configured scanner runs it; false: the gateway simulates it"),
    ]
    status: Status
    progress_percent: Annotated[
        int, Meta(ge=0, le=100, description="never goes backwards; 100 on completion")
    ]
    progress_text: str
    error: Annotated[str | None, Meta(description="why a failed scan failed")]
    created_at: Annotated[
        str, Meta(description="when the scan was created", extra_json_schema=_DATE_TIME)
    ]
    updated_at: Annotated[
        str, Meta(description="when its last event was stored", extra_json_schema=_DATE_TIME)
    ]
    finished_at: Annotated[
        Annotated[str, Meta(extra_json_schema=_DATE_TIME)] | None,
        Meta(description="when it ended, null while it runs"),
    ]
    last_event_id: Annotated[
        int, Meta(ge=0, description="the id of its last stored event (see the stream)")
    ]
    skipped_events: Annotated[int, Meta(ge=0, description="malformed upstream messages skipped")]


class ScanDetail(ScanView):
    """A scan with the URLs of its routes."""

    # ScanLinks' fields: msgspec takes the fields of one base only (it is ScanView here).
    stream_url: _StreamUrl
    status_url: _StatusUrl
    results_url: _ResultsUrl


class ResetEvent(ScanView):
    """The `data:` of an `event: reset`: the scan's snapshot and why."""

    reason: str
    timestamp: Annotated[
        str, Meta(description="when the reset was sent", extra_json_schema=_DATE_TIME)
    ]


class AuthExpiredEvent(_Closed):
    """The `data:` of an `event: auth_expired`."""

    last_event_id: Count
    reason: str


class BaselineCounts(_Closed):
    """What `?baseline=` found, over every finding of both scans (not only this page's)."""

    scan_id: Annotated[str, Meta(description="the baseline scan")]
    new: Annotated[int, Meta(ge=0, description="findings whose fingerprint it does not hold")]
    unchanged: Annotated[int, Meta(ge=0, description="findings whose fingerprint it holds")]
    fixed: Annotated[
        int, Meta(ge=0, description="its findings whose fingerprint this scan does not hold")
    ]


class Results(_Closed):
    """A page of a completed scan's findings (`?limit=`, `?cursor=`), with what holds for all
    of them. With `?baseline=`, the pages run over the findings, each with `fingerprint` and
    `baseline_state` (`new` or `unchanged`), then over the baseline's fixed findings (`fixed`,
    `baseline_state: absent`)."""

    scan_id: str
    scanner_name: str
    repository_name: str
    status: Literal["completed"]
    vulnerabilities: Annotated[
        list[dict[str, Any]],
        Meta(description="this page of the findings, in the order the scanner sent them"),
    ]
    summary: Annotated[
        SeveritySummary,
        Meta(description="the severities of every finding kept, not only this page's"),
    ]
    total_findings: Annotated[int, Meta(ge=0, description="findings kept, over every page")]
    findings_dropped: Annotated[
        int,
        Meta(
            ge=0,
            description=(
                "findings the scanner sent past the scan's bounds (`findings.max_per_scan`"
                ", `findings.max_bytes_per_scan`): the gateway kept the first ones and "
                "dropped these"
            ),
        ),
    ]
    truncated: Annotated[
        bool, Meta(description="true when findings were dropped: the results are incomplete")
    ]
    next_cursor: Annotated[
        str | None, Meta(description="pass it as `?cursor=` for the next page; null on the last")
    ]
    baseline: Annotated[BaselineCounts | UnsetType, Meta(description="only with `?baseline=`")] = (
        UNSET
    )
    fixed: Annotated[
        list[dict[str, Any]] | UnsetType,
        Meta(
            description="only with `?baseline=`: this page of the baseline's findings that "
            "this scan no longer has"
        ),
    ] = UNSET


class Envelope(_Closed):
    """Every JSON answer of the API; `data` is per route."""

    success: Literal[True]
    data: Annotated[Any, Meta(description="the answer; its shape depends on the route")]
    message: str | None
    timestamp: Annotated[str, Meta(description=_ANSWERED, extra_json_schema=_DATE_TIME)]


class Error(_Closed):
    """The error envelope every failure uses."""

    success: Literal[False]
    data: None
    error: Annotated[
        str, Meta(min_length=1, description=f"a machine-readable code: {_ERROR_CODES}")
    ]
    message: NonEmpty
    detail: Annotated[
        str,
        Meta(min_length=1, description="more detail when there is some, else the message"),
    ]
    timestamp: Annotated[str, Meta(description=_ANSWERED, extra_json_schema=_DATE_TIME)]


class StreamTicket(_Closed):
    ticket: str
    expires_in: Annotated[int, Meta(ge=1, description="seconds")]
    stream_url: Annotated[
        str, Meta(description="the stream's URL with the ticket; give it to an EventSource")
    ]


class Session(_Closed):
    subject: str
    expires_in: Annotated[
        int, Meta(ge=0, description="seconds until the cookie (and the token in it) expire")
    ]


class Health(_Closed):
    status: Literal["ok"]


class Readiness(_Closed):
    status: Literal["ready", "not ready"]
    checks: Annotated[
        dict[str, str],
        Meta(
            description="`store` and `scanner:<name>` for each configured scanner (unless "
            "`readiness.check_scanners` is false): `ok` or what is wrong"
        ),
    ]


class NotReady(_Closed):
    """The error envelope, with the checks in `data`."""

    success: Literal[False]
    data: Readiness
    error: Literal["not_ready"]
    message: NonEmpty
    detail: NonEmpty
    timestamp: Annotated[str, Meta(description=_ANSWERED, extra_json_schema=_DATE_TIME)]


class DevTokenRequest(_Closed):
    subject: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_SUBJECT,
            pattern=r"\S",
            description="the token's `sub` (surrounding blanks are stripped)",
        ),
    ] = DEFAULT_SUBJECT


class DevToken(_Closed):
    token: Annotated[str, Meta(description="a bearer JWT")]
    subject: str
    expires_in: Annotated[int, Meta(ge=1, description="seconds")]


# The shapes the document's components hold, generated from the declarations above (the
# collection API's register in ``collection_schemas``; ``openapi`` holds both).
COMPONENTS: Final = Components(
    Status,
    Envelope,
    Error,
    ScanCreate,
    ScanCreated,
    ScanView,
    ScanDetail,
    SeveritySummary,
    BaselineCounts,
    Results,
    EventPayload,
    ResetEvent,
    AuthExpiredEvent,
    StreamTicket,
    Session,
    Health,
    Readiness,
    NotReady,
    DevTokenRequest,
    DevToken,
    names={ScanView: "Scan", EventPayload: "Event"},
    declared_order=(Status,),  # the lifecycle's order
)


def scan_view(scan: ScanRecord) -> ScanView:
    """The record as the API shows it (the owner is implied by the caller)."""
    return ScanView(**_view_fields(scan))


def scan_detail(scan: ScanRecord, links: ScanLinks) -> ScanDetail:
    return ScanDetail(**_view_fields(scan), **msgspec.structs.asdict(links))


def _view_fields(scan: ScanRecord) -> dict[str, Any]:
    return {
        "scan_id": scan.scan_id,
        "repository_name": scan.repository_name,
        "scanner_name": scan.scanner_name,
        "sse_enabled": scan.sse_enabled,
        "status": scan.status,
        "progress_percent": scan.progress_percent,
        "progress_text": scan.progress_text,
        "error": scan.error,
        "created_at": scan.created_at,
        "updated_at": scan.updated_at,
        "finished_at": scan.finished_at,
        "last_event_id": scan.last_seq,
        "skipped_events": scan.skipped_events,
    }
