"""The embedded store's one writer: a connection used on one thread, fed by one task.

The task takes whatever writes queued up meanwhile and runs them on the thread in one call:
one ``BEGIN IMMEDIATE`` ... ``COMMIT``, each write in a savepoint of its own, so one that fails
fails alone. A burst of appends costs one hand-off to the thread and one commit, not several of
each per event; a lone write is not delayed. A caller cancelled while waiting does not leave a
transaction half done: the writer finishes it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.backends.sqlite.schema import SCHEMA
from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import Event

__all__ = ["MAX_BATCH", "Write", "Writer", "open_connection"]

_T = TypeVar("_T")
MAX_BATCH = 500  # writes committed together at most
# A write: runs on the writer thread inside one transaction; every event it appends goes in
# the list, and listeners hear of them only after the commit.
Write = Callable[[sqlite3.Connection, list[Event]], Any]
# What became of one write: (its result, its error, the events it appended).
_Outcome = tuple[Any, Exception | None, list[Event]]


async def open_connection(path: str) -> tuple[sqlite3.Connection, ThreadPoolExecutor]:
    """The writer's connection (WAL, the schema), and the one thread that uses it."""
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
    try:
        db = await asyncio.get_running_loop().run_in_executor(thread, _open, path)
    except BaseException:
        thread.shutdown(wait=False)
        raise
    return db, thread


class Writer:
    def __init__(
        self,
        db: sqlite3.Connection,
        thread: ThreadPoolExecutor,
        committed: Callable[[Sequence[Event]], None],
    ) -> None:
        self._db = db
        self._thread = thread  # the connection is used on this one thread only
        self._committed = committed  # told of the events each write appended, once committed
        self._queue: asyncio.Queue[tuple[Write, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._write_loop(), name="sqlite-writer")
        self._closing = False

    @property
    def running(self) -> bool:
        return not self._closing and not self._task.done()

    async def write(self, write: Callable[[sqlite3.Connection, list[Event]], _T]) -> _T:
        if self._closing:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        await self._queue.put((write, future))
        return await future

    async def close(self) -> None:
        """Commit what is queued, then close the connection and its thread."""
        if self._closing:
            return
        self._closing = True
        await self._queue.put(None)
        await self._task
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown(wait=True)

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if None in batch:  # close() queues it last; nothing is accepted after it
                stopping = True
                batch = batch[: batch.index(None)]
            await self._commit([item for item in batch if item is not None])

    async def _commit(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        if not batch:
            return
        writes = [write for write, _ in batch]
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(self._thread, _run_batch, self._db, writes)
        except Exception as exc:  # the transaction itself failed: nothing was written
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), (result, error, appended) in zip(batch, outcomes, strict=True):
            # Told here, not by the caller: a caller cancelled meanwhile must not keep a
            # committed event (a terminal one above all) from its live subscribers.
            self._committed(appended)
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


def _open(path: str) -> sqlite3.Connection:
    """The writer connection (on the writer thread): WAL, and the schema."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _run_batch(db: sqlite3.Connection, writes: list[Write]) -> list[_Outcome]:
    """Run writes in one transaction (on the writer thread), each in its own savepoint."""
    outcomes: list[_Outcome] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for write in writes:
            appended: list[Event] = []
            db.execute("SAVEPOINT write")
            try:
                result = write(db, appended)
            except Exception as exc:
                db.execute("ROLLBACK TO write")
                outcomes.append((None, exc, []))
            else:
                outcomes.append((result, None, appended))
            db.execute("RELEASE write")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes
