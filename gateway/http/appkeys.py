"""Every typed key for application and request state, in one place."""

from __future__ import annotations

from aiohttp import ClientSession, web

from gateway.config import Config
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
    "CONFIG",
    "DRAIN",
    "HTTP_CLIENT",
    "LIMITS",
    "METRICS",
    "PRINCIPAL",
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
LIMITS = web.AppKey("limits", Limits)
STREAMS = web.AppKey("streams", StreamRegistry)
DRAIN = web.AppKey("drain", Drain)
METRICS = web.AppKey("metrics", Metrics)

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
