"""Stream tickets: a short-lived credential that opens one log's stream, for a native
``EventSource`` (which cannot send an ``Authorization`` header). A ticket is bound to the
subject, the log (a scan's, or a collection's) and the stream route."""

from __future__ import annotations

import time
from datetime import datetime

from aiohttp import web

from gateway.http.access import visible_scan
from gateway.http.appkeys import CONFIG, TICKETS
from gateway.http.audit import audit
from gateway.http.auth import TICKET_PARAM, principal
from gateway.http.operations import Permission, enveloped, operation
from gateway.http.responses import ok
from gateway.http.routes.scans import API, SCAN_ID
from gateway.http.schemas import StreamTicket

__all__ = ["MIN_TICKET_SECONDS", "issue_ticket", "routes"]

# Below this a ticket could expire while a finished scan's log is still being read.
MIN_TICKET_SECONDS = 60

routes = web.RouteTableDef()


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
    path = f"{API}/{scan.scan_id}/stream"
    return issue_ticket(
        request, scan.scan_id, scan.created_at, path, scan_id=scan.scan_id, owner=scan.owner
    )


def issue_ticket(
    request: web.Request, bound_to: str, created_at: str, path: str, **audited: str
) -> web.Response:
    """A ticket bound to one log (``bound_to``) and the caller, for the stream at ``path``;
    the audit line names the ticket's object (``audited``: its id and owner)."""
    config = request.app[CONFIG]
    ttl = config.auth.ticket_ttl_seconds
    if ttl is None:  # the scan's remaining lifetime, so reconnects keep working to its end
        started = datetime.fromisoformat(created_at).timestamp()
        remaining = started + config.upstream.scan_timeout_seconds - time.time()
        ttl = max(MIN_TICKET_SECONDS, remaining)
    ttl = int(min(config.auth.ticket_max_ttl_seconds, ttl))
    ticket = request.app[TICKETS].issue(principal(request).subject, bound_to, ttl)
    audit(request, "ticket.issued", **audited, expires_in=ttl)
    stream_url = f"{path}?{TICKET_PARAM}={ticket}"
    return ok(StreamTicket(ticket=ticket, expires_in=ttl, stream_url=stream_url))
