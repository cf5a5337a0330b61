"""Scan collections: several scanners on one repository, watched and reported as one.

A collection is an aggregate of scans (its children). It has a log of its own, kept by the
same store as the scans' logs under its own id namespace (``log_id``): each entry is one
``CollectionEventPayload``, caused by one child event, numbered 1, 2, 3, ... without gaps.
What the aggregate's status and progress are follows from its children's (``aggregate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from gateway.domain.models import TERMINAL_STATUSES, Status

__all__ = [
    "COLLECTION_TERMINAL",
    "LOG_PREFIX",
    "ChildEvent",
    "ChildState",
    "CollectionEventPayload",
    "CollectionFinished",
    "CollectionLost",
    "CollectionProgress",
    "CollectionRecord",
    "CollectionStatus",
    "CollectionUpdate",
    "MergedSummary",
    "NewCollection",
    "aggregate",
    "log_id",
]

# A collection's log id: a namespace no scan id (a UUID) can enter.
LOG_PREFIX = "collection:"


def log_id(collection_id: str) -> str:
    return LOG_PREFIX + collection_id


class CollectionStatus(StrEnum):
    """`pending` until a child moves, `running` until all have ended, then `completed` (all
    completed), `failed` (one failed) or `cancelled` (cancelled through the collection, or a
    child cancelled and none failed)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


COLLECTION_TERMINAL = frozenset(
    {CollectionStatus.COMPLETED, CollectionStatus.FAILED, CollectionStatus.CANCELLED}
)
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
Count = Annotated[int, msgspec.Meta(ge=0)]


@dataclass(frozen=True, slots=True)
class ChildState:
    """What the collection has taken in of one child: the id of the child's last event it
    turned into a collection event (its cursor), that event's status and progress, and how
    many of the child's findings it has sent (a completed child's findings go out a page per
    event)."""

    scanner_name: str
    seq: int = 0
    status: Status = Status.PENDING
    progress_percent: int = 0
    findings_sent: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_json(self) -> list[Any]:
        return [self.scanner_name, self.seq, self.status.value, self.progress_percent,
                self.findings_sent]  # fmt: skip

    @classmethod
    def from_json(cls, value: list[Any]) -> ChildState:
        name, seq, status, progress, sent = value
        return cls(name, int(seq), Status(status), int(progress), int(sent))


def aggregate(
    children: Mapping[str, ChildState], *, cancel_requested: bool
) -> tuple[CollectionStatus, int]:
    """The collection's status and progress (the mean of its children's, rounded down, so it
    never goes backwards and is 100 only when every child is)."""
    states = list(children.values())
    progress = sum(child.progress_percent for child in states) // max(1, len(states))
    if not all(child.terminal for child in states):
        moving = any(child.status is not Status.PENDING for child in states)
        return (CollectionStatus.RUNNING if moving else CollectionStatus.PENDING), progress
    statuses = {child.status for child in states}
    if cancel_requested and Status.CANCELLED in statuses:
        return CollectionStatus.CANCELLED, progress
    if Status.FAILED in statuses:
        return CollectionStatus.FAILED, progress
    if Status.CANCELLED in statuses:
        return CollectionStatus.CANCELLED, progress
    return CollectionStatus.COMPLETED, progress


@dataclass(frozen=True, slots=True)
class NewCollection:
    collection_id: str
    owner: str
    repository_name: str
    sse_enabled: bool
    children: dict[str, ChildState]  # scan id -> state, in the order the scanners were asked

    def record(self, now: str) -> CollectionRecord:
        """The collection as stored when created at ``now``: pending, its log empty."""
        return CollectionRecord(
            collection_id=self.collection_id,
            owner=self.owner,
            repository_name=self.repository_name,
            sse_enabled=self.sse_enabled,
            children=self.children,
            status=CollectionStatus.PENDING,
            progress_percent=0,
            created_at=now,
            updated_at=now,
            finished_at=None,
            last_seq=0,
        )


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    collection_id: str
    owner: str
    repository_name: str
    sse_enabled: bool
    children: dict[str, ChildState]
    status: CollectionStatus
    progress_percent: int
    created_at: str
    updated_at: str
    finished_at: str | None
    last_seq: int
    cancel_requested: bool = False
    summary: dict[str, Any] | None = None  # the merged findings' summary, once ended

    @property
    def terminal(self) -> bool:
        return self.status in COLLECTION_TERMINAL

    @property
    def scan_ids(self) -> list[str]:
        return list(self.children)

    @property
    def scanners(self) -> list[str]:
        return [child.scanner_name for child in self.children.values()]

    @property
    def log_id(self) -> str:
        return log_id(self.collection_id)

    def with_update(self, update: CollectionUpdate, seq: int, now: str) -> CollectionRecord:
        return replace(
            self,
            children=update.children,
            status=update.status,
            progress_percent=update.progress_percent,
            updated_at=now,
            finished_at=now if update.terminal else None,
            last_seq=seq,
            summary=update.summary if update.terminal else self.summary,
        )


class CollectionProgress(msgspec.Struct, forbid_unknown_fields=True):
    """The collection as a whole (what the Xployt frontend reads)."""

    status: CollectionStatus
    progress_percent: Percent


class ChildEvent(msgspec.Struct, forbid_unknown_fields=True):
    """The child's event that caused a collection event."""

    scan_id: str
    scanner_name: str
    event_id: Annotated[int, msgspec.Meta(ge=1, description="its id in the scan's own stream")]
    status: Status
    progress_percent: Percent
    progress_text: str
    error: str | None
    extra: (
        Annotated[
            dict[str, str | int | float | bool | None],
            msgspec.Meta(
                max_length=16,
                description="the scan event's `extra`, when it has one (the scanner message's "
                "other scalar fields)",
            ),
        ]
        | UnsetType
    ) = UNSET


class MergedSummary(msgspec.Struct, forbid_unknown_fields=True):
    """The merged findings (one per fingerprint) counted by severity."""

    total: Count
    by_severity: dict[str, Count]


class CollectionEventPayload(msgspec.Struct, forbid_unknown_fields=True):
    """The `data:` of each event of a collection's stream: the collection's status and
    progress, the child event that caused it, and the findings new in it (a completed child's
    findings, each with its `fingerprint`, a page per event; never a finding twice). The
    terminal event adds the merged `summary`."""

    collection_id: str
    collection: CollectionProgress
    scan: ChildEvent
    findings: list[dict[str, Any]]
    timestamp: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
    findings_remaining: Annotated[
        int,
        msgspec.Meta(ge=0, description="the child's findings still to come in later events"),
    ] = 0
    summary: MergedSummary | UnsetType = UNSET


@dataclass(frozen=True, slots=True)
class CollectionUpdate:
    """One append to a collection's log: the payload (the store numbers it) and the state
    it leaves the collection in; on the terminal one, the merged findings and their summary."""

    payload: CollectionEventPayload
    children: dict[str, ChildState]
    status: CollectionStatus
    progress_percent: int
    merged: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in COLLECTION_TERMINAL


class CollectionFinished(Exception):
    """An event was appended to a collection whose log already ended."""


class CollectionLost(Exception):
    """This process no longer holds the collection (another one took it over)."""
