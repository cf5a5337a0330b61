"""The Prometheus instruments updated as things happen (scan and collection outcomes, upstream
errors, request latency), in a registry of the app's own (tests build many apps).
``metrics`` adds the figures read only when Prometheus scrapes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scan_duration = Histogram(
            "xployt_scan_duration_seconds",
            "Scan durations, from creation to the terminal event",
            ["scanner", "outcome"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.collections = Counter(
            "xployt_collections",
            "Scan collections ended, by outcome (counted by the replica that wrote the end)",
            ["outcome"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "xployt_upstream_errors",
            "Scans failed by an upstream fault",
            ["scanner", "kind"],
            registry=self.registry,
        )
        self.stream_answers = Counter(
            "xployt_stream_answers",
            "What the stream routes answered, by route and status: streams opened (200), "
            "ended scans (204), refusals (401, 403, 404, 429, 503)",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "xployt_http_request_duration_seconds",
            "Request handling time by route; event streams are left out (they last as long "
            "as their scans)",
            ["method", "route", "status"],
            registry=self.registry,
        )
