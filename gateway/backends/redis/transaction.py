"""Talking to Redis: one way to connect, its failures as ``StoreUnavailable``, and optimistic
transactions.

A transaction WATCHes its keys, reads, queues its writes after ``multi`` and EXECs; another
process writing a watched key first makes it start over. A connection lost with EXEC sent
leaves the outcome unknown: the caller is told (``if_unknown``), and must find out before it
retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from gateway.domain.errors import StoreUnavailable

__all__ = ["MAX_ATTEMPTS", "UNAVAILABLE", "answering", "client", "connect", "multi", "transaction"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Redis cannot answer or cannot take writes now (ConnectionError covers BusyLoadingError and
# MaxConnectionsError); other Redis errors are bugs and propagate as they are.
UNAVAILABLE: Final = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.TryAgainError,
)
MAX_ATTEMPTS: Final = 50  # an optimistic transaction starts over at most this often
CONNECT_TIMEOUT: Final = 5.0  # seconds to open a connection


def client(url: str, *, socket_timeout: float, max_connections: int | None = None) -> Redis:
    """A client as every part of the backend uses one: RESP2 replies as bytes, bounded waits
    (a Redis that stops answering is ``StoreUnavailable``, not a hang), and one quick retry
    that rides over a pooled connection Redis closed (every command sent is safe to send twice;
    more retries would only make callers wait longer)."""
    return Redis.from_url(
        url,
        decode_responses=False,
        protocol=2,  # the reply shapes the backend reads are RESP2's
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT,
        max_connections=max_connections,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=1),
    )


async def connect(url: str, *, socket_timeout: float, max_connections: int | None = None) -> Redis:
    """``client``, once Redis has answered a PING (``StoreUnavailable`` when it does not)."""
    made = client(url, socket_timeout=socket_timeout, max_connections=max_connections)
    try:
        with answering():
            await made.ping()
    except BaseException:
        await made.aclose()
        raise
    return made


@contextmanager
def answering() -> Iterator[None]:
    """Redis not answering, whichever command noticed, is ``StoreUnavailable``; and a
    cancellation that arrived meanwhile is not lost.

    On Python 3.11, ``asyncio.wait_for`` (redis-py's send) returns normally when the task is
    cancelled just as the awaited write completes (fixed in 3.12). A cancel request that came
    during the call yet never surfaced is raised here, so a cancelled reader or the lease
    renewer does stop.
    """
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    error = None
    try:
        yield
    except UNAVAILABLE as exc:
        # Clients (and the unauthenticated /readyz) get no host or port; the log does.
        log.debug("redis: %s", exc)
        error = StoreUnavailable("the store (Redis) does not answer")
    if task is not None and task.cancelling() > cancelling:
        raise asyncio.CancelledError
    if error is not None:
        raise error


async def transaction(
    client: Redis,
    watch: list[str],
    write: Callable[[Pipeline], Coroutine[Any, Any, _T]],
    *,
    if_unknown: Callable[[], None] | None = None,
) -> _T:
    """Run ``write`` (reads while ``watch`` is watched, then ``multi()`` and the writes)
    until EXEC succeeds; a write that queues nothing returns without EXEC. When the connection
    drops during the transaction, Redis may have applied it or not: ``if_unknown`` is called,
    then ``StoreUnavailable`` raised."""
    async with client.pipeline() as pipe:
        for _ in range(MAX_ATTEMPTS):
            try:
                await pipe.watch(*watch)
                result = await write(pipe)
                if pipe.explicit_transaction:
                    try:
                        await pipe.execute()
                    except UNAVAILABLE as exc:
                        # Lost with EXEC sent: Redis may have applied it or not.
                        log.debug("redis: %s", exc)
                        raise _unknown(if_unknown) from None
            except redis_errors.WatchError as exc:
                if isinstance(exc.__context__, UNAVAILABLE):
                    # The connection died mid-transaction: EXEC may have been applied,
                    # so starting over could append the event twice.
                    log.debug("redis: %s", exc.__context__)
                    raise _unknown(if_unknown) from None
                continue
            return result
    raise StoreUnavailable(f"store too busy: {MAX_ATTEMPTS} conflicting transactions")


def _unknown(if_unknown: Callable[[], None] | None) -> StoreUnavailable:
    if if_unknown is not None:
        if_unknown()
    return StoreUnavailable("the store (Redis) does not answer")


def multi(pipe: Pipeline) -> None:
    """End the reads of a watched transaction: the commands after this are queued."""
    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
