"""Logging that never carries credentials: the access log redacts token-bearing parameters,
and a filter on every handler redacts whatever else could carry one (message, arguments,
exception text, stack, extra fields), aiohttp's own records of malformed requests included."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web import BaseRequest, StreamResponse

from gateway.domain.log_context import request_id_var, scan_id_var
from gateway.http.appkeys import REQUEST_ID

__all__ = [
    "SECRET_PARAMS",
    "ContextFilter",
    "JSONFormatter",
    "ParseErrorFilter",
    "RedactingAccessLogger",
    "TokenFilter",
    "add_request_id_header",
    "configure_logging",
    "redact_query",
    "request_id_middleware",
]

# A caller's X-Request-ID is kept only when it is a plain bounded id: no dots, so never a JWT.
_INCOMING_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Query parameters that carry credentials: query tokens and stream tickets.
SECRET_PARAMS = frozenset({"token", "access_token", "ticket"})
REDACTED = "[redacted]"
# Anything shaped like a JWT, whole or cut short (base64url of '{"', then up to two more parts).
_JWT = re.compile(r"eyJ[\w-]{4,}(?:\.[\w-]*){0,2}")
# "Bearer <anything>", as an Authorization header carries it (raw request text in aiohttp's
# parse errors shows it bytes-escaped, so the value runs up to a space or a quote).
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s'\"]+")
# Any parameter, its name percent-encoded or not (aiohttp decodes ``tok%65n`` to ``token``):
# those whose decoded name is a credential's have their value replaced.
_PARAM = re.compile(r"(?<![\w%])((?:\w|%[0-9A-Fa-f]{2})+)=[^&\s'\"#]+")
# The attributes every LogRecord has; any other one is an ``extra`` field.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
# aiohttp's loggers: their records (parse errors quote the raw request) are redacted where
# they are made, before any handler, even one added later, sees them.
AIOHTTP_LOGGERS = ("aiohttp.access", "aiohttp.client", "aiohttp.server", "aiohttp.web")


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
    """A last guard on every log record: credentials are replaced wherever the record carries
    them. JWT-shaped strings, ``Bearer <anything>``, the values of token/access_token/ticket
    parameters and of the session cookie (``cookie_name``), whether or not they look like
    JWTs; in the message and its arguments, the exception text (formatted here, once, so no
    formatter renders the raw exception), the stack and every extra field."""

    def __init__(self, cookie_name: str = "xployt_session") -> None:
        super().__init__()
        self._cookie = re.compile(rf"(?<![\w-]){re.escape(cookie_name)}=[^;\s'\"]+")

    def redact(self, text: str) -> str:
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
        text = _PARAM.sub(_redact_param, text)
        text = self._cookie.sub(lambda match: match[0].partition("=")[0] + "=" + REDACTED, text)
        return _JWT.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # unformattable: logging would print msg and args raw
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in record.__dict__.items():
            if name not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, name, self.redact(value))
            elif name not in _RECORD_FIELDS and isinstance(value, dict):  # the audit fields
                setattr(record, name, {k: self._redacted(v) for k, v in value.items()})
        return True

    def _redacted(self, value: object) -> object:
        return self.redact(value) if isinstance(value, str) else value


_EXCEPTIONS = logging.Formatter()


def _redact_param(match: re.Match[str]) -> str:
    name = match[1]
    return f"{name}={REDACTED}" if unquote(name).lower() in SECRET_PARAMS else match[0]


def configure_logging(level: str, *, json_lines: bool, cookie_name: str) -> None:
    """The process's logging: one stream handler with the token and context filters (and
    JSON lines if asked), and the token filter on aiohttp's own loggers too."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(TokenFilter(cookie_name))
        handler.addFilter(ContextFilter())
        if json_lines:
            handler.setFormatter(JSONFormatter())
    logging.getLogger("aiohttp.server").addFilter(ParseErrorFilter())
    for name in AIOHTTP_LOGGERS:
        logging.getLogger(name).addFilter(TokenFilter(cookie_name))


class ParseErrorFilter(logging.Filter):
    """aiohttp logs a request it cannot parse as an ERROR with a traceback: a kilobyte or two
    of log for sixty bytes anyone can send. It is the client's fault, not the gateway's: one
    WARNING line, the parser's reason cut short, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            reason = f"{type(error).__name__}: {error.message}"[:_PARSE_ERROR_CHARS]
            record.msg, record.args = f"{record.getMessage()}: {reason}", None
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_PARSE_ERROR_CHARS = 200


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
    ``ContextFilter``), and an audit line's fields (``http.audit``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "scan_id", "audit"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        # The exception text TokenFilter left (redacted), never the raw exception again.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)
