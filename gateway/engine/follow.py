"""Following a log from inside the gateway: every event after a cursor, in order, each once.

What the stream route does for a browser, for a consumer in the process (a collection's
aggregator following its children): subscribe first, then read the log, then take the live
events, dropping the overlap by sequence number. A live feed that ends (the follower fell
behind, the shared store stopped answering) is subscribed to again and the log fills the gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import Event
from gateway.engine.hub import Bus, Subscription
from gateway.engine.store import Store

__all__ = ["follow_log"]

log = logging.getLogger(__name__)

PAGE = 500
RETRY_FIRST, RETRY_MAX = 0.05, 1.0  # seconds between attempts while the store is away

Handler = Callable[[Event], Awaitable[None]]


async def follow_log(store: Store, bus: Bus, log_id: str, after: int, handle: Handler) -> None:
    """Call ``handle`` with each event of ``log_id`` after sequence number ``after``, in order,
    until it has handled the terminal one. Waits while the store does not answer."""
    delay = RETRY_FIRST
    while True:
        try:
            async with bus.subscribe(log_id) as live:
                after, ended = await _replay(store, log_id, after, handle)
                if ended:
                    return
                after, ended = await _live(store, live, after, handle)
                if ended:
                    return
            delay = RETRY_FIRST
        except StoreUnavailable as exc:
            log.warning("following %s: %s; again in %.2f s", log_id, exc.message, delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)


async def _replay(store: Store, log_id: str, after: int, handle: Handler) -> tuple[int, bool]:
    """Handle what the log holds after ``after``; (the last handled, whether it ended)."""
    while True:
        page = await store.events_after(log_id, after, limit=PAGE)
        for event in page:
            await handle(event)
            after = event.seq
            if event.terminal:
                return after, True
        if len(page) < PAGE:
            return after, False


async def _live(store: Store, live: Subscription, after: int, handle: Handler) -> tuple[int, bool]:
    """Handle live events until the feed ends; a gap is filled from the log."""
    while True:
        await live.wait()
        events = [event for event in live.take() if event.seq > after]
        if not events:
            if live.ended is not None:
                return after, False  # subscribe again; the log fills what was missed
            continue
        if events[0].seq > after + 1:
            after, ended = await _replay(store, live.scan_id, after, handle)
            if ended:
                return after, True
            events = [event for event in events if event.seq > after]
        for event in events:
            await handle(event)
            after = event.seq
            if event.terminal:
                return after, True
