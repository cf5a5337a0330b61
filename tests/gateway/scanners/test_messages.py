"""The body readers and the decoding rules, fed by chunk iterators: every dialect gives the same
messages however its bytes are chunked, and every limit holds at its value and fails past it."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest

from gateway.config import UpstreamConfig
from gateway.scanners.messages import BodyError, Malformed, decode_message, read_messages

CONFIG = UpstreamConfig()
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"
JSON = "application/json"

# The same messages in each dialect, with what chunking can break: multi-byte characters,
# CRLF, escapes, a malformed message, and (NDJSON) a last line without its newline.
MESSAGES = [
    {"status": "scanning", "progress_text": "Analyse du dépôt…", "progress_percent": 12},
    {"status": "scanning", "text": 'line\r\nbreak "quoted" \\ back', "n": [1, 2.5, None]},
    {"status": "completed", "vulnerabilities": [{"title": "日本語 🔒", "line": 3}]},
]
EXPECTED: list[object] = [
    MESSAGES[0],
    MESSAGES[1],
    Malformed("{not json", "not valid JSON: Expecting property name enclosed in double quotes"),
    MESSAGES[2],
]
BODIES = {
    SSE: (
        "\ufeff: comment\r\n"
        + "event: progress\r\ndata: "
        + json.dumps(MESSAGES[0], ensure_ascii=False)
        + "\r\n\r\nid: 7\ndata: "
        + json.dumps(MESSAGES[1])
        + "\n\ndata: {not json\n\n"
        + "data: "
        + json.dumps(MESSAGES[2], ensure_ascii=False)
        + "\r\r"
    ).encode(),
    NDJSON: (
        "\n".join(
            [
                json.dumps(MESSAGES[0], ensure_ascii=False),
                json.dumps(MESSAGES[1]) + "\r",
                "",
                "  {not json  ",
                json.dumps(MESSAGES[2], ensure_ascii=False),
            ]
        )
    ).encode(),
}
JSON_BODY = json.dumps(MESSAGES, ensure_ascii=False, indent=2).encode()


async def chunks_of(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece


async def read(
    content_type: str, pieces: Iterable[bytes], config: UpstreamConfig = CONFIG
) -> list[object]:
    return [message async for message in read_messages(content_type, chunks_of(pieces), config)]


def chunkings(body: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "whole", [body]
    yield "bytewise", [body[i : i + 1] for i in range(len(body))]
    for seed in range(25):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(body)), rng.randint(1, 12)))
        bounds = [0, *cuts, len(body)]
        yield f"random-{seed}", [body[a:b] for a, b in itertools.pairwise(bounds)]


def without_reasons(messages: list[object]) -> list[object]:
    return [Malformed(m.text) if isinstance(m, Malformed) else m for m in messages]


@pytest.mark.parametrize("content_type", [SSE, NDJSON])
async def test_streamed_dialects_do_not_depend_on_chunking(content_type):
    for name, pieces in chunkings(BODIES[content_type]):
        messages = await read(content_type, pieces)
        assert without_reasons(messages) == without_reasons(EXPECTED), name
        assert messages == (await read(content_type, [BODIES[content_type]])), name


async def test_a_json_body_does_not_depend_on_chunking():
    for name, pieces in chunkings(JSON_BODY):
        assert await read(JSON, pieces) == MESSAGES, name


async def test_an_ndjson_line_split_across_reads_is_one_message():
    # The regression: a chunk holding no newline at all.
    pieces = [b'{"status": "sc', b"anni", b'ng"}', b"\n", b'{"status"', b': "completed"}']
    assert await read(NDJSON, pieces) == [{"status": "scanning"}, {"status": "completed"}]


# --- limits, each at its value and past it


@pytest.mark.parametrize("split", [False, True])
async def test_ndjson_line_limit(split):
    config = UpstreamConfig(max_line_length=10)
    at = b'{"a":1234}'  # 10 bytes
    past = b'{"a":12345}'

    def pieces(line: bytes) -> list[bytes]:
        body = at + b"\n" + line + b"\n"
        return [body[i : i + 1] for i in range(len(body))] if split else [body]

    assert await read(NDJSON, pieces(at), config) == [{"a": 1234}] * 2
    with pytest.raises(BodyError, match="NDJSON line longer than 10 bytes") as info:
        await read(NDJSON, pieces(past), config)
    assert info.value.kind == "line_too_long"


async def test_ndjson_unterminated_line_over_the_limit_fails_before_it_ends():
    config = UpstreamConfig(max_line_length=10)
    received = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            received.append(1)
            yield b"x" * 4

    with pytest.raises(BodyError):
        [m async for m in read_messages(NDJSON, endless(), config)]
    assert len(received) == 3  # 12 bytes: refused without reading on


async def test_sse_event_limit():
    config = UpstreamConfig(max_event_bytes=8)
    assert await read(SSE, [b'data: {"a":\ndata: 1}\n\n'], config) == [{"a": 1}]
    with pytest.raises(BodyError, match="SSE event larger than 8 bytes") as info:
        await read(SSE, [b'data: {"a":\ndata: 12}\n\n'], config)
    assert info.value.kind == "event_too_large"


async def test_sse_line_limit():
    config = UpstreamConfig(max_line_length=13)
    assert await read(SSE, [b'data: {"a":1}\n\n'], config) == [{"a": 1}]
    with pytest.raises(BodyError, match="SSE line longer than 13 characters") as info:
        await read(SSE, [b'data: {"a":12}\n\n'], config)
    assert info.value.kind == "line_too_long"


async def test_json_body_limit():
    config = UpstreamConfig(max_body_bytes=9)
    assert await read(JSON, [b'{"a":', b"123}"], config) == [{"a": 123}]
    with pytest.raises(BodyError, match="body over 9 bytes") as info:
        await read(JSON, [b'{"a":', b"1234}"], config)
    assert info.value.kind == "too_large"


async def test_unsupported_content_type():
    with pytest.raises(BodyError, match="unsupported content type 'text/html'"):
        await read("text/html", [b"<html>"])


def nested(levels: int) -> str:
    return "[" * (levels - 1) + '{"a": 1}' + "]" * (levels - 1)


def test_nesting_limit():
    config = UpstreamConfig(max_json_depth=5)
    assert decode_message(nested(5), config) == [[[[{"a": 1}]]]]
    assert decode_message(nested(6), config) == Malformed(nested(6), "nested deeper than 5 levels")


def test_absurd_nesting_is_malformed_not_a_crash():
    text = "[" * 100_000 + "]" * 100_000
    message = decode_message(text, CONFIG)
    assert isinstance(message, Malformed)
    assert message.reason == "nested deeper than 64 levels"
    assert len(message.text) == 200


@pytest.mark.parametrize(
    ("literal", "value"),
    [("9" * 10, 9_999_999_999), ("-" + "9" * 9, -999_999_999), ("1.2345678", 1.2345678)],
)
def test_number_digit_limit_at_the_limit(literal, value):
    config = UpstreamConfig(max_number_digits=10)
    assert decode_message(f'{{"n": {literal}}}', config) == {"n": value}


@pytest.mark.parametrize("literal", ["9" * 11, "-" + "9" * 10, "1.234567891", "1" * 5000])
def test_number_digit_limit_past_the_limit(literal):
    config = UpstreamConfig(max_number_digits=10)
    message = decode_message(f'{{"n": {literal}}}', config)
    assert message == Malformed(f'{{"n": {literal}}}'[:200], "a number longer than 10 characters")


def test_integers_past_python_s_own_digit_limit_are_malformed():
    config = UpstreamConfig(max_number_digits=10_000)
    message = decode_message('{"n": ' + "7" * 5000 + "}", config)
    assert isinstance(message, Malformed) and "4300" in message.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"p": NaN}', "NaN is not a JSON number"),
        ('{"p": Infinity}', "Infinity is not a JSON number"),
        ('{"p": -Infinity}', "-Infinity is not a JSON number"),
        ('{"p": 1e999}', "a number out of range (1e999)"),
        ('{"p": -1E400}', "a number out of range (-1E400)"),
        ('[{"p": [1, {"q": NaN}]}]', "NaN is not a JSON number"),
    ],
)
def test_non_finite_numbers_are_malformed(text, reason):
    assert decode_message(text, CONFIG) == Malformed(text, reason)


def test_finite_numbers_are_kept():
    assert decode_message('{"a": 1e308, "b": 1e-999, "c": -0.0}', CONFIG) == {
        "a": 1e308,
        "b": 0.0,
        "c": -0.0,
    }


def test_lone_surrogates_are_replaced_everywhere_keys_included():
    text = r'{"\ud800k": ["\udfff", {"\ud83d": "a\ud83db"}], "ok": "\ud83d\udd12"}'
    assert decode_message(text, CONFIG) == {
        "\ufffdk": ["\ufffd", {"\ufffd": "a\ufffdb"}],
        "ok": "\U0001f512",  # a valid pair is one character, kept
    }
    # What comes out can be encoded as UTF-8 (the store and the wire need that).
    json.dumps(decode_message(text, CONFIG), ensure_ascii=False).encode()


async def test_sse_error_event_with_text_data_fails_the_scan():
    assert await read(SSE, [b"event: error\ndata: disk full\n\n"]) == [
        {"status": "failed", "error": "disk full"}
    ]


# [{},{},{}] holds 1 array, 3 objects: counted as 2 commas + 4 brackets + 1.
@pytest.mark.parametrize(
    ("text", "count"),
    [("[{},{},{}]", 7), ('{"a": [1, 2], "b": "x,[{"}', 5), ('"a,b,[c"', 1)],
)
def test_json_values_are_counted_outside_strings(text, count):
    assert decode_message(text, UpstreamConfig(max_json_values=count)) == json.loads(text)
    message = decode_message(text, UpstreamConfig(max_json_values=count - 1))
    assert message == Malformed(text, f"more than {count - 1} JSON values")


def test_a_megabyte_of_empty_objects_is_refused_before_it_is_parsed():
    text = "[" + "{}," * 350_000 + "{}]"
    message = decode_message(text, CONFIG)
    assert isinstance(message, Malformed)
    assert message.reason == "more than 200000 JSON values"


async def test_a_json_body_that_cannot_be_used_fails_with_its_reason():
    with pytest.raises(BodyError, match="JSON body that is more than 3 JSON values") as info:
        await read(JSON, [b"[1, 2, 3, 4]"], UpstreamConfig(max_json_values=3))
    assert info.value.kind == "malformed_body"
    with pytest.raises(BodyError, match="JSON body that is not valid JSON"):
        await read(JSON, [b"[1, 2"])


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ('{"message": "disk full", "code": 7}', "disk full"),
        ('{"error": "quota"}', "quota"),
        ('{"progress": 5}', "the scanner sent an error event"),
        ("plain text", "plain text"),
    ],
)
async def test_an_error_event_fails_the_scan_whatever_its_data(data, error):
    body = f"event: error\ndata: {data}\n\n".encode()
    [message] = await read(SSE, [body])
    assert isinstance(message, dict)
    assert (message["status"], message["error"]) == ("failed", error)
