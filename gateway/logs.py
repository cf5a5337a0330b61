"""Logging that never carries credentials: the access log redacts token-bearing parameters."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

__all__ = ["SECRET_PARAMS", "RedactingAccessLogger", "TokenFilter", "redact_query"]

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
        )


class TokenFilter(logging.Filter):
    """A last guard on every log record: anything shaped like a JWT is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _JWT.search(message):
            record.msg = _JWT.sub(REDACTED, message)
            record.args = None
        return True
