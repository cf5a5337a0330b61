"""A collection's event stream and its tickets: the scan stream's code, on the collection's
log (``stream.serve_log``), with every guarantee a scan's stream has."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.domain.models import utcnow
from gateway.http.appkeys import COLLECTIONS
from gateway.http.auth import COLLECTION_STREAM_ROUTE
from gateway.http.collection_schemas import CollectionResetEvent, collection_view
from gateway.http.routes.collections import COLLECTIONS_API, owned_collection
from gateway.http.routes.stream import LogHead, Snapshot, issue_ticket, serve_log

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get(COLLECTIONS_API + "/{collection_id}/stream", name=COLLECTION_STREAM_ROUTE)
async def collection_stream(request: web.Request) -> web.StreamResponse:
    async def opened() -> tuple[LogHead, Snapshot]:
        record = await owned_collection(request)

        async def snapshot(reason: str) -> tuple[int, bool, dict[str, object]]:
            current = await request.app[COLLECTIONS].get(record.collection_id) or record
            view = msgspec.structs.asdict(collection_view(current))
            data = CollectionResetEvent(**view, reason=reason, timestamp=utcnow())
            return current.last_seq, current.terminal, msgspec.to_builtins(data)

        head = LogHead(record.log_id, record.last_seq, record.terminal, "collection")
        return head, snapshot

    return await serve_log(request, opened)


@routes.post(COLLECTIONS_API + "/{collection_id}/stream-ticket")
async def collection_stream_ticket(request: web.Request) -> web.Response:
    """A credential for ``GET .../stream?ticket=``: this collection, this subject, that route."""
    record = await owned_collection(request)
    path = f"{COLLECTIONS_API}/{record.collection_id}/stream"
    return issue_ticket(request, record.log_id, record.created_at, path)
