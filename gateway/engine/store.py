"""The store interface. Routes and the runner use only this; backends implement it.

Beside it, what every backend writes the same way: the event and record fields an append
produces (``next_event``), and the results' tally (``findings_tally``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.domain.models import (
    Event,
    EventDraft,
    FindingsPage,
    NewScan,
    ScanRecord,
    ScanState,
    Status,
    apply_draft,
    compact_json,
    count_severities,
)

__all__ = ["Appended", "Store", "findings_tally", "next_event"]

log = logging.getLogger(__name__)


class Store(ABC):
    """Scan records, each scan's append-only event log, and its vulnerabilities.

    ``append_event`` is atomic: the event, the record's new state and (on completion) the
    results are written together, and sequence numbers have no gaps. The results are the
    ``vulnerabilities`` given with the completed event, and the ``findings_dropped`` its draft
    counts; they are read a page at a time.
    """

    # How long a write that found the store unavailable waits for it to come back before the
    # writer gives up (a shared store can return; an embedded one fails for good, so 0).
    retry_seconds: float = 0
    # Whether other processes serve the same logs: a process that stops can leave its streams
    # to them (a shared store), or has to serve them to the end itself (an embedded one).
    shared: bool = False

    def __init__(self) -> None:
        self._listeners: list[Callable[[Event], None]] = []

    def on_append(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event once it is durably appended, in log order,
        whether or not the caller that appended it is still waiting."""
        self._listeners.append(listener)

    def _notify(self, events: Sequence[Event]) -> None:
        """Tell the listeners (a backend calls this after each commit)."""
        for event in events:
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # one listener's bug must not stop the others or the store
                    log.exception("append listener failed for scan %s", event.scan_id)

    def on_lost(self, callback: Callable[[str], None]) -> None:  # noqa: B027 (optional hook)
        """Call ``callback`` with the id of a scan this process runs once another process has
        ended it (a shared store only; the embedded one has no other process)."""

    def release(self, scan_id: str) -> None:  # noqa: B027 (optional hook)
        """This process gives up a scan it could not end (a shared store only: another
        process then ends it, as it would if this one had died)."""

    @abstractmethod
    async def create_scan(self, scan: NewScan, first: EventDraft) -> tuple[ScanRecord, Event]:
        """Store a new scan and its first event (sequence 1)."""

    @abstractmethod
    async def append_event(
        self,
        scan_id: str,
        draft: EventDraft,
        *,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        skipped_events: int | None = None,
    ) -> Event:
        """Append one event; raises ``ScanFinished`` once the log has its terminal event."""

    @abstractmethod
    async def get_scan(self, scan_id: str) -> ScanRecord | None: ...

    @abstractmethod
    async def list_scans(
        self, owner: str, *, limit: int, status: Status | None = None
    ) -> list[ScanRecord]:
        """The owner's scans, newest first."""

    @abstractmethod
    async def events_after(self, scan_id: str, after: int, *, limit: int) -> list[Event]:
        """Up to ``limit`` events with a sequence number above ``after``, in order."""

    @abstractmethod
    async def findings_page(
        self, scan_id: str, *, start: int, limit: int, max_bytes: int | None = None
    ) -> FindingsPage:
        """Up to ``limit`` findings from the 0-based index ``start``, in the order stored, with
        the severity summary and the dropped count of all of them (none for an unknown scan).

        With ``max_bytes``, the page ends before the finding that would take its stored JSON
        past that many bytes (it always holds at least one), so no read holds more."""

    @abstractmethod
    async def interrupt_unfinished(self, reason: str) -> list[Event]:
        """End every scan left running by an earlier process ``failed`` with ``reason``."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""

    @abstractmethod
    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Appended:
    """What one append writes: its event, and the record's fields it sets (None: cleared)."""

    event: Event
    changes: dict[str, str | int | None]


def next_event(
    scan_id: str, state: ScanState, draft: EventDraft, skipped_events: int | None
) -> Appended:
    """The event ``draft`` makes of a scan in ``state``, and the record's changed fields
    (``apply_draft`` keeps the log's rules; raises ``ScanFinished`` after the end)."""
    new, payload = apply_draft(scan_id, state, draft)
    now = payload["timestamp"]
    changes: dict[str, str | int | None] = {
        "status": new.status.value,
        "progress_percent": new.progress_percent,
        "progress_text": new.progress_text,
        "error": new.error,
        "updated_at": now,
        "last_seq": new.last_seq,
    }
    if new.terminal:
        changes["finished_at"] = now
    if skipped_events is not None:
        changes["skipped_events"] = skipped_events
    return Appended(Event(scan_id, new.last_seq, compact_json(payload), new.terminal), changes)


def findings_tally(
    vulnerabilities: Sequence[Mapping[str, Any]], findings_dropped: int | None
) -> tuple[dict[str, int], int] | None:
    """What holds for all of a scan's results, stored with them: the severity summary and the
    dropped count; None when the append records no results."""
    if not vulnerabilities and findings_dropped is None:
        return None
    summary = count_severities(vuln.get("severity") for vuln in vulnerabilities)
    return summary, findings_dropped or 0
