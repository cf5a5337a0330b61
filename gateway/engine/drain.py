"""The drain: a process asked to stop lets the work it runs end first.

A drain begins once (SIGTERM). From then on every tracked worker (the scan runner; whatever
else runs work of its own) refuses new work with ``Draining``, and whoever listens is told
(the stream registry hands its streams to other replicas). ``wait`` returns once no worker runs
anything, or once ``seconds`` have passed since the drain began, whichever comes first: what
still runs then is the caller's to interrupt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Drain", "Drainable"]

log = logging.getLogger(__name__)


class Drainable(Protocol):
    """Work a drain waits for: the scans of the runner, say."""

    @property
    def running(self) -> int:
        """How many units of work run now."""

    def drain(self) -> None:
        """Refuse new work from now on (``Draining``)."""

    async def idle(self) -> None:
        """Return once nothing runs."""


class Drain:
    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a drain lasts 0 seconds or more")
        self.seconds = seconds
        self._workers: list[Drainable] = []
        self._listeners: list[Callable[[], None]] = []
        self._began: float | None = None  # time.monotonic() when it began

    @property
    def draining(self) -> bool:
        return self._began is not None

    @property
    def running(self) -> int:
        """What the drain still waits for."""
        return sum(worker.running for worker in self._workers)

    def remaining(self) -> float:
        """Seconds left before the drain gives up waiting (all of them before it begins)."""
        if self._began is None:
            return self.seconds
        return max(0.0, self._began + self.seconds - time.monotonic())

    def track(self, worker: Drainable) -> None:
        """Wait for ``worker`` too (and make it refuse new work once the drain begins)."""
        self._workers.append(worker)
        if self.draining:
            worker.drain()

    def on_begin(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def begin(self) -> bool:
        """Begin the drain; False if it had begun already."""
        if self._began is not None:
            return False
        self._began = time.monotonic()
        for worker in self._workers:
            worker.drain()
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # one listener's bug must not keep the drain from waiting
                log.exception("a drain listener failed")
        return True

    async def wait(self) -> int:
        """Until nothing runs or the time is up; how many units of work still run."""
        if self._began is None:
            raise RuntimeError("the drain has not begun")
        idle = [worker.idle() for worker in self._workers]
        if idle:
            try:
                async with asyncio.timeout(self.remaining()):
                    await asyncio.gather(*idle)
            except TimeoutError:
                pass  # the time is up: what runs is interrupted by the caller
        return self.running
