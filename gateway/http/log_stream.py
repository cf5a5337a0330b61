"""Serving an event log as a stream (a scan's, a collection's): the catch-up from the log,
then live events, and how a stream ends. The routes are ``routes.stream`` and
``routes.collection_stream``.

The subscription is opened before the log is read, so every event is either in what the log
returned or arrives live; sequence numbers drop the overlap. Nothing is lost and nothing is
sent twice, whenever the client joins or resumes (``Last-Event-ID``).

After the terminal event the response ends; the browser's EventSource then reconnects with the
final id and gets 204 No Content, which per the WHATWG rules stops it for good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass

import msgspec
from aiohttp import web

from gateway.config import StreamConfig
from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import Event
from gateway.engine.hub import (
    EndOfStream,
    FeedUnavailable,
    ShuttingDown,
    SlowSubscriber,
    Subscription,
)
from gateway.engine.store import Store
from gateway.http.appkeys import BUS, CONFIG, STORE, STREAMS
from gateway.http.auth import principal
from gateway.http.schemas import AuthExpiredEvent
from gateway.http.sse_wire import EventStream, comment, named_frame, retry_field

__all__ = ["LogHead", "Opened", "Snapshot", "serve_log"]

REPLAY_PAGE = 500
SLOW_COMMENT = comment("you fell too far behind; reconnect with Last-Event-ID to resume")
SHUTDOWN_COMMENT = comment("gateway shutting down; reconnect to resume")
UNAVAILABLE_COMMENT = comment("the event store does not answer; reconnect to resume")


class _Sender:
    """Sends a scan's events to one client and remembers the last id it sent.

    Its response is the subscription's sink: while the client keeps up, the fan-out writes
    live batches straight to the client's transport, and this stream's task sleeps until
    something needs it.
    """

    def __init__(self, response: EventStream, live: Subscription):
        self.response = response
        self.live = live
        self.last = 0
        self.replayed = 0

    async def write(self, data: bytes) -> None:
        await self.response.send(data)

    async def send(self, events: list[Event]) -> None:
        if self.live.ended is EndOfStream.EXPIRED:
            raise CredentialExpired(self.live.scan_id)  # not one page more
        if events:
            await self.response.send_events(events)
            self.last = events[-1].seq

    async def named(self, name: str, seq: int | None, data: dict[str, object]) -> None:
        """A named event (``reset``, ``auth_expired``) that EventSource's onmessage ignores."""
        await self.write(named_frame(name, seq, data))

    async def replay(self, store: Store, scan_id: str, until: int | None = None) -> bool:
        """Send stored events after the last sent (up to ``until``), a page per write;
        True at the terminal one."""
        while until is None or self.last < until:
            page = await store.events_after(scan_id, self.last, limit=REPLAY_PAGE)
            if until is not None:
                page = [event for event in page if event.seq <= until]
            await self.send(page)
            self.replayed += len(page)
            if page and page[-1].terminal:
                return True
            if len(page) < REPLAY_PAGE:
                return False
        return False

    async def send_queued(self, store: Store) -> bool:
        """Send what queued up for this client (filling gaps from the log), then hand it to the
        fan-out, which writes live events while the client keeps up: False then, until the
        subscription wakes it; True once the terminal event is sent."""
        live = self.live
        while True:
            if live.ended is EndOfStream.EXPIRED:
                raise CredentialExpired(live.scan_id)  # not one event more
            live.last = self.last
            if live.follow(self.response):
                return False
            events = live.take()
            if not events:
                _raise_for_end(live)
                return True
            if await self._send_pending(store, events):
                return True

    def unfollow(self) -> None:
        """Take the stream back from the fan-out: what happens next, this task writes alone."""
        self.live.take()
        self.last = max(self.last, self.live.last)

    async def _send_pending(self, store: Store, events: list[Event]) -> bool:
        """Send events that queued for this client; True once the terminal one is sent."""
        fresh = [event for event in events if event.seq > self.last]
        if fresh and fresh[0].seq > self.last + 1:
            if await self.replay(store, fresh[0].scan_id, fresh[0].seq - 1):
                return True
            fresh = [event for event in fresh if event.seq > self.last]
        for index, event in enumerate(fresh):
            if event.terminal:
                await self.send(fresh[: index + 1])
                return True
        await self.send(fresh)
        return False


class CredentialExpired(Exception):
    """The stream's credential expired while it was open."""


def _raise_for_end(live: Subscription) -> None:
    if live.ended is EndOfStream.SLOW:
        raise SlowSubscriber(live.scan_id)
    if live.ended is EndOfStream.SHUTDOWN:
        raise ShuttingDown(live.scan_id)
    if live.ended is EndOfStream.EXPIRED:
        raise CredentialExpired(live.scan_id)
    if live.ended is EndOfStream.UNAVAILABLE:
        raise FeedUnavailable(live.scan_id)
    if live.ended is EndOfStream.DISCONNECTED:
        raise ConnectionResetError("the client went away")


def _resume_point(request: web.Request) -> int | str:
    """Where the client resumes: an id it holds (0: from the start), or the raw unknown value.

    The ``Last-Event-ID`` header (sent by EventSource on reconnect) wins over
    ``?last_event_id=`` (for a first connection).
    """
    raw = request.headers.get("Last-Event-ID")
    if raw is None and "?" in request.raw_path:  # parsed, the query stays with the request
        raw = request.query.get("last_event_id")
    if raw is None or raw.strip() == "":
        return 0
    raw = raw.strip()
    # Sequence numbers fit in 19 digits; anything longer is not an id this log gave out.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else raw


@dataclass(frozen=True, slots=True)
class LogHead:
    """Where a log stands when a client asks for it: a scan's, or a collection's."""

    log_id: str
    last_seq: int
    terminal: bool
    noun: str  # what the log is of, for the words of a reset: "scan", "collection"


# Given why, the log's current last id, whether it has ended, and the data of the ``reset``.
Snapshot = Callable[[str], Awaitable[tuple[int, bool, dict[str, object]]]]
# Finds the request's log, once the caller may read it: where it stands, and its snapshot.
Opened = Callable[[web.Request], Awaitable[tuple[LogHead, Snapshot]]]


async def _catch_up(
    sender: _Sender,
    store: Store,
    head: LogHead,
    resume: int | str,
    snapshot: Snapshot,
) -> bool:
    """Send what the log holds after ``resume``; True if that ended the stream."""
    if isinstance(resume, str) or resume > head.last_seq:
        # An id this log never held: say so, never replay from elsewhere.
        if await _reset(sender, snapshot, f"unknown Last-Event-ID {str(resume)[:64]!r}"):
            return True
    else:
        sender.last = resume
    if await sender.replay(store, head.log_id):
        return True
    # The record counting events the log no longer holds means its retention ran out.
    expired = sender.last < head.last_seq
    return expired and await _reset(sender, snapshot, f"the {head.noun}'s event log has expired")


async def _reset(sender: _Sender, snapshot: Snapshot, why: str) -> bool:
    """Send an explicit ``reset`` with the current state; True if the log has ended."""
    last_seq, ended, data = await snapshot(f"{why}; resuming from this snapshot")
    await sender.named("reset", last_seq, data)
    sender.last = last_seq
    return ended


async def serve_log(opened: Opened, request: web.Request) -> web.StreamResponse:
    """The stream of the log ``opened`` finds (after checking the caller may read it).

    One coroutine from the subscription to the end: an open stream keeps the frame of each
    coroutine it awaits through, for each of thousands of idle streams.
    """
    try:
        head, snapshot = await opened(request)
        resume = _resume_point(request)
        if head.terminal and resume == head.last_seq:
            return web.Response(status=204)  # the end was delivered: EventSource stops for good
        async with request.app[BUS].subscribe(head.log_id) as live:
            app = request.app
            config = app[CONFIG].stream
            who = principal(request)
            streams = app[STREAMS]
            await streams.add(who.subject, live, who.expires_at)  # ended when it expires
            response = _event_stream(config)
            sender = _Sender(response, live)
            retry = retry_field(config.retry_ms)
            try:
                await response.open(request, retry + b"\n")
                # The catch-up returns before the stream follows live: no frame of it is kept,
                # nor the record the log was opened from (the snapshot holds it).
                ended = await _catch_up(sender, app[STORE], head, resume, snapshot)
                del head, snapshot
                try:
                    # Idle, the stream waits here, on a future: no frame but this one.
                    while not ended and not await sender.send_queued(app[STORE]):
                        await live.wait()
                        sender.last = live.last
                        ended = live.ended is EndOfStream.TERMINAL  # the fan-out wrote it
                finally:
                    sender.unfollow()
            except SlowSubscriber:
                await _last_words(sender.write(SLOW_COMMENT))
            except ShuttingDown:  # a retry spread over a window: not every client back at once
                hint = retry_field(streams.reconnect_ms())
                await _last_words(sender.write(hint + SHUTDOWN_COMMENT))
            except (FeedUnavailable, StoreUnavailable):
                await _last_words(sender.write(retry + UNAVAILABLE_COMMENT))
            except CredentialExpired:
                reason = f"{who.via} credential expired; resume with a fresh one"
                data = AuthExpiredEvent(last_event_id=sender.last, reason=reason)
                await _last_words(sender.named("auth_expired", None, msgspec.to_builtins(data)))
            except ConnectionResetError:
                pass  # the client went away; it resumes from its last id
            except TimeoutError:
                # A client that stops reading would hold a write forever: drop it.
                if request.transport is not None:
                    request.transport.abort()
            finally:
                streams.count_replayed(sender.replayed)
                await streams.remove(live)
            return response
    except StoreUnavailable:
        if "text/event-stream" not in request.headers.get("Accept", ""):
            raise
        # An EventSource gives up for good on an error status; this keeps it retrying until
        # the store is back. It says nothing about the log, not even that it exists.
        return await _retry_later(request)


async def _retry_later(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG].stream
    response = _event_stream(config)
    await _last_words(response.open(request, retry_field(config.retry_ms) + UNAVAILABLE_COMMENT))
    return response


def _event_stream(config: StreamConfig) -> EventStream:
    return EventStream(
        send_timeout=config.send_timeout_seconds, high_water=config.write_high_water_bytes
    )


async def _last_words(send: Coroutine[object, object, None]) -> None:
    """A final notice: if the client cannot take it, the stream ends all the same."""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        await send
