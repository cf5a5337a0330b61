"""The scan runner: one task per running scan, turning a source of messages into log events.

A source is an async iterator of raw upstream messages: the scanner's stream in SSE mode, the
simulation in mock mode. Both go through the same normalisation, log and channels, so clients
cannot tell them apart. Every scan ends with a terminal event, whatever goes wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from gateway.config import Config
from gateway.domain.errors import Draining, LimitExceeded, StoreUnavailable, UpstreamFault
from gateway.domain.log_context import scan_id_var
from gateway.domain.models import (
    TERMINAL_STATUSES,
    Event,
    EventDraft,
    NewScan,
    ScanFinished,
    ScanRecord,
    Status,
)
from gateway.engine.consumer import ScanConsumer
from gateway.engine.hub import Bus
from gateway.engine.instruments import Metrics
from gateway.engine.store import Store
from gateway.scanners.client import UpstreamError

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
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._config = config
        self._upstream = upstream
        self._simulation = simulation
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._owners: Counter[str] = Counter()  # running or admitted scans per subject
        self._cancel_requested: set[str] = set()
        self._abandoned: set[str] = set()  # ended elsewhere: stop without writing
        self._closing = False
        self._draining = False
        self._idle = asyncio.Event()  # set while no scan runs
        self._idle.set()
        self._metrics = metrics
        self._started: dict[str, tuple[str, float]] = {}  # scan -> (scanner, start time)
        self._last_seq: dict[str, int] = {}  # scan -> its log's last sequence number

    @property
    def running(self) -> int:
        return len(self._tasks)

    def drain(self) -> None:
        """Start no new scan from now on (``Draining``); the running ones carry on."""
        self._draining = True

    async def idle(self) -> None:
        """Return once no scan runs."""
        await self._idle.wait()

    def _admit(self, owner: str) -> None:
        """Count one more scan for ``owner``, or refuse it (429)."""
        limits = self._config.limits
        if self._owners.total() >= limits.max_running_scans:
            raise LimitExceeded(
                f"the gateway runs its maximum of {limits.max_running_scans} scans; try later",
                retry_after=limits.retry_after_seconds,
            )
        if self._owners[owner] >= limits.max_running_scans_per_subject:
            raise LimitExceeded(
                f"you already run {limits.max_running_scans_per_subject} scans, the maximum; "
                "wait for one to end or cancel one",
                retry_after=limits.retry_after_seconds,
            )
        self._owners[owner] += 1

    def submit_all(
        self, scans: Sequence[NewScan], first: EventDraft
    ) -> list[asyncio.Future[ScanRecord]]:
        """Submit every scan of one owner, or none (429 saying how many could start now):
        a collection's scans count against the running-scan limits like any others."""
        limits = self._config.limits
        wanted = len(scans)
        owners = {scan.owner for scan in scans}
        own_free = min(
            limits.max_running_scans_per_subject - self._owners[owner] for owner in owners
        )
        if wanted > own_free:
            raise LimitExceeded(
                f"these {wanted} scans would take you past your maximum of "
                f"{limits.max_running_scans_per_subject} running scans; "
                f"{max(0, own_free)} more can start now",
                retry_after=limits.retry_after_seconds,
            )
        free = limits.max_running_scans - self._owners.total()
        if wanted > free:
            raise LimitExceeded(
                f"the gateway runs near its maximum of {limits.max_running_scans} scans and "
                f"{max(0, free)} more can start now, not {wanted}; try later",
                retry_after=limits.retry_after_seconds,
            )
        return [self.submit(scan, first) for scan in scans]

    def _release(self, owner: str) -> None:
        self._owners[owner] -= 1
        if self._owners[owner] <= 0:
            del self._owners[owner]

    def submit(self, new: NewScan, first: EventDraft) -> asyncio.Future[ScanRecord]:
        """Create and run a scan in a task the runner owns; the future gets its record.

        The task, not the request, creates the scan: a client that goes away while it is
        being stored cannot leave a scan that exists but never runs.
        """
        if self._draining:
            raise Draining(
                "this gateway is draining before it stops and starts no new scan; try again "
                "(another replica takes it, or this one once it is back)",
                retry_after=self._config.limits.retry_after_seconds,
            )
        self._admit(new.owner)
        created: asyncio.Future[ScanRecord] = asyncio.get_running_loop().create_future()
        self._started[new.scan_id] = (new.scanner_name, time.monotonic())
        task = asyncio.create_task(
            self._create_and_run(new, first, created), name=f"scan {new.scan_id}"
        )
        self._tasks[new.scan_id] = task
        self._idle.clear()
        task.add_done_callback(lambda _: self._finished(new))
        return created

    async def _create_and_run(
        self, new: NewScan, first: EventDraft, created: asyncio.Future[ScanRecord]
    ) -> None:
        try:
            scan, _ = await self._store.create_scan(new, first)
        except BaseException as exc:
            if not created.done():
                created.set_exception(
                    exc if isinstance(exc, Exception) else StoreUnavailable("interrupted")
                )
            raise
        if not created.done():
            created.set_result(scan)
        self._last_seq[scan.scan_id] = scan.last_seq
        await self._run(scan)

    def _finished(self, scan: NewScan) -> None:
        self._tasks.pop(scan.scan_id, None)
        self._started.pop(scan.scan_id, None)
        self._last_seq.pop(scan.scan_id, None)
        self._cancel_requested.discard(scan.scan_id)
        self._abandoned.discard(scan.scan_id)
        self._release(scan.owner)
        if not self._tasks:
            self._idle.set()

    async def cancel(self, scan_id: str) -> None:
        """Stop a scan (closing its upstream request) and end its log ``cancelled``."""
        task = self._tasks.get(scan_id)
        if task is not None:
            if scan_id not in self._cancel_requested:  # a second DELETE only waits
                self._cancel_requested.add(scan_id)
                task.cancel()
            await asyncio.wait([task])
        # The task records the cancellation itself; this covers a task cancelled before it
        # ever ran. A scan that had already ended raises ScanFinished here.
        if task is None or not await self._ended(scan_id):
            await self.record(scan_id, _CANCELLED)

    def abandon(self, scan_id: str) -> None:
        """Stop a scan that ended elsewhere (another replica cancelled or interrupted it),
        closing its upstream request and writing nothing more."""
        task = self._tasks.get(scan_id)
        if task is not None and scan_id not in self._cancel_requested:
            self._abandoned.add(scan_id)
            task.cancel()

    async def _ended(self, scan_id: str) -> bool:
        scan = await self._store.get_scan(scan_id)
        return scan is not None and scan.terminal

    async def close(self) -> None:
        self._closing = True  # last words only: no waiting for a store to come back
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
        """Append an event to the log (the store hands it to the live subscribers).

        A scan's log holds at most ``limits.max_events_per_scan`` events, the last place kept
        for the terminal one: a running scan that would take it fails instead.
        """
        if draft.status not in TERMINAL_STATUSES:
            self._make_room(scan_id)
        deadline = time.monotonic() + self._store.retry_seconds
        delay = 0.05
        while True:
            try:
                event = await self._store.append_event(
                    scan_id, draft, vulnerabilities=vulnerabilities, skipped_events=skipped_events
                )
                break
            except StoreUnavailable as exc:
                # A shared store restarting: the scan waits (the upstream waits with it).
                if self._closing or time.monotonic() + delay > deadline:
                    raise
                log.warning("scan %s: %s; retrying in %.2f s", scan_id, exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
        if scan_id in self._last_seq:
            self._last_seq[scan_id] = event.seq
        if event.terminal and self._metrics is not None and scan_id in self._started:
            scanner, started = self._started[scan_id]
            self._metrics.scan_duration.labels(scanner, draft.status.value).observe(
                time.monotonic() - started
            )
        return event

    def _make_room(self, scan_id: str) -> None:
        """Raise unless the log has room for one more event besides the terminal one."""
        most = self._config.limits.max_events_per_scan
        last = self._last_seq.get(scan_id)
        if last is not None and last + 1 >= most:
            raise UpstreamError(
                UpstreamFault.TOO_MANY_EVENTS,
                f"too many events: a scan's log holds at most {most} (limits.max_events_per_scan)",
            )

    async def _run(self, scan: ScanRecord) -> None:
        scan_id_var.set(scan.scan_id)  # this task's log lines carry the scan id
        try:
            await self._execute(scan)
        except ScanFinished:
            pass  # someone else ended it (a cancel); nothing more to say
        except UpstreamError as exc:
            log.warning("scan %s failed: %s (%s)", scan.scan_id, exc.message, exc.kind)
            if self._metrics is not None:
                self._metrics.upstream_errors.labels(scan.scanner_name, exc.kind).inc()
            await self._fail(scan.scan_id, exc.message)
        except asyncio.CancelledError:
            if scan.scan_id in self._abandoned:
                pass  # another replica ended it; its terminal event is in the log
            elif scan.scan_id in self._cancel_requested:
                with contextlib.suppress(ScanFinished):
                    await self.record(scan.scan_id, _CANCELLED)
            else:
                await self._fail(scan.scan_id, "interrupted: gateway shutting down")
            raise
        except Exception:
            log.exception("scan %s crashed", scan.scan_id)
            await self._fail(scan.scan_id, "internal error in the gateway")

    async def _fail(self, scan_id: str, reason: str) -> None:
        try:
            await self.record(
                scan_id, EventDraft(Status.FAILED, progress_text=reason, error=reason)
            )
        except ScanFinished:
            pass
        except Exception:
            # Nothing more can be done here: the next start ends the scan from the log (one
            # process), or another replica's sweep does once its lease lapses (replicas).
            log.exception("scan %s: could not record its failure (%s)", scan_id, reason)
            self._store.release(scan_id)

    async def _execute(self, scan: ScanRecord) -> None:
        target = scan.scanner_name
        await self.record(
            scan.scan_id, EventDraft(Status.CONNECTING, progress_text=f"Connecting to {target}...")
        )
        limits = self._config.upstream
        deadline = asyncio.timeout(limits.scan_timeout_seconds)
        try:
            async with deadline:
                if scan.sse_enabled:
                    await self._connect_and_consume(scan)
                else:
                    consumer = ScanConsumer(scan, self._config, self.record)
                    await consumer.consume(self._simulation(scan), limits.idle_timeout_seconds)
        except TimeoutError:
            if not deadline.expired():
                raise
            seconds = limits.scan_timeout_seconds
            raise UpstreamError(
                UpstreamFault.SCAN_TIMEOUT, f"scan exceeded its {seconds:g} s limit"
            ) from None

    async def _connect_and_consume(self, scan: ScanRecord) -> None:
        """Read the scanner; retry only while it has not answered (one POST, one scan)."""
        limits = self._config.upstream
        attempts = 1 + limits.connect_retries
        for attempt in range(1, attempts + 1):
            try:
                consumer = ScanConsumer(scan, self._config, self.record)
                await consumer.consume(self._upstream(scan), limits.idle_timeout_seconds)
                return
            except UpstreamError as exc:
                if exc.kind is not UpstreamFault.CONNECT or attempt == attempts:
                    raise
                delay = _backoff(
                    attempt, limits.retry_backoff_seconds, limits.retry_backoff_max_seconds
                )
                text = (
                    f"{exc.message}; retrying in {delay:.1f} s "
                    f"(attempt {attempt + 1} of {attempts})..."
                )
                await self.record(scan.scan_id, EventDraft(Status.CONNECTING, progress_text=text))
                await asyncio.sleep(delay)


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries spread out."""
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


_CANCELLED = EventDraft(Status.CANCELLED, progress_text="Scan cancelled.")
