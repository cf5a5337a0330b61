"""Liveness: the process runs and its store answers."""

from aiohttp import web

from ..appkeys import STORE
from ..responses import ok

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    await request.app[STORE].ping()
    return ok({"status": "ok"})
