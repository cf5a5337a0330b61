"""The scan's event stream, served by ``log_stream.serve_log`` (a collection's is too). The
tickets that let a native EventSource open it are ``stream_tickets``."""

from __future__ import annotations

import functools

import msgspec
from aiohttp import web

from gateway.domain.models import ScanRecord, utcnow
from gateway.engine.store import Store
from gateway.http.access import visible_scan
from gateway.http.appkeys import STORE
from gateway.http.auth import STREAM_ROUTE
from gateway.http.log_stream import LogHead, Snapshot, serve_log
from gateway.http.operations import Param, Permission, no_content, operation, text
from gateway.http.routes.scans import API, SCAN_ID
from gateway.http.schemas import ResetEvent, scan_view

__all__ = ["LAST_EVENT_ID", "LAST_EVENT_ID_QUERY", "routes"]

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


def _scan_snapshot(store: Store, scan: ScanRecord) -> Snapshot:
    async def snapshot(reason: str) -> tuple[int, bool, dict[str, object]]:
        current = await store.get_scan(scan.scan_id) or scan
        data = ResetEvent(
            **msgspec.structs.asdict(scan_view(current)), reason=reason, timestamp=utcnow()
        )
        return current.last_seq, current.terminal, msgspec.to_builtins(data)

    return snapshot


async def _scan_log(request: web.Request) -> tuple[LogHead, Snapshot]:
    scan = await visible_scan(request, Permission.READ, "watching a scan")
    head = LogHead(scan.scan_id, scan.last_seq, scan.terminal, "scan")
    return head, _scan_snapshot(request.app[STORE], scan)


# A partial, not a coroutine of its own: an open stream would keep its frame.
stream = functools.partial(serve_log, _scan_log)
routes.get(API + "/{scan_id}/stream", name=STREAM_ROUTE)(
    operation(
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
    )(stream)
)
