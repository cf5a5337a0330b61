"""Every typed key for application and request state, in one place."""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession, web

from gateway.config import Config
from gateway.engine.collection_store import CollectionStore
from gateway.engine.collections import CollectionManager
from gateway.engine.drain import Drain
from gateway.engine.hub import Bus
from gateway.engine.instruments import Metrics
from gateway.engine.limits import Limits
from gateway.engine.runner import ScanRunner
from gateway.engine.store import Store
from gateway.http.streams import StreamRegistry
from gateway.identity.tokens import Principal, TicketIssuer, TokenVerifier

__all__ = [
    "BUS",
    "COLLECTIONS",
    "COLLECTION_RUNNER",
    "CONFIG",
    "DRAIN",
    "HTTP_CLIENT",
    "LIMITS",
    "METRICS",
    "PRINCIPAL",
    "REPORT_BUILDS",
    "REQUEST_ID",
    "RUNNER",
    "STORE",
    "STREAMS",
    "TICKETS",
    "VERIFIER",
]

CONFIG = web.AppKey("config", Config)
VERIFIER = web.AppKey("verifier", TokenVerifier)
TICKETS = web.AppKey("tickets", TicketIssuer)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", Bus)
HTTP_CLIENT = web.AppKey("http_client", ClientSession)
RUNNER = web.AppKey("runner", ScanRunner)
COLLECTIONS = web.AppKey("collections", CollectionStore)
COLLECTION_RUNNER = web.AppKey("collection_runner", CollectionManager)
LIMITS = web.AppKey("limits", Limits)
STREAMS = web.AppKey("streams", StreamRegistry)
DRAIN = web.AppKey("drain", Drain)
METRICS = web.AppKey("metrics", Metrics)
# Reports (SARIF, against a baseline) being built: at most ``limits.max_report_builds``.
REPORT_BUILDS = web.AppKey("report_builds", asyncio.Semaphore)

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
