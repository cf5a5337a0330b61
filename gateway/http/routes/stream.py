"""The scan's event stream, and the tickets that let a native EventSource open it.

The subscription is opened before the log is read, so every event is either in what the log
returned or arrives live; sequence numbers drop the overlap. Nothing is lost and nothing is
sent twice, whenever the client joins or resumes (``Last-Event-ID``).

After the terminal event the response ends; the browser's EventSource then reconnects with the
final id and gets 204 No Content, which per the WHATWG rules stops it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from datetime import datetime

import msgspec
from aiohttp import web

from gateway.config import StreamConfig
from gateway.domain.errors import StoreUnavailable
from gateway.domain.models import Event, ScanRecord, utcnow
from gateway.engine.hub import (
    EndOfStream,
    FeedUnavailable,
    ShuttingDown,
    SlowSubscriber,
    Subscription,
)
from gateway.engine.store import Store
from gateway.http.access import visible_scan
from gateway.http.appkeys import BUS, CONFIG, STORE, STREAMS, TICKETS
from gateway.http.audit import audit
from gateway.http.auth import STREAM_ROUTE, TICKET_PARAM, Principal, principal
from gateway.http.operations import Param, Permission, enveloped, no_content, operation, text
from gateway.http.responses import ok
from gateway.http.routes.scans import API, SCAN_ID
from gateway.http.schemas import AuthExpiredEvent, ResetEvent, StreamTicket, scan_view
from gateway.http.sse_wire import EventStream, comment, named_frame, retry_field

__all__ = ["routes"]

REPLAY_PAGE = 500
# Below this a ticket could expire while a finished scan's log is still being read.
MIN_TICKET_SECONDS = 60
SLOW_COMMENT = comment("you fell too far behind; reconnect with Last-Event-ID to resume")
SHUTDOWN_COMMENT = comment("gateway shutting down; reconnect to resume")
UNAVAILABLE_COMMENT = comment("the event store does not answer; reconnect to resume")

routes = web.RouteTableDef()

LAST_EVENT_ID = Param(
    "LastEventIdHeader",
    "Last-Event-ID",
    "header",
    "The id of the last event received (EventSource sends it on reconnect): the stream "
    "replays exactly the events after it. An id the log does not hold gets an `event: "
    "reset`. Wins over `last_event_id`.",
    {"type": "string"},
)
LAST_EVENT_ID_QUERY = Param(
    "LastEventIdQuery",
    "last_event_id",
    "query",
    "As `Last-Event-ID`, for a first connection (the header wins).",
    {"type": "string"},
)
# The stream operation's description in the OpenAPI document.
STREAM_DESCRIPTION = """\
A `text/event-stream` (Server-Sent Events) of the scan's log: every stored event in order, \
then the live ones; the server ends the response after the terminal event (`completed`, \
`failed` or `cancelled`).

The stream opens with a `retry: <ms>` hint. Each event is

```
id: <n>
data: <one JSON object on one line, an Event>

```

where `<n>` is the scan's sequence number (1, 2, 3, ... without gaps) and the data object \
is `components.schemas.Event`: `scan_id, status, progress_percent, progress_text, error, \
timestamp`, plus `summary` on the `completed` event.

Named events, which `EventSource.onmessage` does not see:

* `event: reset` (data `components.schemas.ResetEvent`, id the scan's last): the \
`Last-Event-ID` the client sent is not in the log (`abc`, `-1`, or beyond the last event); \
the data is the scan's current snapshot, and the stream continues live from there.
* `event: auth_expired` (data `components.schemas.AuthExpiredEvent`, no id): the credential \
behind the stream expired; open a new stream with a fresh one and `?last_event_id=`.

Comments (lines starting with `:`) carry no data: `: ping` every `stream.heartbeat_seconds`, \
a final comment before the server drops a subscriber that fell too far behind, and one \
(after a `retry:` hint) when the gateway shuts down. Resume from the last id you saw.

A client that resumes with the terminal event's id gets **204 No Content**, which stops a \
browser's `EventSource` for good.

Authentication: a bearer token, a stream ticket (`?ticket=`, see `POST .../stream-ticket`), \
the session cookie, or (unless `auth.query_tokens` is false) `?token=` / `?access_token=`; \
with `scans:read` (a ticket carries it for its one scan).

429 when the caller already has `limits.max_streams_per_subject` streams open, or the \
gateway (every replica, with Redis) serves `limits.max_streams`."""


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

    async def follow(self, store: Store, live: Subscription) -> None:
        """Send live events until the terminal one: the fan-out writes them while the client
        keeps up; this task sends what queued up meanwhile, and fills gaps from the log."""
        try:
            while True:
                if live.ended is EndOfStream.EXPIRED:
                    raise CredentialExpired(live.scan_id)  # not one event more
                live.last = self.last
                if not live.follow(self.response):
                    events = live.take()
                    if not events:
                        _raise_for_end(live)
                        return
                    if await self._send_pending(store, events):
                        return
                    continue
                await live.wait()
                if live.ended is EndOfStream.TERMINAL:
                    return  # the fan-out wrote the terminal event itself
                self.last = live.last
        finally:
            live.take()  # whatever happens next is written by this task alone
            self.last = max(self.last, live.last)

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
    if raw is None:
        raw = request.query.get("last_event_id")
    if raw is None or raw.strip() == "":
        return 0
    raw = raw.strip()
    # Sequence numbers fit in 19 digits; anything longer is not an id this log gave out.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else raw


async def _stream_scan(
    sender: _Sender, store: Store, scan: ScanRecord, resume: int | str, live: Subscription
) -> None:
    if isinstance(resume, str) or resume > scan.last_seq:
        # An id this log never held: say so, never replay from elsewhere.
        if await _reset(sender, store, scan, f"unknown Last-Event-ID {str(resume)[:64]!r}"):
            return
    else:
        sender.last = resume
    if await sender.replay(store, scan.scan_id):
        return
    # The record counting events the log no longer holds means its retention ran out.
    expired = sender.last < scan.last_seq
    if expired and await _reset(sender, store, scan, "the scan's event log has expired"):
        return
    await sender.follow(store, live)


async def _reset(sender: _Sender, store: Store, scan: ScanRecord, why: str) -> bool:
    """Send an explicit ``reset`` with the scan's current state; True if it has ended."""
    current = await store.get_scan(scan.scan_id) or scan
    snapshot = ResetEvent(
        **msgspec.structs.asdict(scan_view(current)),
        reason=f"{why}; resuming from this snapshot",
        timestamp=utcnow(),
    )
    await sender.named("reset", current.last_seq, msgspec.to_builtins(snapshot))
    sender.last = current.last_seq
    return current.terminal


@routes.get(API + "/{scan_id}/stream", name=STREAM_ROUTE)
@operation(
    "streamScan",
    "Watch a scan's events (Server-Sent Events)",
    "stream",
    {
        200: text("text/event-stream", "The event stream; see the operation's description."),
        204: no_content(
            "The client already holds the terminal event (`Last-Event-ID` is the last id of a "
            "finished scan): nothing more will come."
        ),
    },
    errors=(401, 403, 404, 429, 503),
    description=STREAM_DESCRIPTION,
    params=(SCAN_ID, LAST_EVENT_ID, LAST_EVENT_ID_QUERY),
    auth="ticket",
    permission=Permission.READ,
)
async def stream(request: web.Request) -> web.StreamResponse:
    try:
        scan = await visible_scan(request, Permission.READ, "watching a scan")
        resume = _resume_point(request)
        if scan.terminal and resume == scan.last_seq:
            return web.Response(status=204)  # the end was delivered: EventSource stops for good
        async with request.app[BUS].subscribe(scan.scan_id) as live:
            return await _serve(request, scan, resume, live)
    except StoreUnavailable:
        if "text/event-stream" not in request.headers.get("Accept", ""):
            raise
        # An EventSource gives up for good on an error status; this keeps it retrying until
        # the store is back. It says nothing about the scan, not even that it exists.
        return await _retry_later(request)


async def _serve(
    request: web.Request, scan: ScanRecord, resume: int | str, live: Subscription
) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG].stream
    who = principal(request)
    streams = app[STREAMS]
    await streams.add(who.subject, live)
    expiry = _end_at_expiry(who, live)
    response = _event_stream(config)
    sender = _Sender(response, live)
    retry = retry_field(config.retry_ms)
    try:
        await response.open(request, retry + b"\n")
        await _stream_scan(sender, app[STORE], scan, resume, live)
    except SlowSubscriber:
        await _last_words(sender.write(SLOW_COMMENT))
    except ShuttingDown:  # a retry spread over a window: not every client back at once
        await _last_words(sender.write(retry_field(streams.reconnect_ms()) + SHUTDOWN_COMMENT))
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
        if expiry is not None:
            expiry.cancel()
        streams.count_replayed(sender.replayed)
        await streams.remove(live)
    return response


def _end_at_expiry(who: Principal, live: Subscription) -> asyncio.TimerHandle | None:
    """End the stream when the caller's credential expires (one timer, no task)."""
    if who.expires_at is None:
        return None
    loop = asyncio.get_running_loop()
    when = loop.time() + (who.expires_at - time.time())
    return loop.call_at(when, live.end, EndOfStream.EXPIRED)


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


@routes.post(API + "/{scan_id}/stream-ticket")
@operation(
    "createStreamTicket",
    "Get a ticket that opens the scan's stream",
    "stream",
    {200: enveloped(StreamTicket, "The ticket and the stream URL with it.")},
    errors=(401, 403, 404, 503),
    description=(
        "For a native `EventSource`, which cannot send an `Authorization` header. The ticket "
        "is bound to this scan, this subject and the stream route, and carries `scans:read` "
        "on that scan only; it lives for the scan's remaining lifetime (at least 60 s, at "
        "most `auth.ticket_max_ttl_seconds`). No request body."
    ),
    params=(SCAN_ID,),
    permission=Permission.READ,
)
async def stream_ticket(request: web.Request) -> web.Response:
    """A credential for ``GET .../stream?ticket=``: this scan, this subject, that route only."""
    scan = await visible_scan(request, Permission.READ, "a stream ticket")
    config = request.app[CONFIG]
    ttl = config.auth.ticket_ttl_seconds
    if ttl is None:  # the scan's remaining lifetime, so reconnects keep working to its end
        started = datetime.fromisoformat(scan.created_at).timestamp()
        remaining = started + config.upstream.scan_timeout_seconds - time.time()
        ttl = max(MIN_TICKET_SECONDS, remaining)
    ttl = int(min(config.auth.ticket_max_ttl_seconds, ttl))
    ticket = request.app[TICKETS].issue(principal(request).subject, scan.scan_id, ttl)
    audit(request, "ticket.issued", scan_id=scan.scan_id, owner=scan.owner, expires_in=ttl)
    stream_url = f"{API}/{scan.scan_id}/stream?{TICKET_PARAM}={ticket}"
    return ok(StreamTicket(ticket=ticket, expires_in=ttl, stream_url=stream_url))
