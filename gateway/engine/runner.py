"""The scan runner: one task per running scan, turning a source of messages into log events.

A source is an async iterator of raw upstream messages: the scanner's stream in SSE mode, the
simulation in mock mode. Both go through the same normalisation, log and channels, so clients
cannot tell them apart. Every scan ends with a terminal event, whatever goes wrong.

Before it is stored, a scan is admitted by ``Limits`` (running scans per subject and in all,
the subject's rate of starts); its task gives its place back however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from gateway.config import Config
from gateway.domain.errors import Draining, StoreUnavailable, UpstreamFault
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
from gateway.engine.admissions import Admissions, refusal
from gateway.engine.consumer import ScanConsumer
from gateway.engine.hub import Bus
from gateway.engine.instruments import Metrics
from gateway.engine.limits import Limits
from gateway.engine.local_limits import LocalLimits
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
        limits: Limits | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._config = config
        self._upstream = upstream
        self._simulation = simulation
        self._admissions = Admissions(limits if limits is not None else LocalLimits(config.limits))
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._admitted: set[str] = set()  # scans admitted whose task has not ended
        self._holding: set[str] = set()  # scans whose place (asked or granted) is not given back
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
        """Scans of this process admitted and not yet ended."""
        return len(self._admitted)

    def drain(self) -> None:
        """Start no new scan from now on (``Draining``); the running ones carry on."""
        self._draining = True

    async def idle(self) -> None:
        """Return once no scan runs (nor waits for its admission)."""
        await self._idle.wait()

    def submit(self, new: NewScan, first: EventDraft) -> asyncio.Future[ScanRecord]:
        """Admit, create and run a scan in a task the runner owns; the future gets its record,
        or the refusal (``LimitExceeded``, ``StoreUnavailable``).

        The task, not the request, creates the scan: a client that goes away while it is
        being admitted or stored cannot leave a scan that exists but never runs, nor a place
        counted for a scan that never started. While the runner drains, ``Draining`` at once.
        """
        return self.submit_all([new], first)[0]

    def submit_all(
        self, scans: Sequence[NewScan], first: EventDraft
    ) -> list[asyncio.Future[ScanRecord]]:
        """As ``submit``, for several scans of one owner admitted all or none (one admission,
        which counts each against the running limits and the owner's rate of starts)."""
        if self._draining:
            raise Draining(
                "this gateway is draining before it stops and starts no new scan; try again "
                "(another replica takes it, or this one once it is back)",
                retry_after=self._config.limits.retry_after_seconds,
            )
        owners = {scan.owner for scan in scans}
        if len(owners) != 1:
            raise ValueError(f"submit_all takes scans of one owner, not {len(owners)}")
        admission = self._admissions.ask(owners.pop(), [scan.scan_id for scan in scans])
        return [self._start(scan, first, admission) for scan in scans]

    def _start(
        self, new: NewScan, first: EventDraft, admission: asyncio.Task[None]
    ) -> asyncio.Future[ScanRecord]:
        created: asyncio.Future[ScanRecord] = asyncio.get_running_loop().create_future()
        self._started[new.scan_id] = (new.scanner_name, time.monotonic())
        self._holding.add(new.scan_id)
        task = asyncio.create_task(
            self._admit_and_run(new, first, admission, created), name=f"scan {new.scan_id}"
        )
        self._tasks[new.scan_id] = task
        self._idle.clear()
        task.add_done_callback(lambda _: self._finished(new, admission, created))
        return created

    async def _admit_and_run(
        self,
        new: NewScan,
        first: EventDraft,
        admission: asyncio.Task[None],
        created: asyncio.Future[ScanRecord],
    ) -> None:
        await asyncio.wait([admission])  # not cancelled with this task: it is the batch's
        refused = refusal(admission)
        if refused is not None:
            self._holding.discard(new.scan_id)  # the limits took nothing
            created.set_exception(refused)
            return
        self._admitted.add(new.scan_id)
        try:
            await self._create_and_run(new, first, created)
        finally:
            self._admitted.discard(new.scan_id)
            self._holding.discard(new.scan_id)
            # Before the task ends, so that whoever awaits it (a cancel) sees the place free.
            await self._admissions.limits.release_scan(new.scan_id)

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

    def _finished(
        self, scan: NewScan, admission: asyncio.Task[None], created: asyncio.Future[ScanRecord]
    ) -> None:
        self._tasks.pop(scan.scan_id, None)
        self._started.pop(scan.scan_id, None)
        self._last_seq.pop(scan.scan_id, None)
        self._cancel_requested.discard(scan.scan_id)
        self._abandoned.discard(scan.scan_id)
        self._admitted.discard(scan.scan_id)
        if scan.scan_id in self._holding:
            # Cancelled before its admission was decided: a place granted later is given back.
            self._holding.discard(scan.scan_id)
            self._admissions.release_when_decided(admission, scan.scan_id)
        if not created.done():
            created.set_exception(StoreUnavailable("interrupted"))
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
            # The task records the cancellation itself; this covers a task cancelled between
            # storing the scan and running it. One cancelled before (being admitted) left none.
            scan = await self._store.get_scan(scan_id)
            if scan is None or scan.terminal:
                return
        # A scan that had already ended raises ScanFinished here.
        await self.record(scan_id, _CANCELLED)

    def abandon(self, scan_id: str) -> None:
        """Stop a scan that ended elsewhere (another replica cancelled or interrupted it),
        closing its upstream request and writing nothing more."""
        task = self._tasks.get(scan_id)
        if task is not None and scan_id not in self._cancel_requested:
            self._abandoned.add(scan_id)
            task.cancel()

    async def close(self) -> None:
        self._closing = True  # last words only: no waiting for a store to come back
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._admissions.close()

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
