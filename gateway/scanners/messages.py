"""A scanner's answer body as decoded JSON messages: the framing dialects and the decoding rules.

The response's content type chooses the dialect: SSE (each event's data is a message), NDJSON
(each line is one) or one JSON body (an object, or a list of them). The readers are fed by any
async iterator of byte chunks and give the same messages however the body is chunked.

Every limit holds while the body arrives, so memory stays bounded by them: a line
(``max_line_length``), an SSE event (``max_event_bytes``), a JSON body (``max_body_bytes``).
Past one, ``BodyError`` ends the read.

A message that is not acceptable JSON is not fatal: it becomes ``Malformed`` (counted and
skipped by the runner). Besides syntax errors that covers what Python's ``json`` would accept
but nothing downstream can carry: ``NaN`` and infinities (as constants or as ``1e999``), numbers
longer than ``max_number_digits``, nesting deeper than ``max_json_depth``, more values than
``max_json_values`` (counted before parsing, so a megabyte of ``{},`` costs nothing). Lone
surrogates (``"\\ud800"``), which cannot be encoded as UTF-8, become U+FFFD in every string, keys
included.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from gateway.config import UpstreamConfig
from gateway.domain.errors import UpstreamFault
from gateway.scanners.sse_parser import SSEEventTooLarge, SSELimitExceeded, iter_sse

__all__ = ["BodyError", "Malformed", "decode_message", "read_messages"]

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
        "application/json-lines",
    }
)
_EXCERPT = 200
_SURROGATES = re.compile("[\ud800-\udfff]")
# A JSON string, escapes included (written unrolled: linear on any input).
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


class BodyError(Exception):
    """The body cannot be read further; ``kind`` names the fault, the message says what the
    scanner did (the caller puts the scanner's name before it)."""

    def __init__(self, kind: UpstreamFault, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message that was not acceptable JSON: counted and skipped, never fatal."""

    text: str
    reason: str = "not valid JSON"


class _Refused(ValueError):
    """JSON that parses but that the gateway does not accept."""


class _TooDeep(ValueError):
    """Arrays and objects nested deeper than ``max_json_depth``."""


def read_messages(
    content_type: str, chunks: AsyncIterable[bytes], config: UpstreamConfig
) -> AsyncIterator[object]:
    """The messages of a body of ``content_type``, decoded (or ``Malformed``)."""
    content_type = content_type.lower()
    if content_type == "text/event-stream":
        return _sse_messages(chunks, config)
    if content_type in NDJSON_TYPES:
        return _ndjson_messages(chunks, config)
    if content_type == "application/json" or content_type.endswith("+json"):
        return _json_messages(chunks, config)
    raise BodyError(
        UpstreamFault.CONTENT_TYPE,
        f"answered with unsupported content type {content_type[:100]!r} "
        "(expected text/event-stream, NDJSON or JSON)",
    )


async def _sse_messages(
    chunks: AsyncIterable[bytes], config: UpstreamConfig
) -> AsyncIterator[object]:
    events = iter_sse(
        chunks, max_line_length=config.max_line_length, max_event_bytes=config.max_event_bytes
    )
    try:
        async for event in events:
            message = decode_message(event.data, config)
            yield _error_event(message, event.data) if event.type == "error" else message
    except SSELimitExceeded as exc:
        kind = (
            UpstreamFault.EVENT_TOO_LARGE
            if isinstance(exc, SSEEventTooLarge)
            else UpstreamFault.LINE_TOO_LONG
        )
        raise BodyError(kind, f"sent an {exc}") from None


def _error_event(message: object, data: str) -> dict[str, object]:
    """An ``event: error`` fails the scan, whatever its data holds: a JSON object keeps its
    fields (its ``error``, ``message`` or ``detail`` is the reason), anything else is the text."""
    if not isinstance(message, dict):
        return {"status": "failed", "error": data}
    reason = message.get("error") or message.get("message") or message.get("detail")
    return {**message, "status": "failed", "error": reason or "the scanner sent an error event"}


async def _ndjson_messages(
    chunks: AsyncIterable[bytes], config: UpstreamConfig
) -> AsyncIterator[object]:
    limit = config.max_line_length
    line = bytearray()  # the current line, never longer than the limit
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            _check_line(len(line) + end - start, limit)
            line += chunk[start:end]
            text = line.decode("utf-8", "replace").strip()
            line.clear()
            start = end + 1
            if text:
                yield decode_message(text, config)
        _check_line(len(line) + len(chunk) - start, limit)
        line += chunk[start:]
    # A last line without its newline is still a complete JSON document.
    text = line.decode("utf-8", "replace").strip()
    if text:
        yield decode_message(text, config)


def _check_line(length: int, limit: int) -> None:
    if length > limit:
        raise BodyError(
            UpstreamFault.LINE_TOO_LONG, f"sent an NDJSON line longer than {limit} bytes"
        )


async def _json_messages(
    chunks: AsyncIterable[bytes], config: UpstreamConfig
) -> AsyncIterator[object]:
    limit = config.max_body_bytes
    body = bytearray()
    async for chunk in chunks:
        if len(body) + len(chunk) > limit:
            raise BodyError(UpstreamFault.TOO_LARGE, f"answered with a body over {limit} bytes")
        body += chunk
    message = decode_message(body.decode("utf-8", "replace"), config)
    if isinstance(message, Malformed):  # the whole answer: nothing else will come
        raise BodyError(
            UpstreamFault.MALFORMED_BODY, f"answered with a JSON body that is {message.reason}"
        )
    if isinstance(message, list):
        for item in message:
            yield item
    else:
        yield message


def decode_message(text: str, config: UpstreamConfig) -> object:
    """One JSON document, cleaned (see the module docstring), or ``Malformed`` saying why."""
    digits = config.max_number_digits

    def number(literal: str) -> str:
        if len(literal) > digits:
            raise _Refused(f"a number longer than {digits} characters")
        return literal

    def parse_int(literal: str) -> int:
        return int(number(literal))

    def parse_float(literal: str) -> float:
        value = float(number(literal))
        if not math.isfinite(value):
            raise _Refused(f"a number out of range ({literal[:20]})")
        return value

    if _too_many_values(text, config.max_json_values):
        return Malformed(text[:_EXCERPT], f"more than {config.max_json_values} JSON values")
    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_float=parse_float, parse_int=parse_int
        )
        return _clean(value, config.max_json_depth)
    except (_TooDeep, RecursionError):  # RecursionError: the decoder's own limit, far deeper
        return Malformed(text[:_EXCERPT], f"nested deeper than {config.max_json_depth} levels")
    except _Refused as exc:
        return Malformed(text[:_EXCERPT], str(exc))
    except ValueError as exc:  # syntax errors (JSONDecodeError), and int()'s own digit limit
        return Malformed(text[:_EXCERPT], f"not valid JSON: {str(exc)[:100]}")


def _too_many_values(text: str, limit: int) -> bool:
    """Whether ``text`` holds more than ``limit`` JSON values, known before any is built: the
    commas and opening brackets outside strings, plus one (an object's keys are not counted
    apart). In constant memory: all of them first (in C, at once); only when that passes the
    limit are they counted between strings, stopping as soon as the limit is passed."""
    if _punctuation(text, 0, len(text)) < limit:
        return False
    count, position = 1, 0
    for string in _STRINGS.finditer(text):
        count += _punctuation(text, position, string.start())
        if count > limit:
            return True
        position = string.end()
    return count + _punctuation(text, position, len(text)) > limit


def _punctuation(text: str, start: int, end: int) -> int:
    return text.count(",", start, end) + text.count("[", start, end) + text.count("{", start, end)


def _refuse_constant(name: str) -> object:
    raise _Refused(f"{name} is not a JSON number")


def _clean(value: object, depth: int) -> object:
    """``value`` with lone surrogates replaced in every string; deeper than ``depth``
    levels of arrays and objects is refused."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict | list) and depth < 1:
        raise _TooDeep
    if isinstance(value, dict):
        return {_text(key): _clean(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item, depth - 1) for item in value]
    return value


def _text(value: str) -> str:
    return value if value.isascii() else _SURROGATES.sub("\ufffd", value)
