"""A collection's aggregator: its children's events in, the collection's log out.

One task per running collection follows each child's log (``follow.follow_log``: the log,
then live, each event once) and turns every child event into one collection event: the
collection's status and progress after it, the child event, and the findings new in it (a
completed child's findings, a page per event, each with its fingerprint). The event and the
cursors into the children's logs are stored together, so whoever resumes the collection (this
process after a restart, another replica after this one died) carries on exactly where it
stopped: no event twice, none missing. The last event is terminal and carries the merged
findings' summary; the merged findings are stored with it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import msgspec
from msgspec import UNSET

from gateway.config import FindingsConfig
from gateway.domain.collections import (
    COLLECTION_TERMINAL,
    ChildEvent,
    ChildState,
    CollectionEventPayload,
    CollectionProgress,
    CollectionRecord,
    CollectionStatus,
    CollectionUpdate,
    MergedSummary,
    aggregate,
)
from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import Event, Status, utcnow
from gateway.engine.collection_store import CollectionStore
from gateway.engine.follow import follow_log
from gateway.engine.hub import Bus
from gateway.engine.store import Store
from gateway.report.fingerprint import fingerprint
from gateway.report.merge import merge_findings, summary

__all__ = ["Aggregator"]

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 0.05, 1.0  # seconds between appends while the store is away


class Aggregator:
    def __init__(
        self,
        record: CollectionRecord,
        store: Store,
        bus: Bus,
        collections: CollectionStore,
        findings: FindingsConfig,
    ) -> None:
        self._id = record.collection_id
        self._children = dict(record.children)
        self._last_seq = record.last_seq
        self._store = store
        self._bus = bus
        self._collections = collections
        self._findings = findings
        self._lock = asyncio.Lock()  # one append at a time, whichever child caused it
        # How the collection ended, once this aggregator stored its terminal event.
        self.outcome: CollectionStatus | None = None

    async def run(self) -> None:
        """Follow the children until the collection's terminal event is stored."""
        for scan_id, child in list(self._children.items()):
            if child.status is Status.COMPLETED:  # stopped between two pages of its findings
                page_left = await self._findings_left(scan_id, child)
                if page_left:
                    await self._send_findings(scan_id, await self._child_event(scan_id, child))
        async with asyncio.TaskGroup() as group:
            for scan_id, child in self._children.items():
                if not child.terminal:
                    group.create_task(self._follow(scan_id, child.seq))

    async def _follow(self, scan_id: str, after: int) -> None:
        async def handle(event: Event) -> None:
            await self._on_event(scan_id, event)

        await follow_log(self._store, self._bus, scan_id, after, handle)

    async def _on_event(self, scan_id: str, event: Event) -> None:
        async with self._lock:
            payload = event.payload()
            child = replace(
                self._children[scan_id],
                seq=event.seq,
                status=Status(payload["status"]),
                progress_percent=int(payload["progress_percent"]),
                findings_sent=0,
            )
            caused_by = ChildEvent(
                scan_id=scan_id,
                scanner_name=child.scanner_name,
                event_id=event.seq,
                status=child.status,
                progress_percent=child.progress_percent,
                progress_text=payload["progress_text"],
                error=payload["error"],
                extra=payload.get("extra", UNSET),
            )
            if child.status is Status.COMPLETED:
                self._children[scan_id] = child
                await self._send_findings(scan_id, caused_by)
            else:
                await self._append(scan_id, child, caused_by, [], 0)

    async def _send_findings(self, scan_id: str, caused_by: ChildEvent) -> None:
        """A completed child's findings, a page (``findings.page_size``,
        ``findings.max_page_bytes``) per event; one event when it found nothing."""
        child = self._children[scan_id]
        start = child.findings_sent
        while True:
            page = await self._store.findings_page(
                scan_id,
                start=start,
                limit=self._findings.page_size,
                max_bytes=self._findings.max_page_bytes,
            )
            found = [
                {**finding, "fingerprint": fingerprint(finding)} for finding in page.vulnerabilities
            ]
            start += len(found)
            left = page.total - start if found else 0
            child = replace(child, findings_sent=start)
            await self._append(scan_id, child, caused_by, found, left)
            if left <= 0:
                return

    async def _findings_left(self, scan_id: str, child: ChildState) -> bool:
        page = await self._store.findings_page(scan_id, start=0, limit=1)
        return child.findings_sent < page.total

    async def _child_event(self, scan_id: str, child: ChildState) -> ChildEvent:
        """The child event a cursor points at, read back from the child's log."""
        [event] = await self._store.events_after(scan_id, child.seq - 1, limit=1)
        payload = event.payload()
        return ChildEvent(
            scan_id=scan_id,
            scanner_name=child.scanner_name,
            event_id=event.seq,
            status=Status(payload["status"]),
            progress_percent=int(payload["progress_percent"]),
            progress_text=payload["progress_text"],
            error=payload["error"],
            extra=payload.get("extra", UNSET),
        )

    async def _append(
        self,
        scan_id: str,
        child: ChildState,
        caused_by: ChildEvent,
        found: list[dict[str, Any]],
        left: int,
    ) -> None:
        children = {**self._children, scan_id: child}
        ended = left == 0 and all(state.terminal for state in children.values())
        cancel = ended and await self._cancel_requested()
        status, progress = aggregate(children, cancel_requested=cancel)
        if not ended and status in COLLECTION_TERMINAL:
            status = CollectionStatus.RUNNING  # a last page of findings is still to come
        payload = CollectionEventPayload(
            collection_id=self._id,
            collection=CollectionProgress(status=status, progress_percent=progress),
            scan=caused_by,
            findings=found,
            timestamp=utcnow(),
            findings_remaining=left,
        )
        update = CollectionUpdate(payload, children, status, progress)
        if ended:
            merged = merge_findings(await self._all_findings(children))
            totals = summary(merged)
            payload.summary = msgspec.convert(totals, MergedSummary)
            update = replace(update, merged=merged, summary=totals)
        event = await self._store_update(update)
        self._children = children
        self._last_seq = event.seq
        if update.terminal:
            self.outcome = update.status

    async def _store_update(self, update: CollectionUpdate) -> Event:
        """Append, waiting while the store does not answer (the children wait likewise)."""
        delay = RETRY_FIRST
        while True:
            try:
                return await self._collections.append(self._id, update, after=self._last_seq)
            except StoreUnavailable as exc:
                log.warning("collection %s: %s; retrying in %.2f s", self._id, exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    async def _cancel_requested(self) -> bool:
        record = await self._collections.get(self._id)
        return record is not None and record.cancel_requested

    async def _all_findings(
        self, children: dict[str, ChildState]
    ) -> dict[str, list[dict[str, Any]]]:
        """Every completed child's findings, by scanner (each bounded by ``findings.*``)."""
        per_scanner: dict[str, list[dict[str, Any]]] = {}
        for scan_id, child in children.items():
            found: list[dict[str, Any]] = []
            if child.status is Status.COMPLETED:
                while True:
                    page = await self._store.findings_page(
                        scan_id, start=len(found), limit=self._findings.max_page_size
                    )
                    found += page.vulnerabilities
                    if not page.vulnerabilities or len(found) >= page.total:
                        break
            per_scanner[child.scanner_name] = found
        return per_scanner
