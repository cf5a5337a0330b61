"""The scan runner: one task per running scan, turning a source of messages into log events.

A source is an async iterator of raw upstream messages: the scanner's stream in SSE mode, the
simulation in mock mode. Both go through the same normalisation, log and channels, so clients
cannot tell them apart. Every scan ends with a terminal event, whatever goes wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from .config import Config
from .hub import Bus
from .models import Event, EventDraft, ScanFinished, ScanRecord, Status
from .normalise import UpstreamFormatError, normalise_update, severity_summary
from .store import Store
from .upstream import Malformed, UpstreamError

__all__ = ["ScanRunner", "SourceFactory"]

log = logging.getLogger(__name__)

# Builds the message source for a scan: (scan) -> async iterator of raw messages.
SourceFactory = Callable[[ScanRecord], AsyncGenerator[object, None]]


class ScanRunner:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        config: Config,
        *,
        upstream: SourceFactory,
        simulation: SourceFactory,
    ) -> None:
        self._store = store
        self._bus = bus
        self._config = config
        self._upstream = upstream
        self._simulation = simulation
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        return len(self._tasks)

    def start(self, scan: ScanRecord) -> None:
        """Run the scan in a task the runner owns; ``close`` ends them all."""
        task = asyncio.create_task(self._run(scan), name=f"scan-{scan.scan_id}")
        self._tasks[scan.scan_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(scan.scan_id, None))

    async def join(self) -> None:
        """Wait until every scan running now has ended."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def record(
        self,
        scan_id: str,
        draft: EventDraft,
        *,
        vulnerabilities: Sequence[Mapping[str, Any]] = (),
        skipped_events: int | None = None,
    ) -> Event:
        """Append an event to the log, then hand it to the live subscribers."""
        event = await self._store.append_event(
            scan_id, draft, vulnerabilities=vulnerabilities, skipped_events=skipped_events
        )
        self._bus.publish(event)
        return event

    async def _run(self, scan: ScanRecord) -> None:
        try:
            await self._execute(scan)
        except ScanFinished:
            pass  # someone else ended it (a cancel); nothing more to say
        except UpstreamError as exc:
            log.warning("scan %s failed: %s (%s)", scan.scan_id, exc.message, exc.kind)
            await self._fail(scan.scan_id, exc.message)
        except asyncio.CancelledError:
            await self._fail(scan.scan_id, "interrupted: gateway shutting down")
            raise
        except Exception:
            log.exception("scan %s crashed", scan.scan_id)
            await self._fail(scan.scan_id, "internal error in the gateway")

    async def _fail(self, scan_id: str, reason: str) -> None:
        with contextlib.suppress(ScanFinished):
            await self.record(
                scan_id, EventDraft(Status.FAILED, progress_text=reason, error=reason)
            )

    async def _execute(self, scan: ScanRecord) -> None:
        target = scan.scanner_name
        await self.record(
            scan.scan_id, EventDraft(Status.CONNECTING, progress_text=f"Connecting to {target}...")
        )
        source = self._upstream(scan) if scan.sse_enabled else self._simulation(scan)
        limits = self._config.upstream
        deadline = asyncio.timeout(limits.scan_timeout_seconds)
        try:
            async with deadline:
                await _Consumer(self, scan).consume(source, limits.idle_timeout_seconds)
        except TimeoutError:
            if not deadline.expired():
                raise
            seconds = limits.scan_timeout_seconds
            raise UpstreamError("scan_timeout", f"scan exceeded its {seconds:g} s limit") from None


class _Consumer:
    """The state of one scan while its source runs."""

    def __init__(self, runner: ScanRunner, scan: ScanRecord) -> None:
        self.runner = runner
        self.scan = scan
        self.vulnerabilities: list[dict[str, Any]] = []
        self.skipped = 0
        self.status = Status.SCANNING
        self.last: tuple[Status, int | None, str | None] | None = None

    async def consume(self, source: AsyncGenerator[object, None], idle_seconds: float) -> None:
        async with contextlib.aclosing(source):
            while True:
                try:
                    async with asyncio.timeout(idle_seconds):
                        message = await anext(source)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    name = self.scan.scanner_name
                    raise UpstreamError(
                        "idle_timeout", f"{name} sent no event for {idle_seconds:g} s"
                    ) from None
                if await self.handle(message):
                    return
        raise UpstreamError(
            "ended", f"{self.scan.scanner_name} ended its stream without a terminal event"
        )

    async def handle(self, message: object) -> bool:
        """Apply one message; True once the scan has ended."""
        if isinstance(message, Malformed):
            return self.skip(f"malformed JSON: {message.text[:80]!r}")
        try:
            update = normalise_update(
                message, scanner=self.scan.scanner_name, start_index=len(self.vulnerabilities)
            )
        except UpstreamFormatError as exc:
            return self.skip(str(exc))
        self.vulnerabilities.extend(update.vulnerabilities)
        if update.status is Status.COMPLETED:
            await self.complete(update.progress_text)
            return True
        if update.status is Status.FAILED:
            error = update.error or "scanner reported failure"
            await self.runner.record(
                self.scan.scan_id,
                EventDraft(Status.FAILED, progress_text=update.progress_text or error, error=error),
                skipped_events=self.skipped,
            )
            return True
        if update.status is not None:
            self.status = update.status
        key = (self.status, update.progress_percent, update.progress_text)
        said = update.status or update.progress_percent is not None or update.progress_text
        if said and key != self.last:
            self.last = key
            await self.runner.record(
                self.scan.scan_id,
                EventDraft(self.status, update.progress_percent, update.progress_text),
            )
        return False

    def skip(self, why: str) -> bool:
        self.skipped += 1
        log.warning("scan %s: skipped an upstream message (%s)", self.scan.scan_id, why)
        return False

    async def complete(self, text: str | None) -> None:
        summary = severity_summary(self.vulnerabilities)
        count = len(self.vulnerabilities)
        found = f"{count} vulnerabilit{'y' if count == 1 else 'ies'} found"
        await self.runner.record(
            self.scan.scan_id,
            EventDraft(
                Status.COMPLETED,
                100,
                f"{text.rstrip('.')}: {found}." if text else f"Scan complete: {found}.",
                summary=summary,
            ),
            vulnerabilities=self.vulnerabilities,
            skipped_events=self.skipped,
        )
