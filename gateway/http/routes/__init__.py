"""HTTP routes: the scan and collection APIs, their event streams and tickets, and health."""

from aiohttp import web

from gateway.http.routes import (
    collection_results,
    collection_stream,
    collections,
    demo,
    health,
    openapi,
    ops,
    scans,
    session,
    stream,
    stream_tickets,
)

__all__ = ["setup_routes"]


def setup_routes(app: web.Application) -> None:
    app.add_routes(health.routes)
    app.add_routes(scans.routes)
    app.add_routes(stream.routes)
    app.add_routes(stream_tickets.routes)
    app.add_routes(collections.routes)
    app.add_routes(collection_results.routes)
    app.add_routes(collection_stream.routes)
    app.add_routes(session.routes)
    app.add_routes(ops.routes)
    app.add_routes(openapi.routes)
    app.add_routes(demo.routes)
