"""Liveness: the process runs and (embedded backend) its own store file answers."""

from aiohttp import web

from gateway.http.appkeys import CONFIG, STORE
from gateway.http.operations import enveloped, operation
from gateway.http.responses import ok
from gateway.http.schemas import Health

routes = web.RouteTableDef()


@routes.get("/healthz")
@operation(
    "healthz",
    "Liveness",
    "operations",
    {
        200: enveloped(
            Health,
            "The process runs and, with SQLite, its store answers (with Redis, only /readyz "
            "asks Redis).",
        )
    },
    errors=(503,),
    auth="public",
)
async def healthz(request: web.Request) -> web.Response:
    # A shared Redis being down is not this replica's fault: restarting every replica would
    # not help. /readyz reports it; liveness does not.
    if request.app[CONFIG].backend == "sqlite":
        await request.app[STORE].ping()
    return ok(Health(status="ok"))
