"""One writer to Redis for many callers: the commands callers queue go out in order, as many as
are waiting at once in one pipeline (one round trip, one append-only-file write), each
caller getting its own command's answer.

Nothing is lost to a caller that stops waiting: its command is sent all the same, in its
turn, so a command queued after it (giving back what it took) runs after it. The commands
are not one transaction; each should be atomic on its own (one command, or one Lua script).
Scripts are sent by their SHA alone (``EVALSHA``); those Redis no longer knows (a restart) are
loaded and their commands sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from gateway.backends.redis.transaction import answering
from gateway.domain.errors import StoreUnavailable

__all__ = ["Batches"]

log = logging.getLogger(__name__)

MOST: Final = 512  # commands in one pipeline

# Queues one command on the pipeline (``pipe.evalsha(...)``, say).
Queue = Callable[[Pipeline], object]


class Batches:
    def __init__(self, client: Redis, *, scripts: Sequence[AsyncScript], name: str) -> None:
        self._redis = client
        self._scripts = scripts  # what the commands may EVALSHA
        self._waiting: deque[tuple[Queue, asyncio.Future[Any]]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing waiting or being written
        self._idle.set()
        self._closing = False
        self._writer = asyncio.create_task(self._write_forever(), name=name)

    async def call(self, queue: Queue, *, seconds: float) -> Any:
        """The answer to the command ``queue`` queues, once sent in its turn; or
        ``StoreUnavailable`` when Redis does not answer, or not within ``seconds``."""
        answer = self.send(queue)
        done, _ = await asyncio.wait([answer], timeout=seconds)  # cancels nothing
        if not done:
            raise StoreUnavailable("the store (Redis) does not answer in time")
        return answer.result()

    def send(self, queue: Queue) -> asyncio.Future[Any]:
        """Queue a command; its answer is the future's (nobody need wait for it)."""
        if self._closing:
            raise StoreUnavailable("the store is closed")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieve)
        self._waiting.append((queue, answer))
        self._idle.clear()
        self._wake.set()
        return answer

    async def close(self, seconds: float) -> None:
        """Send what is queued (for up to ``seconds``), then stop."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)
        self._writer.cancel()
        await asyncio.wait([self._writer])
        _answer([answer for _, answer in self._waiting], StoreUnavailable("the store is closed"))

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                count = min(len(self._waiting), MOST)
                batch = [self._waiting.popleft() for _ in range(count)]
                await self._write(batch)
            self._idle.set()

    async def _write(self, batch: list[tuple[Queue, asyncio.Future[Any]]]) -> None:
        answers = [answer for _, answer in batch]
        try:
            with answering():
                results = await self._execute([queue for queue, _ in batch])
                unknown = [
                    i for i, result in enumerate(results) if isinstance(result, NoScriptError)
                ]
                if unknown:  # Redis restarted: the scripts are gone, and those did nothing
                    for script in self._scripts:
                        await self._redis.script_load(script.script)
                    again = await self._execute([batch[i][0] for i in unknown])
                    for i, result in zip(unknown, again, strict=True):
                        results[i] = result
        except StoreUnavailable as exc:
            _answer(answers, exc)
            return
        except Exception as exc:  # a bug: each caller hears of it
            log.exception("a batch of %d Redis commands failed", len(batch))
            _answer(answers, exc)
            return
        except BaseException:  # closing: what was sent may or may not be applied
            _answer(answers, StoreUnavailable("the store is closed"))
            raise
        for answer, result in zip(answers, results, strict=True):
            if answer.done():
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)

    async def _execute(self, queues: list[Queue]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                queue(pipe)
            return list(await pipe.execute(raise_on_error=False))


def _answer(answers: list[asyncio.Future[Any]], error: Exception) -> None:
    for answer in answers:
        if not answer.done():
            answer.set_exception(error)


def _retrieve(answer: asyncio.Future[Any]) -> None:
    """An answer nobody waits for any more (a caller that gave up) is not an error to log."""
    if not answer.cancelled():
        answer.exception()
