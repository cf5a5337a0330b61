"""Liveness: the process runs and (embedded backend) its own store file answers."""

from aiohttp import web

from gateway.http.appkeys import CONFIG, STORE
from gateway.http.responses import ok
from gateway.http.schemas import Health

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    # A shared Redis being down is not this replica's fault: restarting every replica would
    # not help. /readyz reports it; liveness does not.
    if request.app[CONFIG].backend == "sqlite":
        await request.app[STORE].ping()
    return ok(Health(status="ok"))
