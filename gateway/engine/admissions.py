"""The runner's admissions: one task per batch of scans asking ``Limits`` for their places, and
the release of a place granted to a scan that was gone by then; all of them awaited on close.

A scan's task waits for its batch's admission without cancelling it (the batch is shared), so
a scan cancelled meanwhile leaves an admission that may still grant its place:
``release_when_decided`` gives that place back once it is known.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from gateway.domain.errors import GatewayError, StoreUnavailable
from gateway.engine.limits import Limits

__all__ = ["Admissions", "refusal"]

log = logging.getLogger(__name__)


class Admissions:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._undecided: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # admissions and late releases

    def ask(self, owner: str, scan_ids: Sequence[str]) -> asyncio.Task[None]:
        """Places for all of ``scan_ids`` or none: the task's outcome (see ``refusal``)."""
        admission = self._own(
            self.limits.admit_scans(owner, scan_ids), f"admission of {len(scan_ids)} scan(s)"
        )
        self._undecided.add(admission)
        admission.add_done_callback(self._undecided.discard)
        return admission

    def release_when_decided(self, admission: asyncio.Task[None], scan_id: str) -> None:
        self._own(self._release_after(admission, scan_id), f"release of {scan_id}")

    async def close(self) -> None:
        """Decide no more (an undecided admission is cancelled: no place taken), and wait for
        the releases under way."""
        for admission in self._undecided:
            admission.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _release_after(self, admission: asyncio.Task[None], scan_id: str) -> None:
        await asyncio.wait([admission])
        if refusal(admission) is None:
            await self.limits.release_scan(scan_id)

    def _own(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()  # a refusal: its scans say it
        if error is not None and not isinstance(error, GatewayError):
            log.error("%s failed", task.get_name(), exc_info=error)


def refusal(admission: asyncio.Task[None]) -> Exception | None:
    """Why a decided admission let nothing in, or None when it admitted."""
    if admission.cancelled():
        return StoreUnavailable("interrupted")
    error = admission.exception()
    if error is None:
        return None
    return error if isinstance(error, Exception) else StoreUnavailable("interrupted")
