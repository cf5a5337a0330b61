"""Prometheus metrics of a running app, in a registry of the app's own (tests build many apps).

Hot-path figures (events delivered, streams open, subscribers per scan) are plain counters on
the hub and the stream registry, read from the app's state only when Prometheus scrapes; rarer
ones (scan outcomes, upstream errors, request latency) are the instruments of ``instruments``,
updated as they happen (request latency by the middleware here).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway.engine.instruments import Metrics
from gateway.http.appkeys import BUS, COLLECTION_RUNNER, DRAIN, METRICS, RUNNER, STREAMS
from gateway.http.streams import STREAM_ROUTES

__all__ = ["app_metrics", "count_stream_answer", "metrics_middleware"]

_SUBSCRIBER_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000, 5000)


def app_metrics(app: web.Application) -> Metrics:
    """The app's metrics: the instruments, and the live figures of ``app`` read at scrapes."""
    metrics = Metrics()
    metrics.registry.register(_LiveCollector(app))
    return metrics


class _LiveCollector(Collector):
    """Reads the hub, the stream registry and the runners when Prometheus scrapes."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        bus, streams = self._app[BUS], self._app[STREAMS]
        runner = self._app.get(RUNNER)
        yield GaugeMetricFamily("xployt_open_streams", "Open event streams", value=len(streams))
        yield GaugeMetricFamily(
            "xployt_running_scans", "Scans running", value=runner.running if runner else 0
        )
        drain = self._app[DRAIN]
        yield GaugeMetricFamily(
            "xployt_draining",
            "1 while the gateway drains before it stops (SIGTERM), else 0",
            value=int(drain.draining),
        )
        yield GaugeMetricFamily(
            "xployt_drain_remaining_seconds",
            "Seconds the drain still waits for running scans at most (server.drain_seconds "
            "before it begins)",
            value=drain.remaining(),
        )
        manager = self._app.get(COLLECTION_RUNNER)
        yield GaugeMetricFamily(
            "xployt_running_collections",
            "Scan collections this replica aggregates",
            value=manager.aggregating if manager else 0,
        )
        yield CounterMetricFamily(
            "xployt_events_in", "Events appended to scan logs", value=bus.stats.published
        )
        yield CounterMetricFamily(
            "xployt_events_out",
            "Live event copies queued for subscribers",
            value=bus.stats.delivered,
        )
        yield CounterMetricFamily(
            "xployt_events_replayed",
            "Events sent from the log on join or resume",
            value=streams.replayed,
        )
        yield CounterMetricFamily(
            "xployt_slow_consumer_disconnects",
            "Subscribers cut off for falling behind",
            value=bus.stats.slow_disconnects,
        )
        counts = bus.subscriber_counts()
        buckets = [(str(float(b)), float(sum(c <= b for c in counts))) for b in _SUBSCRIBER_BUCKETS]
        yield GaugeHistogramMetricFamily(
            "xployt_subscribers_per_scan",
            "Subscribers of each scan that has any, as a histogram (no label per scan)",
            buckets=[*buckets, ("+Inf", float(len(counts)))],
            gsum_value=float(sum(counts)),
        )


@web.middleware
def metrics_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Request latency by route. The stream routes are left out, whatever they answer: they
    last as long as scans, and passed on without a coroutine they keep no frame of it (their
    answers are counted by ``count_stream_answer`` instead)."""
    if request.match_info.route.name in STREAM_ROUTES:
        return handler(request)
    return _timed(request, handler)


async def _timed(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)  # outermost but for preflights: errors are responses
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[METRICS].request_latency.labels(
        request.method, route, str(response.status)
    ).observe(time.perf_counter() - started)
    return response


async def count_stream_answer(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: what a stream route answers, by status (a stream opened, a
    refusal), counted as the answer starts, so that no frame is kept while the stream lasts."""
    route = request.match_info.route.name
    if route in STREAM_ROUTES:
        request.app[METRICS].stream_answers.labels(route, str(response.status)).inc()
