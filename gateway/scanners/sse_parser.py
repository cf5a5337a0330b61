"""Incremental parser for ``text/event-stream`` bodies (Server-Sent Events).

Implements the parsing rules of the WHATWG HTML Standard, section 9.2.6 "Interpreting an event
stream" (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
The EventSource reconnection logic is out of scope: the parser only reports the ``retry`` value
and the last event ID so that the caller can reconnect as it sees fit.

Bytes go in through :meth:`SSEParser.feed` in chunks of any size; complete events come out as
:class:`SSEEvent`. :func:`iter_sse` wraps this for an async iterable of chunks such as aiohttp's
``response.content.iter_any()``. Two limits keep memory bounded against a misbehaving upstream,
each raising a :class:`SSELimitExceeded`: a line longer than ``max_line_length`` characters
(:class:`SSELineTooLong`), and an event whose data is larger than ``max_event_bytes`` UTF-8
bytes (:class:`SSEEventTooLarge`), counted as the lines arrive, before the blank line that would
dispatch it. The parser holds at most one line and one event's data.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = [
    "SSEEvent",
    "SSEEventTooLarge",
    "SSELimitExceeded",
    "SSELineTooLong",
    "SSEParser",
    "iter_sse",
]

# Spec: a line ends with CRLF, a LF not preceded by CR, or a CR not followed by LF.
_LINE_END = re.compile(r"\r\n?|\n")
# Spec, "retry": the value must consist of only ASCII digits (str.isdigit would accept others).
_ASCII_DIGITS = re.compile(r"[0-9]+")
# int() refuses strings longer than sys.get_int_max_str_digits() (4300 by default).
_INT_CHUNK = 4000


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: ``type`` ("message" by default), ``data`` and the last event ID."""

    type: str
    data: str
    id: str


class SSELimitExceeded(ValueError):
    """The stream broke one of the parser's limits; the parser refuses further input.

    ``events`` holds the events completed earlier in the same ``feed()`` call, which the
    exception would otherwise lose.
    """

    def __init__(self, message: str, limit: int, events: list[SSEEvent] | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.events: list[SSEEvent] = events if events is not None else []


class SSELineTooLong(SSELimitExceeded):
    """A line of the stream is longer than the parser's ``max_line_length`` characters."""

    def __init__(self, limit: int, events: list[SSEEvent] | None = None) -> None:
        super().__init__(f"SSE line longer than {limit} characters", limit, events)


class SSEEventTooLarge(SSELimitExceeded):
    """An event's data is larger than the parser's ``max_event_bytes`` (UTF-8 bytes)."""

    def __init__(self, limit: int, events: list[SSEEvent] | None = None) -> None:
        super().__init__(f"SSE event larger than {limit} bytes", limit, events)


class SSEParser:
    """Turns the bytes of one event stream into events, chunk by chunk."""

    def __init__(self, *, max_line_length: int = 65536, max_event_bytes: int = 1 << 20) -> None:
        if max_line_length < 1:
            raise ValueError(f"max_line_length must be at least 1, got {max_line_length}")
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be at least 1, got {max_event_bytes}")
        self._max = max_line_length
        self._max_event = max_event_bytes
        # Spec: decode with "UTF-8 decode", so invalid bytes become U+FFFD.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True  # no character decoded yet: a BOM here is stripped
        self._after_cr = False  # the last character was a CR: a LF next completes a CRLF
        self._pending: list[str] = []  # pieces of the current unterminated line
        self._pending_len = 0
        self._failed: SSELimitExceeded | None = None
        self._closed = False
        # Spec: the data, event type and last event ID buffers start as the empty string. The
        # data buffer is kept UTF-8 encoded, without the LF the spec appends to its last line
        # (it is removed at dispatch anyway): its length is the event's size, and it costs that
        # many bytes whatever the number of lines. ``_has_data``: a "data" field arrived.
        self._data = bytearray()
        self._has_data = False
        self._event_type = ""
        self._id_buffer = ""
        self._last_event_id = ""
        # The digits of the last valid retry field, converted only when asked for: turning a
        # line of a million digits into an int takes seconds, and a stream may send many.
        self._retry: str | None = None

    @property
    def retry(self) -> int | None:
        """The last valid ``retry`` field, in milliseconds; ``None`` if none was seen."""
        return None if self._retry is None else _decimal(self._retry)

    @property
    def last_event_id(self) -> str:
        """The last event ID string, as set at each dispatch (what a reconnection should send)."""
        return self._last_event_id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse the next chunk of the stream and return the events it completes."""
        self._check_usable()
        return self._push(self._decoder.decode(chunk))

    def close(self) -> list[SSEEvent]:
        """End the stream: flush the decoder and discard any unterminated line and event."""
        self._check_usable()
        self._closed = True
        # A CR that ended the last chunk was already taken as a line end, and the decoder's
        # leftovers (U+FFFD at most) hold no line end, so this normally returns []. Spec: at the
        # end of the file pending data is discarded, so the unterminated line and event are not
        # processed, and the parser takes no more input.
        return self._push(self._decoder.decode(b"", final=True))

    def _check_usable(self) -> None:
        if isinstance(self._failed, SSELineTooLong):
            raise SSELineTooLong(self._max)
        if self._failed is not None:
            raise SSEEventTooLarge(self._max_event)
        if self._closed:
            raise ValueError("the SSE parser is closed")

    def _push(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            # Spec: the UTF-8 decode algorithm strips one leading BOM, at the start only.
            if text[0] == "\ufeff":
                text = text[1:]
        # A CR is a line end as soon as it is seen (so a CR-only stream is not delayed until the
        # next chunk); a LF right after it, even in the next chunk, belongs to the same CRLF.
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        *lines, rest = _LINE_END.split(text)
        events: list[SSEEvent] = []
        for line in lines:
            if self._pending:
                line = self._take_pending(line)
            self._check_length(len(line), events)
            try:
                event = self._process_line(line)
            except SSEEventTooLarge as exc:
                self._failed = exc
                exc.events = events
                raise
            if event is not None:
                events.append(event)
        self._check_length(self._pending_len + len(rest), events)
        if rest:
            self._pending.append(rest)
            self._pending_len += len(rest)
        return events

    def _take_pending(self, tail: str) -> str:
        self._pending.append(tail)
        line = "".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        return line

    def _check_length(self, length: int, events: list[SSEEvent]) -> None:
        if length > self._max:
            self._failed = SSELineTooLong(self._max, events)
            raise self._failed

    def _process_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()  # Spec: a blank line dispatches the event.
        if line[0] == ":":
            return None  # Spec: a line starting with a colon is a comment.
        # Spec: field name before the first colon, value after it; no colon: value is "".
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]  # Spec: remove one leading space only.
        self._process_field(name, value)
        return None

    def _process_field(self, name: str, value: str) -> None:
        # Spec: field names are compared literally; unknown fields are ignored.
        match name:
            case "event":
                self._event_type = value
            case "data":
                self._append_data(value)
            case "id":
                if "\0" not in value:  # Spec: an id containing NULL is ignored.
                    self._id_buffer = value
            case "retry":
                if _ASCII_DIGITS.fullmatch(value):
                    self._retry = value

    def _append_data(self, value: str) -> None:
        # Spec: append the value, then a LF. Here the LF goes before every line but the first,
        # which is the same buffer with its final LF already removed.
        encoded = value.encode()
        size = len(self._data) + self._has_data + len(encoded)
        if size > self._max_event:
            raise SSEEventTooLarge(self._max_event)
        if self._has_data:
            self._data += b"\n"
        self._data += encoded
        self._has_data = True

    def _dispatch(self) -> SSEEvent | None:
        # Spec, step 1: the last event ID string takes the buffer's value, which is not reset.
        self._last_event_id = self._id_buffer
        if not self._has_data:
            self._event_type = ""  # Spec: empty data: reset the buffers, dispatch nothing.
            return None
        # The bytes came from decoded text, so they are valid UTF-8.
        data = self._data.decode()
        event = SSEEvent(self._event_type or "message", data, self._id_buffer)
        self._data = bytearray()  # a new buffer: the old one may have grown large
        self._has_data = False
        self._event_type = ""
        return event


def _decimal(digits: str) -> int:
    """Read a string of ASCII digits of any length as a base-ten integer."""
    value = 0
    for start in range(0, len(digits), _INT_CHUNK):
        part = digits[start : start + _INT_CHUNK]
        value = value * 10 ** len(part) + int(part)
    return value


async def iter_sse(
    chunks: AsyncIterable[bytes], *, max_line_length: int = 65536, max_event_bytes: int = 1 << 20
) -> AsyncIterator[SSEEvent]:
    """Yield the events of a stream given as chunks, e.g. ``response.content.iter_any()``."""
    parser = SSEParser(max_line_length=max_line_length, max_event_bytes=max_event_bytes)
    async for chunk in chunks:
        try:
            events = parser.feed(chunk)
        except SSELimitExceeded as exc:
            for event in exc.events:  # events before the offending line still count
                yield event
            raise
        for event in events:
            yield event
    for event in parser.close():
        yield event
