"""Logging that never carries credentials: the access log redacts token-bearing parameters."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web import BaseRequest, StreamResponse

from .appkeys import REQUEST_ID

__all__ = [
    "SECRET_PARAMS",
    "ContextFilter",
    "JSONFormatter",
    "RedactingAccessLogger",
    "TokenFilter",
    "add_request_id_header",
    "redact_query",
    "request_id_middleware",
    "request_id_var",
    "scan_id_var",
]

# Set per request and per scan task; every log record made meanwhile carries them.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
scan_id_var: ContextVar[str | None] = ContextVar("scan_id", default=None)
_INCOMING_ID = re.compile(r"[\w.:-]{1,128}")

# Query parameters that carry credentials: query tokens and stream tickets.
SECRET_PARAMS = frozenset({"token", "access_token", "ticket"})
REDACTED = "[redacted]"
# Anything shaped like a JWT (three base64url parts, the first a JSON header).
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*")


def redact_query(path_qs: str) -> str:
    path, sep, query = path_qs.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    cleaned = [(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
    return f"{path}?{urlencode(cleaned, safe='[]')}"


class RedactingAccessLogger(AbstractAccessLogger):
    """``remote "METHOD path?query" status bytes seconds`` with credentials redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.6fs',
            request.remote,
            request.method,
            redact_query(request.path_qs),
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
            extra={"request_id": request.get(REQUEST_ID)},
        )


class TokenFilter(logging.Filter):
    """A last guard on every log record: anything shaped like a JWT is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _JWT.search(message):
            record.msg = _JWT.sub(REDACTED, message)
            record.args = None
        return True


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id for every request: the caller's ``X-Request-ID`` when sane, else new."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _INCOMING_ID.fullmatch(incoming) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    try:
        return await handler(request)
    finally:
        request_id_var.reset(token)


async def add_request_id_header(request: web.Request, response: StreamResponse) -> None:
    """``on_response_prepare``: echo the id, streams included."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id


class ContextFilter(logging.Filter):
    """Stamps each record with the request and scan ids of the context that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "scan_id", None) is None:
            record.scan_id = scan_id_var.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request and scan ids (from
    ``ContextFilter``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "scan_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
