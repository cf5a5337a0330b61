"""A collection's event stream and its tickets: the scan stream's code, on the collection's
log (``log_stream.serve_log``), with every guarantee a scan's stream has."""

from __future__ import annotations

import functools

import msgspec
from aiohttp import web

from gateway.domain.models import utcnow
from gateway.http.access import visible_collection
from gateway.http.appkeys import COLLECTIONS
from gateway.http.auth import COLLECTION_STREAM_ROUTE
from gateway.http.collection_schemas import CollectionResetEvent, collection_view
from gateway.http.log_stream import LogHead, Snapshot, serve_log
from gateway.http.operations import Permission, enveloped, no_content, operation, text
from gateway.http.routes.collections import (
    COLLECTION_ID,
    COLLECTIONS_API,
    NOT_FOUND,
)
from gateway.http.routes.stream import LAST_EVENT_ID, LAST_EVENT_ID_QUERY
from gateway.http.routes.stream_tickets import issue_ticket
from gateway.http.schemas import StreamTicket

__all__ = ["routes"]

routes = web.RouteTableDef()


async def _collection_log(request: web.Request) -> tuple[LogHead, Snapshot]:
    record = await visible_collection(request, Permission.READ, "watching a collection")
    collections = request.app[COLLECTIONS]

    async def snapshot(reason: str) -> tuple[int, bool, dict[str, object]]:
        current = await collections.get(record.collection_id) or record
        view = msgspec.structs.asdict(collection_view(current))
        data = CollectionResetEvent(**view, reason=reason, timestamp=utcnow())
        return current.last_seq, current.terminal, msgspec.to_builtins(data)

    head = LogHead(record.log_id, record.last_seq, record.terminal, "collection")
    return head, snapshot


# A partial, not a coroutine of its own: an open stream would keep its frame.
collection_stream = functools.partial(serve_log, _collection_log)
routes.get(COLLECTIONS_API + "/{collection_id}/stream", name=COLLECTION_STREAM_ROUTE)(
    operation(
        "streamCollection",
        "Watch a collection's events (Server-Sent Events)",
        "stream",
        {
            200: text(
                "text/event-stream",
                "The collection's events; each one's data is "
                "`components.schemas.CollectionEventPayload`.",
            ),
            204: no_content("The client already holds the terminal event: nothing more will come."),
        },
        errors=(401, 403, NOT_FOUND, 429, 503),
        description=(
            "As a scan's stream (ids from 1 without gaps, `Last-Event-ID`, `event: reset` with a "
            "`CollectionResetEvent`, `retry:`, heartbeats, 204 after the end, the same "
            "credentials and tickets), over the collection's own log: one event per event of its "
            "scans, with the collection's status and progress, the scan event that caused it and "
            "the findings new in it; the terminal one adds the merged `summary`."
        ),
        params=(COLLECTION_ID, LAST_EVENT_ID, LAST_EVENT_ID_QUERY),
        auth="ticket",
        permission=Permission.READ,
    )(collection_stream)
)


@routes.post(COLLECTIONS_API + "/{collection_id}/stream-ticket")
@operation(
    "createCollectionStreamTicket",
    "Get a ticket that opens the collection's stream",
    "stream",
    {200: enveloped(StreamTicket, "The ticket and the stream URL with it.")},
    errors=(401, 403, NOT_FOUND, 503),
    description=(
        "As a scan's stream ticket, bound to this collection's stream (a scan's ticket does "
        "not open it, nor this one a scan's), and carrying `scans:read` on this collection "
        "only. No request body."
    ),
    params=(COLLECTION_ID,),
    permission=Permission.READ,
)
async def collection_stream_ticket(request: web.Request) -> web.Response:
    """A credential for ``GET .../stream?ticket=``: this collection, this subject, that route."""
    record = await visible_collection(request, Permission.READ, "a collection stream ticket")
    path = f"{COLLECTIONS_API}/{record.collection_id}/stream"
    return issue_ticket(
        request,
        record.log_id,
        record.created_at,
        path,
        collection_id=record.collection_id,
        owner=record.owner,
    )
