"""The scan domain: statuses, scan records, log events and upstream updates."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "RUNNING_STATUSES",
    "SEVERITIES",
    "TERMINAL_STATUSES",
    "Event",
    "EventDraft",
    "EventPayload",
    "FindingsPage",
    "NewScan",
    "ScanFinished",
    "ScanRecord",
    "ScanState",
    "SeveritySummary",
    "Status",
    "UpstreamUpdate",
    "apply_draft",
    "compact_json",
    "count_severities",
    "strict_json",
    "utcnow",
]


class Status(StrEnum):
    """`pending` -> `connecting` -> what the scanner reports among `initializing`, `cloning`,
    `analyzing`, `scanning`, `processing`, `saving` -> `completed` or `failed` (or
    `cancelled`)"""

    PENDING = "pending"
    CONNECTING = "connecting"
    INITIALIZING = "initializing"
    CLONING = "cloning"
    ANALYZING = "analyzing"
    SCANNING = "scanning"
    PROCESSING = "processing"
    SAVING = "saving"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
# The statuses a scanner may report while it works.
RUNNING_STATUSES = frozenset(
    {
        Status.INITIALIZING,
        Status.CLONING,
        Status.ANALYZING,
        Status.SCANNING,
        Status.PROCESSING,
        Status.SAVING,
    }
)
Count = Annotated[int, msgspec.Meta(ge=0)]


class SeveritySummary(msgspec.Struct, forbid_unknown_fields=True):
    """how many findings have each severity"""

    critical: Count
    high: Count
    medium: Count
    low: Count
    info: Count
    unknown: Count


SEVERITIES = tuple(SeveritySummary.__struct_fields__)


class EventPayload(msgspec.Struct, forbid_unknown_fields=True):
    """The `data:` of each unnamed event of the stream; `summary` and `findings_dropped` only
    on the `completed` event, `extra` when the scanner's message had fields of its own."""

    scan_id: str
    status: Status
    progress_percent: Annotated[int, msgspec.Meta(ge=0, le=100)]
    progress_text: str
    error: str | None
    timestamp: Annotated[
        str,
        msgspec.Meta(
            description="when the event was stored", extra_json_schema={"format": "date-time"}
        ),
    ]
    summary: SeveritySummary | UnsetType = UNSET
    findings_dropped: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                description="on the `completed` event: findings past the scan's bounds, not kept",
            ),
        ]
        | UnsetType
    ) = UNSET
    extra: (
        Annotated[
            dict[str, str | int | float | bool | None],
            msgspec.Meta(
                max_length=16,
                description="The scanner message's other scalar fields (at most 16; strings cut "
                "at 256 characters).",
            ),
        ]
        | UnsetType
    ) = UNSET


def compact_json(value: Any) -> str:
    """JSON without spaces or line breaks: what the log stores and SSE ``data:`` lines carry.
    ValueError for NaN or an infinity, which JSON cannot hold."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def strict_json(value: Any) -> str:
    """JSON as ``json.dumps`` writes it, but ValueError for NaN or an infinity (which it
    would write as the non-JSON ``NaN``/``Infinity``): every JSON body the gateway sends."""
    return json.dumps(value, allow_nan=False)


def count_severities(severities: Iterable[object]) -> dict[str, int]:
    """How many of ``severities`` (stored findings' ``severity``) are each of ``SEVERITIES``,
    every one present in order; anything else counts as ``unknown``."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for severity in severities:
        counts[severity if isinstance(severity, str) and severity in counts else "unknown"] += 1
    return counts


@dataclass(frozen=True, slots=True)
class FindingsPage:
    """A page of a completed scan's findings, and what holds for all of them."""

    vulnerabilities: list[dict[str, Any]]
    summary: dict[str, int]  # severity counts of every finding kept, not only this page's
    dropped: int = 0  # findings past the scan's bounds, not kept

    @property
    def total(self) -> int:
        return sum(self.summary.values())


def utcnow() -> str:
    """The current time as ISO-8601 UTC, the form every timestamp takes."""
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class UpstreamUpdate:
    """One upstream progress message, normalised but not yet applied to a scan.

    ``None`` means the upstream did not say; the runner keeps the previous value.
    """

    status: Status | None = None
    progress_percent: int | None = None
    progress_text: str | None = None
    error: str | None = None
    vulnerabilities: tuple[dict[str, Any], ...] = ()
    extra: tuple[tuple[str, object], ...] = ()  # the message's other scalar fields, bounded
    findings_over: int = 0  # findings past ``max_findings``: counted, never normalised

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class ScanRecord:
    scan_id: str
    owner: str
    repository_name: str
    scanner_name: str
    sse_enabled: bool
    configurations: dict[str, Any]
    status: Status
    progress_percent: int
    progress_text: str
    error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None
    last_seq: int
    skipped_events: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a scan's log: ``seq`` is its number (without gaps, from 1), ``data`` its
    payload as compact JSON text."""

    scan_id: str
    seq: int
    data: str
    terminal: bool

    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


@dataclass(frozen=True, slots=True)
class NewScan:
    scan_id: str
    owner: str
    repository_name: str
    scanner_name: str
    sse_enabled: bool
    configurations: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventDraft:
    """A change to a scan, before the log gives it a sequence number."""

    status: Status
    progress_percent: int | None = None
    progress_text: str | None = None
    error: str | None = None
    summary: dict[str, int] | None = None  # severity counts, on the completed event
    findings_dropped: int | None = None  # findings past the scan's bounds, on completion
    extra: tuple[tuple[str, object], ...] = ()  # scanner-specific scalars, passed through


@dataclass(frozen=True, slots=True)
class ScanState:
    """The part of a scan record that events change."""

    status: Status
    progress_percent: int
    progress_text: str
    error: str | None
    last_seq: int

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ScanFinished(Exception):
    """An event was appended to a scan whose log already ended."""


def apply_draft(
    scan_id: str, state: ScanState, draft: EventDraft
) -> tuple[ScanState, dict[str, Any]]:
    """The scan's next state and the event payload a draft produces.

    Every backend calls this, so the rules hold whatever stores the log: sequence numbers
    without gaps, progress that never goes backwards, 100 on completion, nothing after the end.
    """
    if state.terminal:
        raise ScanFinished(f"scan {scan_id} already ended {state.status.value}")
    progress = state.progress_percent
    if draft.progress_percent is not None:
        progress = max(progress, min(100, max(0, draft.progress_percent)))
    if draft.status is Status.COMPLETED:
        progress = 100
    text = draft.progress_text if draft.progress_text is not None else state.progress_text
    error = draft.error if draft.status is Status.FAILED else None
    new = ScanState(draft.status, progress, text, error, state.last_seq + 1)
    event = EventPayload(
        scan_id=scan_id,
        status=new.status,
        progress_percent=new.progress_percent,
        progress_text=new.progress_text,
        error=new.error,
        timestamp=utcnow(),
    )
    if draft.summary is not None:
        event.summary = msgspec.convert(draft.summary, SeveritySummary)
    if draft.findings_dropped is not None:
        event.findings_dropped = draft.findings_dropped
    if draft.extra:
        event.extra = dict(draft.extra)  # type: ignore[arg-type]  # scalars, as UpstreamUpdate's
    payload: dict[str, Any] = msgspec.to_builtins(event)
    return new, payload


def new_scan(scan: NewScan, first: EventDraft) -> tuple[ScanRecord, Event]:
    """A new scan's record and its first event (sequence 1), whichever store keeps them."""
    start = ScanState(Status.PENDING, 0, "", None, 0)
    state, payload = apply_draft(scan.scan_id, start, first)
    now = payload["timestamp"]
    event = Event(scan.scan_id, state.last_seq, compact_json(payload), state.terminal)
    record = ScanRecord(
        scan_id=scan.scan_id,
        owner=scan.owner,
        repository_name=scan.repository_name,
        scanner_name=scan.scanner_name,
        sse_enabled=scan.sse_enabled,
        configurations=scan.configurations,
        status=state.status,
        progress_percent=state.progress_percent,
        progress_text=state.progress_text,
        error=state.error,
        created_at=now,
        updated_at=now,
        finished_at=now if state.terminal else None,
        last_seq=state.last_seq,
    )
    return record, event
