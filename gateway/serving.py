"""Serving the app: its listening socket, the signals, the drain, the stop.

SIGTERM begins a drain (``engine/drain.py``): ``/readyz`` answers 503 at once, no new scan
starts here (503 ``draining``), streams move to other replicas where the store is shared, and
the running scans may end on their own for up to ``server.drain_seconds``; with none running
the drain is over at once. Then the app stops as it always has: streams are told to reconnect,
the scans still running end interrupted, handlers get ``server.shutdown_grace_seconds``, the
store closes. SIGINT, or a second SIGTERM, stops at once (during a drain too). A SIGTERM that
arrives while the app starts takes effect once it listens; SIGINT then stops the start itself.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from gateway.config import ServerConfig
from gateway.engine.drain import Drain
from gateway.http.appkeys import DRAIN
from gateway.http.logs import RedactingAccessLogger

__all__ = ["run", "serve"]

log = logging.getLogger("gateway")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_CANCEL_AGAIN_SECONDS = 0.5


class _Signals:
    """What the signals received so far ask for: ``stopping`` (any signal: serve nothing
    new) and ``now`` (SIGINT or a second SIGTERM: no drain, or no more of it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.stopping = asyncio.Event()
        self.now = asyncio.Event()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if sig is signal.SIGTERM and not self.stopping.is_set():
            log.info("SIGTERM: draining; a second SIGTERM or SIGINT stops at once")
        elif not self.now.is_set():
            log.info("%s: stopping at once", sig.name)
            self.now.set()
        self.stopping.set()

    def remove(self) -> None:
        for sig in _SIGNALS:
            self._loop.remove_signal_handler(sig)


async def serve(app: web.Application, server: ServerConfig) -> None:
    """Serve ``app`` on ``server.host``/``server.port`` until a signal says to stop."""
    signals = _Signals(asyncio.get_running_loop())
    runner = web.AppRunner(
        app,
        handle_signals=False,  # _Signals' own handlers
        handler_cancellation=True,  # a client that goes away ends its stream at once
        keepalive_timeout=server.keepalive_timeout_seconds,  # also bounds dripped headers
        access_log_class=RedactingAccessLogger,
        shutdown_timeout=server.shutdown_grace_seconds,
    )
    try:
        if await _unless(signals.now, _listen(runner, server)):
            await signals.stopping.wait()
            await _unless(signals.now, _drain(app[DRAIN]))
    finally:
        await runner.cleanup()
        signals.remove()


async def _listen(runner: web.AppRunner, server: ServerConfig) -> None:
    await runner.setup()  # the app's startup: its cleanup_ctx, the store first
    site = web.TCPSite(runner, server.host, server.port, backlog=server.backlog)
    await site.start()
    log.info("======== Running on %s ========", site.name)


async def _drain(drain: Drain) -> None:
    drain.begin()
    began = time.monotonic()
    log.info(
        "draining: %d running; waiting up to %g s for them to end", drain.running, drain.seconds
    )
    left = await drain.wait()
    took = time.monotonic() - began
    if left:
        log.warning("drain over after %.1f s: %d still running end interrupted", took, left)
    else:
        log.info("drained in %.1f s: nothing runs any more", took)


async def _unless(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` to its end, unless ``stop`` is set first (``work`` is then cancelled);
    whether it ran to its end."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        while not task.done():
            # Again until it ends: on Python 3.11 a cancel that arrives as asyncio.wait_for's
            # inner call completes is lost (fixed in 3.12), as in redis-py's connect.
            task.cancel()
            await asyncio.wait([task], timeout=_CANCEL_AGAIN_SECONDS)
        await asyncio.wait([stopped])  # its CancelledError stays in it
    if task.cancelled():
        return False
    task.result()  # its exception, if it failed
    return True


def run(app: web.Application, server: ServerConfig, loop: asyncio.AbstractEventLoop) -> None:
    """``serve`` on ``loop``, then close the loop (what is left of its tasks cancelled)."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(app, server))
    except KeyboardInterrupt:  # Ctrl-C before the handlers were installed
        pass
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
