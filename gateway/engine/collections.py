"""Running collections: their children started by the scan runner, one aggregator task each.

``submit`` admits every child or none (the per-subject and total running-scan limits count
each child), lets the runner start them, stores the collection and runs its aggregator, all in
a task of its own, so a client that goes away cannot leave half a collection. Collections
that no process runs (this one restarted, or the replica running them died) are taken over
from their stored cursors: when this process starts, and every ``sweep_interval`` with a
shared store.

A drain (``engine/drain.py``) waits for the collections started here: their children run in
this process's runner, so once those end the aggregator has only their last events to write.
It does not wait for the collections taken over (their children may run anywhere and for
long; another process takes them over from the stored cursor), and takes over none while it
lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from gateway.config import Config
from gateway.domain.collections import (
    CollectionFinished,
    CollectionLost,
    CollectionRecord,
    NewCollection,
)
from gateway.domain.errors import Draining, GatewayError, StoreUnavailable
from gateway.domain.models import Event, EventDraft, NewScan, ScanFinished, ScanRecord
from gateway.engine.aggregator import Aggregator
from gateway.engine.collection_store import CollectionStore
from gateway.engine.follow import follow_log
from gateway.engine.hub import Bus
from gateway.engine.instruments import Metrics
from gateway.engine.runner import ScanRunner
from gateway.engine.store import Store

__all__ = ["CollectionManager"]

log = logging.getLogger(__name__)

# How long closing waits for aggregators to write what the ended children left them.
CLOSE_GRACE_SECONDS = 2.0


class CollectionManager:
    def __init__(
        self,
        runner: ScanRunner,
        store: Store,
        bus: Bus,
        collections: CollectionStore,
        config: Config,
        metrics: Metrics,
    ) -> None:
        self._runner = runner
        self._store = store
        self._bus = bus
        self._collections = collections
        self._config = config
        self._metrics = metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started_here: set[str] = set()  # aggregated here, children in this runner
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def aggregating(self) -> int:
        """Collections this process aggregates, started here or taken over."""
        return len(self._tasks)

    @property
    def running(self) -> int:
        """Collections started here and not yet ended: what a drain waits for."""
        return len(self._started_here)

    def drain(self) -> None:
        """Start no new collection (``Draining``) and take none over from now on."""
        self._draining = True

    async def idle(self) -> None:
        """Return once every collection started here has ended."""
        await self._idle.wait()

    def submit(
        self, new: NewCollection, scans: Sequence[NewScan], first: EventDraft
    ) -> asyncio.Future[CollectionRecord]:
        """Start the children and the collection; the future gets its record, or the refusal
        (``LimitExceeded`` for all the children or none, ``StoreUnavailable``). While the
        manager drains, ``Draining`` at once."""
        if self._draining:
            raise Draining(
                "this gateway is draining before it stops and starts no new collection; try "
                "again (another replica takes it, or this one once it is back)",
                retry_after=self._config.limits.retry_after_seconds,
            )
        started = self._runner.submit_all(scans, first)
        created: asyncio.Future[CollectionRecord] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._create_and_run(new, started, created), name=f"collection {new.collection_id}"
        )
        self._track(new.collection_id, task, started_here=True)
        return created

    async def _create_and_run(
        self,
        new: NewCollection,
        started: list[asyncio.Future[ScanRecord]],
        created: asyncio.Future[CollectionRecord],
    ) -> None:
        try:
            await asyncio.gather(*started)
            record = await self._collections.create(new)
        except BaseException as exc:
            # The children that did start are cancelled: no collection owns them.
            for scan_id in new.children:
                with contextlib.suppress(Exception):
                    await self._runner.cancel(scan_id)
            if not created.done():
                created.set_exception(
                    exc if isinstance(exc, Exception) else StoreUnavailable("interrupted")
                )
            if isinstance(exc, GatewayError):
                return  # refused (a limit, the store): the caller has it, nothing failed here
            raise
        created.set_result(record)
        await self._aggregate(record)

    async def _aggregate(self, record: CollectionRecord) -> None:
        aggregator = Aggregator(
            record, self._store, self._bus, self._collections, self._config.findings
        )
        try:
            await aggregator.run()
        except* (CollectionFinished, CollectionLost):
            pass  # ended, or held by another process now: nothing more to write here
        if aggregator.outcome is not None:
            self._metrics.collections.labels(aggregator.outcome.value).inc()

    def _track(
        self, collection_id: str, task: asyncio.Task[None], *, started_here: bool = False
    ) -> None:
        self._tasks[collection_id] = task
        if started_here:
            self._started_here.add(collection_id)
            self._idle.clear()

        def done(finished: asyncio.Task[None]) -> None:
            if self._tasks.get(collection_id) is finished:
                del self._tasks[collection_id]
            if started_here:
                self._started_here.discard(collection_id)
                if not self._started_here:
                    self._idle.set()
            self._collections.release(collection_id)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("collection %s: aggregator failed", collection_id,
                          exc_info=finished.exception())  # fmt: skip

        task.add_done_callback(done)

    async def cancel(self, record: CollectionRecord, *, wait: float) -> None:
        """Cancel every running child, then wait up to ``wait`` seconds for the collection's
        terminal event (written by whichever process aggregates it)."""
        await self._collections.request_cancel(record.collection_id)
        for scan_id in record.scan_ids:
            with contextlib.suppress(ScanFinished):  # it had ended already
                await self._runner.cancel(scan_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await follow_log(self._store, self._bus, record.log_id, record.last_seq, _ignore)

    async def take_over(self) -> int:
        """Run the unfinished collections no process runs; how many were taken (none while
        draining: this process is about to stop)."""
        taken = 0
        if self._draining:
            return taken
        for record in await self._collections.claim_unfinished():
            if record.collection_id in self._tasks:
                continue
            log.warning("collection %s: resuming its aggregation", record.collection_id)
            task = asyncio.create_task(
                self._aggregate(record), name=f"collection {record.collection_id}"
            )
            self._track(record.collection_id, task)
            taken += 1
        return taken

    async def start(self) -> None:
        """Take over what is left unfinished, now and (shared store) periodically."""
        await self.take_over()
        interval = self._collections.sweep_interval
        if interval is not None:
            self._sweeper = asyncio.create_task(self._sweep(interval), name="collection sweep")

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.take_over()
            except StoreUnavailable as exc:
                log.warning("could not look for collections to take over: %s", exc.message)
            except Exception:  # a bug: the next round tries again
                log.exception("looking for collections to take over failed")

    async def close(self) -> None:
        """Let the aggregators write what the ended children left them (briefly), then stop
        them: an unfinished collection is resumed by the next process that takes it over."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_GRACE_SECONDS)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _ignore(event: Event) -> None:
    """Waiting for a log's end: each event is only passed over."""
