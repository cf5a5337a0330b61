"""Operations: readiness (not draining; store and scanners answer) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config import Config
from gateway.domain.errors import NotFound, StoreUnavailable, Unauthorized
from gateway.domain.models import utcnow
from gateway.http.appkeys import CONFIG, DRAIN, HTTP_CLIENT, METRICS, STORE, VERIFIER
from gateway.http.operations import enveloped, operation, text, unwrapped
from gateway.http.responses import json_response, ok
from gateway.http.schemas import NotReady, Readiness

__all__ = ["routes"]

routes = web.RouteTableDef()


def health_urls(config: Config) -> dict[str, str]:
    """Where each scanner's health is asked: configured, else ``<origin>/healthz``."""
    urls = {}
    for name, url in config.scanners.items():
        parts = urlsplit(url)
        urls[name] = config.readiness.scanner_health_urls.get(
            name, f"{parts.scheme}://{parts.netloc}/healthz"
        )
    return urls


async def _check(session: aiohttp.ClientSession, url: str, seconds: float) -> str:
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=seconds), allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                # A scanner must not make the gateway request another address.
                return f"HTTP {response.status} (redirects are not followed)"
            return "ok" if response.status < 400 else f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"


@routes.get("/readyz")
@operation(
    "readyz",
    "Readiness",
    "operations",
    {
        200: enveloped(Readiness, "The store and every checked scanner answer."),
        503: unwrapped(NotReady, "Something does not answer; `data.checks` says what."),
    },
    description=(
        "Checks the store, the identity provider's key set once loaded (with `jwt.jwks_url` "
        "or `jwt.oidc_issuer`: not ready until a first one is) and, unless "
        "`readiness.check_scanners` is false, each configured scanner's health URL. A gateway "
        "that is draining before it stops answers 503 at once, its one check `drain`."
    ),
    auth="public",
)
async def readyz(request: web.Request) -> web.Response:
    """200 only when the gateway is not draining and the store and (for SSE mode) every
    configured scanner answer."""
    config = request.app[CONFIG]
    drain = request.app[DRAIN]
    if drain.draining:  # the load balancer is to send new work elsewhere: no need to ask more
        left = f"{drain.running} running, {drain.remaining():.0f} s left at most"
        return _not_ready({"drain": f"draining before it stops ({left})"})
    checks: dict[str, str] = {}
    try:
        await request.app[STORE].ping()
        checks["store"] = "ok"
    except StoreUnavailable as exc:
        checks["store"] = exc.message
    if request.app[VERIFIER].key_set is not None:
        checks["keys"] = request.app[VERIFIER].status()
    if config.readiness.check_scanners:
        urls = health_urls(config)
        session = request.app[HTTP_CLIENT]
        results = await asyncio.gather(
            *(_check(session, url, config.readiness.timeout_seconds) for url in urls.values())
        )
        checks.update(
            {f"scanner:{name}": result for name, result in zip(urls, results, strict=True)}
        )
    if all(result == "ok" for result in checks.values()):
        return ok(Readiness(status="ready", checks=checks))
    return _not_ready(checks)


def _not_ready(checks: dict[str, str]) -> web.Response:
    data = Readiness(status="not ready", checks=checks)
    failing = ", ".join(name for name, result in checks.items() if result != "ok")
    message = f"not ready: {failing}"
    body = NotReady(False, data, "not_ready", message, message, utcnow())
    return json_response(msgspec.to_builtins(body), status=503)


@routes.get("/metrics")
@operation(
    "metrics",
    "Prometheus metrics",
    "operations",
    {200: text("text/plain", "The Prometheus text exposition format.")},
    errors=(401, (404, "Metrics are off (`metrics.enabled: false`).")),
    description=(
        "Needs `Authorization: Bearer <metrics.token>` when `metrics.token` is set (401 "
        "without it); open otherwise."
    ),
    auth="metrics",
)
async def metrics(request: web.Request) -> web.Response:
    config = request.app[CONFIG].metrics
    if not config.enabled:
        raise NotFound(f"no route for GET {request.path}")
    if config.token is not None:
        header = request.headers.get("Authorization", "")
        if not hmac.compare_digest(header.encode(), f"Bearer {config.token}".encode()):
            raise Unauthorized(
                "metrics need the configured metrics token", token_given=bool(header)
            )
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
