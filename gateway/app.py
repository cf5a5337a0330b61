"""The application factory: config in, a wired ``web.Application`` out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

import aiohttp
from aiohttp import web

from .appkeys import BUS, CONFIG, HTTP_CLIENT, METRICS, RUNNER, STORE, STREAMS, TICKETS, VERIFIER
from .auth import TicketIssuer, TokenVerifier, auth_middleware
from .config import Config
from .cors import add_cors_headers, preflight_middleware
from .errors import StoreUnavailable
from .hub import Hub
from .logs import add_request_id_header, request_id_middleware
from .metrics import Metrics, metrics_middleware
from .mock_mode import simulate
from .models import ScanRecord, strict_json
from .redis_bus import RedisBus
from .responses import error_middleware
from .routes import setup_routes
from .runner import ScanRunner
from .store import RedisStore, SQLiteStore, Store
from .streams import StreamRegistry
from .upstream import stream_scan

__all__ = ["create_app"]

log = logging.getLogger(__name__)

RESTART_REASON = "interrupted: gateway restarted"
# The head of a scanner's answer: its status line and each header at most this long, and at
# most this many headers (aiohttp's own defaults since 3.13.4, fixed here for older ones).
MAX_HEADER_LINE_BYTES = 8190
MAX_HEADERS = 128
REPLICA_LOST = "interrupted: replica lost"


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
    app[VERIFIER] = TokenVerifier(config.jwt)
    app[TICKETS] = TicketIssuer(config)
    hub = Hub(subscriber_buffer=config.stream.subscriber_buffer)
    app[BUS] = RedisBus(hub) if config.backend == "redis" else hub
    if config.jwt.uses_dev_secret:
        log.warning("JWT secret is the development default; set XPLOYT_JWT_SECRET in production")
    if config.dev_mode:
        log.warning(
            "dev_mode is on: anyone who can reach this gateway (listening on %s) can mint a "
            "token for any subject at POST /api/v1/dev/token; never use it in production",
            config.server.host,
        )
    app[STREAMS] = StreamRegistry(
        max_per_subject=config.limits.max_streams_per_subject,
        retry_after=config.limits.retry_after_seconds,
    )
    app[METRICS] = Metrics(app)
    app.on_response_prepare.extend([add_cors_headers, add_request_id_header])
    app.on_shutdown.append(_shut_down)
    app.cleanup_ctx.extend([_store_ctx, _http_client_ctx, _runner_ctx, _heartbeat_ctx])
    setup_routes(app)
    return app


async def _shut_down(app: web.Application) -> None:
    # Runs before the server waits for handlers, within the grace period: each open stream
    # sends a reconnect hint and ends, so clients resume from their last id elsewhere (or
    # here, after a restart); then running scans end interrupted, each with its terminal event.
    app[STREAMS].shutdown()
    await app[RUNNER].close()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    if config.backend == "redis":
        async with _redis_store(app):
            yield
        return
    store = await SQLiteStore.open(config.database.path)
    store.on_append(app[BUS].publish)
    # One process owns this file: whatever it left running died with it.
    await _interrupt(store, RESTART_REASON)
    app[STORE] = store
    yield
    await store.close()


@contextlib.asynccontextmanager
async def _redis_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[CONFIG].redis
    store = await RedisStore.open(
        settings.url,
        key_prefix=settings.key_prefix,
        retention_seconds=settings.retention_seconds,
        record_retention_seconds=settings.record_retention_seconds,
        lease_seconds=settings.lease_seconds,
    )
    bus = app[BUS]
    assert isinstance(bus, RedisBus)
    bus.attach(store)  # live events reach this replica's subscribers from Redis, not here
    app[STORE] = store
    sweeper = asyncio.create_task(
        _sweep(store, settings.sweep_interval_seconds, settings.lease_seconds), name="sweeper"
    )
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await store.close()


async def _sweep(store: Store, interval: float, lease: float) -> None:
    """End the scans of replicas that stopped renewing their leases (every replica looks;
    the store makes sure each such scan gets exactly one terminal event).

    Only once Redis has answered this replica for a whole lease: leases lapse while Redis is
    down, and their owners need that long to renew them when it is back."""
    answering_since: float | None = None
    while True:
        try:
            if answering_since is None:
                await store.ping()
                answering_since = time.monotonic()
            if time.monotonic() - answering_since >= lease:
                await _interrupt(store, REPLICA_LOST)
        except StoreUnavailable as exc:
            if answering_since is not None:
                log.warning("could not look for scans of lost replicas: %s", exc.message)
            answering_since = None
        except Exception:  # a bug, or a record it cannot read: the next round tries again
            log.exception("looking for scans of lost replicas failed")
        await asyncio.sleep(interval)


async def _interrupt(store: Store, reason: str) -> None:
    interrupted = await store.interrupt_unfinished(reason)
    if interrupted:
        log.warning("marked %d scan(s) left running as failed: %s", len(interrupted), reason)


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
    connector = aiohttp.TCPConnector(limit=app[CONFIG].limits.max_running_scans + 20)
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
        store_retry_seconds=config.redis.store_retry_seconds if config.backend == "redis" else 0,
    )
    app[STORE].on_lost(runner.abandon)
    app[RUNNER] = runner
    yield
    await runner.close()
