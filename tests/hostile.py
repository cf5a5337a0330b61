"""Hypothesis strategies for hostile input, and the strict checks applied to what comes out.

Everything here builds *bytes*, not Python values: a hostile peer sends text that no JSON
encoder would write (``NaN``, ``1e999``, 5000-digit integers, lone surrogate escapes, nesting
deeper than the decoder's recursion limit, invalid UTF-8 inside strings), and the point is to
see what the gateway makes of exactly those bytes.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "DIALECTS",
    "body_chunks",
    "hostile_scalar",
    "json_text",
    "message_text",
    "scanner_body",
    "scanner_script",
    "strict_json",
    "string_text",
]

# Literals Python's json module accepts (or turns into inf) but RFC 8259 does not allow.
NON_FINITE = [b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1E400"]
ODD_NUMBERS = [b"-0", b"0.0", b"1e-999", b"1.5e308", b"-0.0", b"01", b"1.", b".5", b"+1"]
# Escapes that decode to a lone surrogate (no UTF-8 text can hold one), and a valid pair.
SURROGATE_ESCAPES = [b"\\ud800", b"\\udfff", b"\\ud83d", b"\\ude00x", b"\\ud83d\\ude00"]
# Byte sequences that are not UTF-8: a lone continuation byte, a truncated sequence, an
# encoded surrogate, an overlong encoding, bytes UTF-8 never uses.
INVALID_UTF8 = [b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xff", b"\xfe"]
BOM = b"\xef\xbb\xbf"
LINE_ENDS = [b"\n", b"\r", b"\r\n"]


def _escaped(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")


_string_piece = st.one_of(
    st.text(max_size=12).map(_escaped),
    st.sampled_from(SURROGATE_ESCAPES),
    st.sampled_from(INVALID_UTF8),
    st.sampled_from([b"\\u0000", b"\\n", b"\\r\\n", b"\\\\", b'\\"', b"\\ufeff", b"\xef\xbb\xbf"]),
)
# A JSON string as a hostile peer writes it (sometimes long enough to cross a line limit).
string_text = st.one_of(
    st.lists(_string_piece, max_size=5).map(lambda parts: b'"' + b"".join(parts) + b'"'),
    st.integers(1000, 6000).map(lambda n: b'"' + b"A" * n + b'"'),
)

_big_integer = st.builds(
    lambda sign, digits: sign + b"9" * digits,
    st.sampled_from([b"", b"-"]),
    st.integers(4000, 5200),  # Python refuses int <-> text past 4300 digits
)
number_text = st.one_of(
    st.integers().map(lambda n: str(n).encode()),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: repr(x).encode()),
    st.sampled_from(NON_FINITE),
    st.sampled_from(ODD_NUMBERS),
    _big_integer,
)


def _nested(depth: int, brace: bool) -> bytes:
    if brace:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


# Past the decoder's recursion limit (about 1000) as well as below it.
deep_text = st.builds(_nested, st.integers(1, 3000), st.booleans())

# The values that break things, drawn often: non-finite numbers, numbers too long to print,
# lone surrogates, invalid UTF-8 in a string, nesting near the recursion limit.
hostile_scalar = st.one_of(
    st.sampled_from(NON_FINITE),
    _big_integer,
    st.sampled_from(SURROGATE_ESCAPES[:4]).map(lambda escape: b'"' + escape + b'"'),
    st.sampled_from(INVALID_UTF8).map(lambda raw: b'"a' + raw + b'"'),
    deep_text,
)
scalar_text = st.one_of(
    hostile_scalar, st.sampled_from([b"true", b"false", b"null"]), number_text, string_text
)


def _array(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


def _object(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"{" + b",".join(key + b":" + value for key, value in pairs) + b"}"


key_text = st.one_of(
    st.sampled_from(
        [b'"severity"', b'"confidence"', b'"line"', b'"cwe"', b'"title"', b'"metadata"', b'"x"']
    ),
    string_text,
)
json_text = st.recursive(
    scalar_text,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(_array),
        st.lists(st.tuples(key_text, children), max_size=4).map(_object),
    ),
    max_leaves=8,
)

_status_text = st.one_of(
    st.sampled_from(
        [b'"scanning"', b'"cloning"', b'"Analyzing"', b'"in progress"', b'"weird"', b'""']
    ),
    json_text,
)
_finding = st.lists(
    st.tuples(
        st.sampled_from(
            [b'"severity"', b'"confidence"', b'"line"', b'"cwe"', b'"title"', b'"file_path"']
        )
        | key_text,
        hostile_scalar | json_text,
    ),
    min_size=1,
    max_size=5,
).map(_object)
_message_field = st.one_of(
    st.tuples(st.just(b'"status"'), _status_text),
    st.tuples(st.sampled_from([b'"progress_percent"', b'"progress"']), number_text | json_text),
    st.tuples(st.sampled_from([b'"progress_text"', b'"message"']), string_text | json_text),
    st.tuples(
        st.sampled_from([b'"vulnerabilities"', b'"findings"']),
        st.lists(_finding | json_text, max_size=3).map(_array),
    ),
    st.tuples(key_text, hostile_scalar | json_text),  # scanner-specific: under ``extra``
)
# One progress message: mostly the fields the gateway reads, with hostile values.
progress_text = st.lists(_message_field, max_size=5).map(_object)
_text_value = string_text | hostile_scalar
terminal_text = st.one_of(
    st.builds(
        lambda findings: b'{"status":"completed","vulnerabilities":' + findings + b"}",
        st.lists(_finding, min_size=1, max_size=3).map(_array),
    ),
    st.builds(lambda error: b'{"status":"failed","error":' + error + b"}", _text_value),
    st.builds(lambda text: b'{"status":"completed","progress_text":' + text + b"}", _text_value),
)
# Anything a scanner may put where a message belongs, valid or not.
message_text = st.one_of(progress_text, json_text, st.binary(max_size=40))


def strict_json(text: str | bytes) -> Any:
    """Parse as RFC 8259 JSON: UTF-8 only, no NaN/Infinity, no lone surrogate in a string."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # strict: invalid UTF-8 raises
    value = json.loads(text, parse_constant=_refuse_constant)
    _no_lone_surrogates(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _no_lone_surrogates(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate
    elif isinstance(value, list):
        for item in value:
            _no_lone_surrogates(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_lone_surrogates(key)
            _no_lone_surrogates(item)


@st.composite
def body_chunks(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """``body`` cut at arbitrary places (one chunk, or many, some of one byte)."""
    if not body:
        return []
    cuts = draw(st.lists(st.integers(1, len(body) - 1), max_size=40)) if len(body) > 1 else []
    edges = [0, *sorted(set(cuts)), len(body)]
    return [body[start:end] for start, end in itertools.pairwise(edges)]


# The content type a scanner answers with, per dialect the gateway reads.
DIALECTS = {
    "sse": "text/event-stream",
    "ndjson": "application/x-ndjson",
    "json": "application/json",
}


@st.composite
def _messages(draw: st.DrawFn) -> list[bytes]:
    """Messages, usually ending with a terminal one, sometimes with more after it."""
    items = draw(st.lists(message_text, max_size=5))
    if draw(st.integers(0, 3)):
        items.append(draw(terminal_text))
        items.extend(draw(st.lists(message_text, max_size=1)))
    return items


@st.composite
def _sse_body(draw: st.DrawFn) -> bytes:
    out = [BOM] if draw(st.integers(0, 4)) == 4 else []
    for item in draw(_messages()):
        end = draw(st.sampled_from(LINE_ENDS))
        head = draw(
            st.lists(
                st.sampled_from(
                    [b"event: error", b"event: progress", b": a comment", b"id: 7", b"id", b"retry"]
                )
                | st.integers(0, 10**30).map(lambda n: b"retry: %d" % n),
                max_size=2,
            )
        )
        field = draw(st.sampled_from([b"data: ", b"data:", b"data:  "]))
        out.extend(line + end for line in head)
        out.append(field + item + end + draw(st.sampled_from(LINE_ENDS)))
    if draw(st.booleans()):
        out.append(draw(st.sampled_from([b"data: {", b"data", b":", b"\r"])))  # cut mid-event
    return b"".join(out)


@st.composite
def _ndjson_body(draw: st.DrawFn) -> bytes:
    out = [BOM] if draw(st.integers(0, 4)) == 4 else []
    for item in draw(_messages()):
        out.append(item + draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b" \n"])))
    body = b"".join(out)
    return body.rstrip(b"\r\n") if draw(st.booleans()) else body  # a last line without end


@st.composite
def _json_body(draw: st.DrawFn) -> bytes:
    prefix = BOM if draw(st.integers(0, 4)) == 4 else b""
    items = draw(_messages())
    if draw(st.integers(0, 3)) == 0 and items:
        return prefix + items[-1]  # one message as the whole body
    space = draw(st.sampled_from([b"", b" ", b"\r\n", b"\n  "]))
    return prefix + b"[" + space + (b"," + space).join(items) + space + b"]"


def scanner_body(dialect: str) -> st.SearchStrategy[bytes]:
    """A whole response body a scanner might send in ``dialect`` (a key of ``DIALECTS``)."""
    return {"sse": _sse_body(), "ndjson": _ndjson_body(), "json": _json_body()}[dialect]


@st.composite
def scanner_script(
    draw: st.DrawFn, dialects: tuple[str, ...] = tuple(DIALECTS)
) -> tuple[str, bytes, list[bytes]]:
    """What a scanner answers: its dialect, its body, and the chunks it writes it in."""
    dialect = draw(st.sampled_from(dialects))
    body = draw(scanner_body(dialect))
    return dialect, body, draw(body_chunks(body))
