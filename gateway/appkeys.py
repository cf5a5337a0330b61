"""Every typed key for application and request state, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import ClientSession, web

if TYPE_CHECKING:
    from .auth import Principal, TicketIssuer, TokenVerifier
    from .config import Config
    from .hub import Bus
    from .metrics import Metrics
    from .runner import ScanRunner
    from .store import Store
    from .streams import StreamRegistry

__all__ = [
    "BUS",
    "CONFIG",
    "HTTP_CLIENT",
    "METRICS",
    "PRINCIPAL",
    "REQUEST_ID",
    "RUNNER",
    "STORE",
    "STREAMS",
    "TICKETS",
    "VERIFIER",
]

CONFIG: web.AppKey[Config] = web.AppKey("config")
VERIFIER: web.AppKey[TokenVerifier] = web.AppKey("verifier")
TICKETS: web.AppKey[TicketIssuer] = web.AppKey("tickets")
STORE: web.AppKey[Store] = web.AppKey("store")
BUS: web.AppKey[Bus] = web.AppKey("bus")
HTTP_CLIENT: web.AppKey[ClientSession] = web.AppKey("http_client")
RUNNER: web.AppKey[ScanRunner] = web.AppKey("runner")
STREAMS: web.AppKey[StreamRegistry] = web.AppKey("streams")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
