"""The scan's event stream: stored events first, then live ones, ended after the last.

The subscription is opened before the log is read, so every event is either in what the log
returned or arrives live; sequence numbers drop the overlap. Nothing is lost and nothing is
sent twice, whenever the client joins.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from ..appkeys import BUS, CONFIG, STORE
from ..hub import SlowSubscriber, Subscription
from ..models import Event
from ..store import Store
from .scans import API, owned_scan

__all__ = ["routes"]

REPLAY_PAGE = 500
SLOW_COMMENT = b": you fell too far behind; reconnect with Last-Event-ID to resume\n\n"

routes = web.RouteTableDef()


class _Sender:
    """Writes frames to one client and remembers the last id it sent."""

    def __init__(self, response: EventSourceResponse, timeout: float, last: int) -> None:
        self.response = response
        self.timeout = timeout
        self.last = last

    async def send(self, event: Event) -> None:
        async with asyncio.timeout(self.timeout):
            await self.response.write(event.frame)
        self.last = event.seq

    async def replay(self, store: Store, scan_id: str, until: int | None = None) -> bool:
        """Send stored events after the last sent (up to ``until``); True at the terminal one."""
        while until is None or self.last < until:
            page = await store.events_after(scan_id, self.last, limit=REPLAY_PAGE)
            for event in page:
                if until is not None and event.seq > until:
                    return False
                await self.send(event)
                if event.terminal:
                    return True
            if len(page) < REPLAY_PAGE:
                return False
        return False

    async def follow(self, store: Store, live: Subscription) -> None:
        async for event in live:
            if event.seq <= self.last:
                continue  # already sent from the log
            if event.seq > self.last + 1 and await self.replay(store, event.scan_id, event.seq - 1):
                return
            await self.send(event)
            if event.terminal:
                return


@routes.get(API + "/{scan_id}/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    scan = await owned_scan(request)
    config = request.app[CONFIG].stream
    store = request.app[STORE]
    with request.app[BUS].subscribe(scan.scan_id) as live:
        async with sse_response(
            request,
            sep="\n",
            ping_interval=config.heartbeat_seconds,
            send_timeout=config.send_timeout_seconds,
        ) as response:
            sender = _Sender(response, config.send_timeout_seconds, last=0)
            try:
                if not await sender.replay(store, scan.scan_id):
                    await sender.follow(store, live)
            except SlowSubscriber:
                await response.write(SLOW_COMMENT)
            except ConnectionResetError:
                pass  # the client went away; it resumes from its last id
            except TimeoutError:
                # A client that stops reading would hold a write forever: drop it.
                if request.transport is not None:
                    request.transport.abort()
    return response
