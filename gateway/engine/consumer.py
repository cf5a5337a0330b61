"""One scan's source read to its end: each upstream message normalised, findings kept within
the scan's bounds, malformed messages counted, and the scan's events handed to the runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Protocol

from gateway.config import Config
from gateway.domain.errors import UpstreamFault
from gateway.domain.models import Event, EventDraft, ScanRecord, Status
from gateway.scanners.client import Malformed, UpstreamError, idle_error
from gateway.scanners.findings import FindingsBudget
from gateway.scanners.normalise import UpstreamFormatError, normalise_update
from gateway.scanners.vulnerability import severity_summary

__all__ = ["Record", "ScanConsumer"]

log = logging.getLogger(__name__)


class Record(Protocol):
    """Appends an event to a scan's log (``ScanRunner.record``)."""

    async def __call__(
        self,
        scan_id: str,
        draft: EventDraft,
        *,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        skipped_events: int | None = None,
    ) -> Event: ...


# Messages handled between two turns given to the event loop: a scanner's buffered burst of
# small messages that change nothing (so nothing awaits a write) must not stall other work.
_YIELD_EVERY = 64
# Skipped messages logged one by one per scan; the rest are counted (skipped_events).
_LOGGED_SKIPS = 10


class ScanConsumer:
    """The state of one scan while its source runs: its messages become log events through
    ``record`` (the runner's append, with its retries)."""

    def __init__(self, scan: ScanRecord, config: Config, record: Record) -> None:
        self.scan = scan
        self.config = config
        self.record = record
        self.findings = FindingsBudget(config.findings)
        self.skipped = 0
        self.status = Status.SCANNING
        self.last: tuple[object, ...] | None = None

    async def consume(self, source: AsyncGenerator[object, None], idle_seconds: float) -> None:
        handled = 0
        async with contextlib.aclosing(source):
            while True:
                try:
                    async with asyncio.timeout(idle_seconds):
                        message = await anext(source)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise idle_error(self.scan.scanner_name, idle_seconds) from None
                if await self.handle(message):
                    return
                handled += 1
                if handled % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        raise UpstreamError(
            UpstreamFault.ENDED,
            f"{self.scan.scanner_name} ended its stream without a terminal event",
        )

    async def handle(self, message: object) -> bool:
        """Apply one message; True once the scan has ended."""
        if isinstance(message, Malformed):
            return self.skip(f"malformed JSON, {message.reason}: {message.text[:80]!r}")
        try:
            update = normalise_update(
                message,
                scanner=self.scan.scanner_name,
                start_index=len(self.findings.kept) + self.findings.dropped,
                limits=self.config.findings,
                max_findings=self.findings.room,
            )
        except UpstreamFormatError as exc:
            return self.skip(str(exc))
        self.keep(update.vulnerabilities, update.findings_over)
        if update.status is Status.COMPLETED:
            await self.complete(update.progress_text)
            return True
        if update.status is Status.FAILED:
            error = update.error or "scanner reported failure"
            await self.record(
                self.scan.scan_id,
                EventDraft(
                    Status.FAILED, update.progress_percent, update.progress_text or error, error
                ),
                skipped_events=self.skipped,
            )
            return True
        if update.status is not None:
            self.status = update.status
        key = (self.status, update.progress_percent, update.progress_text, update.extra)
        said = update.status or update.progress_percent is not None or update.progress_text
        if (said or update.extra) and key != self.last:
            self.last = key
            await self.record(
                self.scan.scan_id,
                EventDraft(
                    self.status, update.progress_percent, update.progress_text, extra=update.extra
                ),
            )
        return False

    def keep(self, findings: Sequence[dict[str, Any]], over: int) -> None:
        dropped = self.findings.dropped
        self.findings.add(findings)
        self.findings.drop(over)
        if self.findings.dropped and not dropped:
            log.warning(
                "scan %s: findings past the bounds of a scan (%d kept, %d bytes) are dropped",
                self.scan.scan_id,
                len(self.findings.kept),
                self.findings.bytes,
            )

    def skip(self, why: str) -> bool:
        self.skipped += 1
        limit = self.config.upstream.max_malformed_messages
        if self.skipped > limit:
            raise UpstreamError(
                UpstreamFault.TOO_MANY_MALFORMED,
                f"{self.scan.scanner_name} sent more than {limit} malformed messages "
                "(upstream.max_malformed_messages)",
            )
        if self.skipped <= _LOGGED_SKIPS:
            log.warning("scan %s: skipped an upstream message (%s)", self.scan.scan_id, why)
            if self.skipped == _LOGGED_SKIPS:
                log.warning(
                    "scan %s: later skipped messages are counted, not logged", self.scan.scan_id
                )
        return False

    async def complete(self, text: str | None) -> None:
        kept, dropped = self.findings.kept, self.findings.dropped
        count = len(kept)
        found = f"{count} vulnerabilit{'y' if count == 1 else 'ies'} found"
        if dropped:
            found += f"; {dropped} more dropped, past the gateway's limits for one scan"
        await self.record(
            self.scan.scan_id,
            EventDraft(
                Status.COMPLETED,
                100,
                f"{text.rstrip('.')}: {found}." if text else f"Scan complete: {found}.",
                summary=severity_summary(kept),
                findings_dropped=dropped,
            ),
            vulnerabilities=kept,
            skipped_events=self.skipped,
        )
