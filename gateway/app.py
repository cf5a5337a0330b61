"""The application factory: config in, a wired ``web.Application`` out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import aiohttp
from aiohttp import web

from gateway.backends.collections_factory import open_collections
from gateway.backends.factory import open_backend, open_limits
from gateway.config import Config
from gateway.domain.models import ScanRecord, strict_json
from gateway.engine.collections import CollectionManager
from gateway.engine.drain import Drain
from gateway.engine.hub import Hub
from gateway.engine.mock_mode import simulate
from gateway.engine.runner import ScanRunner
from gateway.http.appkeys import (
    BUS,
    COLLECTION_RUNNER,
    COLLECTIONS,
    CONFIG,
    DRAIN,
    HTTP_CLIENT,
    LIMITS,
    METRICS,
    REPORT_BUILDS,
    RUNNER,
    STORE,
    STREAMS,
    TICKETS,
    VERIFIER,
)
from gateway.http.auth import TicketIssuer, TokenVerifier, auth_middleware
from gateway.http.cors import add_cors_headers, preflight_middleware
from gateway.http.logs import add_request_id_header, request_id_middleware
from gateway.http.metrics import app_metrics, count_stream_answer, metrics_middleware
from gateway.http.responses import error_middleware
from gateway.http.routes import setup_routes
from gateway.http.streams import StreamRegistry
from gateway.identity.provider import provider_session
from gateway.scanners.client import stream_scan

__all__ = ["create_app"]

log = logging.getLogger(__name__)

# The head of a scanner's answer: its status line and each header at most this long, and at
# most this many headers (aiohttp's own defaults since 3.13.4, fixed here for older ones).
MAX_HEADER_LINE_BYTES = 8190
MAX_HEADERS = 128


def create_app(config: Config) -> web.Application:
    app = web.Application(
        middlewares=[
            request_id_middleware,
            preflight_middleware,
            metrics_middleware,
            error_middleware,
            auth_middleware,
        ],
        client_max_size=config.server.max_body_bytes,
    )
    app[CONFIG] = config
    app[VERIFIER] = TokenVerifier(config.jwt, config.auth)
    app[TICKETS] = TicketIssuer(config)
    if config.jwt.uses_dev_secret:
        log.warning("JWT secret is the development default; set XPLOYT_JWT_SECRET in production")
    if config.jwt.key_set_source is not None and config.jwt.audience is None:
        log.warning(
            "jwt.audience is not set: a token the identity provider issued for any of its "
            "clients is accepted here; set it to this gateway's audience"
        )
    if config.dev_mode:
        log.warning(
            "dev_mode is on: anyone who can reach this gateway (listening on %s) can mint a "
            "token for any subject at POST /api/v1/dev/token; never use it in production",
            config.server.host,
        )
    app[DRAIN] = Drain(config.server.drain_seconds)
    app[REPORT_BUILDS] = asyncio.Semaphore(config.limits.max_report_builds)
    app[METRICS] = app_metrics(app)
    app.on_response_prepare.extend([add_cors_headers, add_request_id_header, count_stream_answer])
    app.on_shutdown.append(_shut_down)
    app.cleanup_ctx.extend(
        [
            _key_set_ctx,
            _backend_ctx,
            _collections_ctx,
            _limits_ctx,
            _http_client_ctx,
            _runner_ctx,
            _collection_runner_ctx,
            _heartbeat_ctx,
        ]
    )
    setup_routes(app)
    return app


async def _shut_down(app: web.Application) -> None:
    # After the drain (gateway/serving.py), before the server waits for handlers, within the
    # grace period: each open stream sends a reconnect hint and ends, so clients resume from
    # their last id elsewhere (or here, after a restart); then the scans still running end
    # interrupted, each with its terminal event.
    app[STREAMS].shutdown()
    await app[RUNNER].close()


async def _key_set_ctx(app: web.Application) -> AsyncIterator[None]:
    """The identity provider's key set, fetched and refreshed in the background (requests
    never wait for a first fetch: until it lands, /readyz is 503 and tokens are too)."""
    key_set = app[VERIFIER].key_set
    if key_set is None:
        yield
        return
    async with provider_session(app[CONFIG].jwt) as session:
        refresh = asyncio.create_task(key_set.run(session), name="identity provider key set")
        yield
        refresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresh


async def _backend_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(subscriber_buffer=app[CONFIG].stream.subscriber_buffer)
    async with open_backend(app[CONFIG], hub) as (store, bus):
        app[STORE], app[BUS] = store, bus
        yield


async def _limits_ctx(app: web.Application) -> AsyncIterator[None]:
    # Closed after the runner and the streams have given their places back.
    config = app[CONFIG]
    async with open_limits(config) as limits:
        app[LIMITS] = limits
        streams = app[STREAMS] = StreamRegistry(
            limits, retry_ms=config.stream.retry_ms, spread_ms=config.stream.reconnect_spread_ms
        )
        if app[STORE].shared:
            # Every other replica serves this one's streams from the shared log: a drain sends
            # them there at once. An embedded store's streams are served here to the end.
            app[DRAIN].on_begin(streams.shutdown)
        yield


async def _collections_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_collections(app[CONFIG], app[STORE], app[BUS]) as collections:
        app[COLLECTIONS] = collections
        yield


async def _collection_runner_ctx(app: web.Application) -> AsyncIterator[None]:
    # Cleaned up before the runner: on_shutdown has ended the scans by then, and the
    # aggregators get a moment to write what that leaves them.
    manager = CollectionManager(
        app[RUNNER], app[STORE], app[BUS], app[COLLECTIONS], app[CONFIG], app[METRICS]
    )
    app[COLLECTION_RUNNER] = manager
    app[DRAIN].track(manager)
    await manager.start()
    yield
    await manager.close()


async def _heartbeat_ctx(app: web.Application) -> AsyncIterator[None]:
    beat = asyncio.create_task(
        app[STREAMS].heartbeat(app[CONFIG].stream.heartbeat_seconds), name="stream heartbeat"
    )
    yield
    beat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await beat


async def _http_client_ctx(app: web.Application) -> AsyncIterator[None]:
    upstream = app[CONFIG].upstream
    timeout = aiohttp.ClientTimeout(
        total=None,  # streams last as long as scans; the runner bounds them
        connect=upstream.connect_timeout_seconds,
        sock_read=upstream.idle_timeout_seconds,
    )
    # Every running scan holds one upstream connection for its whole life: aiohttp's default
    # pool of 100 would leave the 101st scan waiting until its connect timeout. Admission
    # (limits.max_running_scans) bounds them instead; readiness probes need a few more.
    # force_close: one connection per scan. A scan's answer decides how its connection ends,
    # so one scanner answer (a 204 with keep-alive, say) must never be the next scan's start.
    connector = aiohttp.TCPConnector(
        limit=app[CONFIG].limits.max_running_scans + 20, force_close=True
    )
    # Scanners are not trusted with the gateway's memory: no decompression (a gzip bomb is a
    # few bytes; upstream refuses encoded bodies instead), and bounded response heads.
    async with aiohttp.ClientSession(
        timeout=timeout,
        raise_for_status=False,
        connector=connector,
        auto_decompress=False,
        max_line_size=MAX_HEADER_LINE_BYTES,
        max_field_size=MAX_HEADER_LINE_BYTES,
        max_headers=MAX_HEADERS,
        # Requests to scanners are JSON: a NaN or an infinity is refused, never sent as NaN.
        json_serialize=strict_json,
    ) as session:
        app[HTTP_CLIENT] = session
        yield


async def _runner_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    session = app[HTTP_CLIENT]

    def upstream(scan: ScanRecord) -> AsyncGenerator[object, None]:
        body = {
            "scan_id": scan.scan_id,
            "repository_name": scan.repository_name,
            "configurations": scan.configurations,
        }
        url = config.scanners[scan.scanner_name]
        return stream_scan(session, scan.scanner_name, url, body, config.upstream)

    def simulation(scan: ScanRecord) -> AsyncGenerator[object, None]:
        return simulate(scan, config.mock)

    runner = ScanRunner(
        app[STORE],
        app[BUS],
        config,
        upstream=upstream,
        simulation=simulation,
        metrics=app[METRICS],
        limits=app[LIMITS],
    )
    app[STORE].on_lost(runner.abandon)
    app[RUNNER] = runner
    app[DRAIN].track(runner)
    yield
    await runner.close()
