"""Tests for gateway.scanners.sse_parser: the WHATWG HTML rules for interpreting an event stream.

Every expected value below was worked out by hand from the spec (section 9.2.6), not recorded
from the parser.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest
from aiohttp import web

from gateway.scanners.sse_parser import (
    SSEEvent,
    SSEEventTooLarge,
    SSELimitExceeded,
    SSELineTooLong,
    SSEParser,
    iter_sse,
)

Triple = tuple[str, str, str]

SEED_1 = (
    '{"scan_id": "123", "status": "scanning", "progress_percent": 45, '
    '"progress_text": "Analyzing code...", "timestamp": "2025-08-19T01:43:09.866666+00:00"}'
)
SEED_2 = (
    '{"scan_id": "123", "status": "completed", "progress_percent": 100, '
    '"progress_text": "Scan complete.", "timestamp": "2025-08-19T01:45:12.123456+00:00"}'
)


def case(name: str, stream: bytes, events: list[Triple], retry: int | None = None) -> object:
    return pytest.param(stream, events, retry, id=name)


def msg(data: str, id: str = "") -> Triple:
    return ("message", data, id)


CASES = [
    # Line ends: CRLF, LF, or CR.
    case("lf_line_ends", b"data: a\n\ndata: b\n\n", [msg("a"), msg("b")]),
    case("crlf_line_ends", b"data: a\r\n\r\ndata: b\r\n\r\n", [msg("a"), msg("b")]),
    case("cr_line_ends", b"data: a\r\rdata: b\r\r", [msg("a"), msg("b")]),
    case(
        "mixed_line_ends",
        b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\n\r",
        [msg("a\nb\nc"), msg("d")],
    ),
    case("lf_then_cr_is_two_line_ends", b"data: a\n\rdata: b\n\n", [msg("a"), msg("b")]),
    case("blank_lines_only_dispatch_nothing", b"\n\n\r\n\r\r\n", []),
    # The UTF-8 decode strips one BOM at the start of the stream only.
    case("bom_at_start_stripped", b"\xef\xbb\xbfdata: a\n\n", [msg("a")]),
    case(
        "second_bom_at_start_kept_in_field_name",
        b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",
        [msg("b")],
    ),
    case(
        "bom_not_at_start_kept_in_field_name",
        b"data: a\n\n\xef\xbb\xbfdata: b\n\n",
        [msg("a")],
    ),
    # Comments.
    case("comment_lines_ignored", b":ping\n\n: c\ndata: a\n:x\n\n", [msg("a")]),
    case("colon_only_line_is_comment", b":\ndata: a\n:\n\n", [msg("a")]),
    # Field name and value.
    case("data_lines_joined_with_lf", b"data: a\ndata: b\ndata: c\n\n", [msg("a\nb\nc")]),
    case("one_leading_space_stripped_only_one", b"data:  x\n\n", [msg(" x")]),
    case("no_space_after_colon", b"data:x\n\n", [msg("x")]),
    case("trailing_space_kept", b"data: x \n\n", [msg("x ")]),
    case("value_after_first_colon_kept_whole", b"data: a:b: c\n\n", [msg("a:b: c")]),
    case("field_without_colon_data_appends_empty_line", b"data\n\n", [msg("")]),
    case("only_final_lf_of_data_removed", b"data:\ndata:\n\n", [msg("\n")]),
    case("space_before_colon_is_part_of_name", b"data : x\n\n", []),
    case("nul_in_data_kept", b"data: a\x00b\n\n", [msg("a\x00b")]),
    case("unknown_fields_ignored", b"foo: bar\nData: x\nDATA: y\ndata: a\n\n", [msg("a")]),
    # Event type buffer.
    case("event_type_set", b"event: update\ndata: a\n\n", [("update", "a", "")]),
    case(
        "event_type_reset_after_dispatch",
        b"event: update\ndata: a\n\ndata: b\n\n",
        [("update", "a", ""), msg("b")],
    ),
    case("event_without_data_not_dispatched_and_reset", b"event: foo\n\ndata: a\n\n", [msg("a")]),
    case("event_without_colon_sets_empty_type", b"event: x\nevent\ndata: a\n\n", [msg("a")]),
    # Last event ID buffer.
    case(
        "id_persists_across_events",
        b"id: 1\ndata: a\n\ndata: b\n\n",
        [msg("a", "1"), msg("b", "1")],
    ),
    case("id_after_data_in_same_block", b"data: a\nid: 7\n\n", [msg("a", "7")]),
    case("id_in_block_without_data_kept", b"id: 5\n\ndata: a\n\n", [msg("a", "5")]),
    case(
        "id_with_nul_ignored",
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [msg("a", "1"), msg("b", "1")],
    ),
    case(
        "id_empty_value_resets",
        b"id: 1\ndata: a\n\nid:\ndata: b\n\n",
        [msg("a", "1"), msg("b", "")],
    ),
    case(
        "id_without_colon_resets",
        b"id: 3\ndata: a\n\nid\ndata: b\n\n",
        [msg("a", "3"), msg("b", "")],
    ),
    # Retry: only a value of ASCII digits is used; it applies when the line is processed.
    case("retry_valid", b"retry: 3000\ndata: a\n\n", [msg("a")], 3000),
    case("retry_invalid_after_valid_ignored", b"retry: 3000\n\nretry: 10a\n\n", [], 3000),
    case(
        "retry_non_ascii_digits_ignored",
        b"retry: -1\nretry: 1.5\nretry:  5\nretry: \xd9\xa3\nretry: +7\n\n",
        [],
    ),
    case("retry_empty_ignored", b"retry:\nretry\n\n", []),
    case("retry_leading_zeros", b"retry: 0042\n\n", [], 42),
    case("retry_set_even_if_event_unterminated", b"data: a\nretry: 500\n", [], 500),
    case("retry_unterminated_line_discarded", b"retry: 500", []),
    # End of stream.
    case("unterminated_event_discarded", b"data: a\n\ndata: b\n", [msg("a")]),
    case("unterminated_line_discarded", b"data: a\n\ndata: b", [msg("a")]),
    case("unterminated_event_after_cr_discarded", b"data: a\n\ndata: b\r", [msg("a")]),
    # UTF-8 decoding.
    case("multibyte_utf8", "data: € 😀 é\n\n".encode(), [msg("€ 😀 é")]),
    case("invalid_utf8_byte_replaced", b"data: a\xffb\n\n", [msg("a\ufffdb")]),
    case("truncated_utf8_sequence_replaced", b"data: \xe2\x82\n\n", [msg("\ufffd")]),
    case("overlong_utf8_replaced_per_byte", b"data: \xc0\xaf\n\n", [msg("\ufffd\ufffd")]),
    # The stream from the seed document: two JSON events separated by blank lines.
    case(
        "seed_example_stream",
        f"data: {SEED_1}\n\ndata: {SEED_2}\n".encode(),
        [msg(SEED_1)],
    ),
    case(
        "seed_example_stream_terminated",
        f"data: {SEED_1}\n\ndata: {SEED_2}\n\n".encode(),
        [msg(SEED_1), msg(SEED_2)],
    ),
]


def run(chunks: Iterable[bytes], **kwargs: int) -> tuple[list[Triple], int | None]:
    parser = SSEParser(**kwargs)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return [(e.type, e.data, e.id) for e in events], parser.retry


def bytewise(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


def every_split(stream: bytes) -> Iterator[list[bytes]]:
    # Includes the empty first and last chunks, so empty feeds are covered too.
    for i in range(len(stream) + 1):
        yield [stream[:i], stream[i:]]


@pytest.mark.parametrize(("stream", "events", "retry"), CASES)
def test_spec_case_whole(stream: bytes, events: list[Triple], retry: int | None) -> None:
    assert run([stream]) == (events, retry)


@pytest.mark.parametrize(("stream", "events", "retry"), CASES)
def test_spec_case_byte_by_byte(stream: bytes, events: list[Triple], retry: int | None) -> None:
    assert run(bytewise(stream)) == (events, retry)


@pytest.mark.parametrize(("stream", "events", "retry"), CASES)
def test_spec_case_every_split(stream: bytes, events: list[Triple], retry: int | None) -> None:
    for chunks in every_split(stream):
        assert run(chunks) == (events, retry), chunks


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 20


# A CR at the end of a chunk


def test_cr_then_lf_across_chunks_is_one_line_end() -> None:
    # A spurious blank line between the chunks would dispatch "a" alone, then "b".
    assert run([b"data: a\r", b"\ndata: b\n\n"]) == ([msg("a\nb")], None)


def test_cr_then_lf_across_an_empty_chunk_is_one_line_end() -> None:
    assert run([b"data: a\r", b"", b"\ndata: b\n\n"]) == ([msg("a\nb")], None)


def test_cr_then_other_text_across_chunks_is_one_line_end() -> None:
    assert run([b"data: a\r", b"data: b\n\n"]) == ([msg("a\nb")], None)


def test_event_ended_by_cr_at_chunk_end_is_dispatched_at_once() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == [SSEEvent("message", "a", "")]
    assert parser.feed(b"\ndata: b\n\n") == [SSEEvent("message", "b", "")]


def test_held_cr_at_close_ends_the_line() -> None:
    assert run([b"data: a\n", b"\r"]) == ([msg("a")], None)


# Line length limit


def test_line_over_limit_in_one_chunk_raises() -> None:
    parser = SSEParser(max_line_length=8)
    with pytest.raises(SSELineTooLong, match="8"):
        parser.feed(b"data: 123\n\n")


def test_line_over_limit_byte_by_byte_raises_before_terminator() -> None:
    parser = SSEParser(max_line_length=8)
    for byte in bytewise(b"data: 12"):
        assert parser.feed(byte) == []
    with pytest.raises(SSELineTooLong):
        parser.feed(b"3")


def test_unterminated_line_over_limit_in_one_chunk_raises() -> None:
    parser = SSEParser(max_line_length=8)
    with pytest.raises(SSELineTooLong):
        parser.feed(b"data: a\n\n" + b"x" * 9)


def test_line_of_exactly_the_limit_is_accepted() -> None:
    stream = b"data: 12\r\n\r\n"  # "data: 12" is 8 characters; the terminator does not count
    expected = ([msg("12")], None)
    assert run([stream], max_line_length=8) == expected
    assert run(bytewise(stream), max_line_length=8) == expected


def test_limit_counts_characters_not_bytes() -> None:
    stream = "data: €€\n\n".encode()  # 8 characters, 12 bytes
    assert run(bytewise(stream), max_line_length=8) == ([msg("€€")], None)


def test_line_too_long_keeps_events_before_it() -> None:
    parser = SSEParser(max_line_length=8)
    with pytest.raises(SSELineTooLong) as info:
        parser.feed(b"data: a\n\n" + b"x" * 9)
    assert info.value.events == [SSEEvent("message", "a", "")]
    assert info.value.limit == 8


def test_parser_refuses_input_after_line_too_long() -> None:
    parser = SSEParser(max_line_length=8)
    with pytest.raises(SSELineTooLong):
        parser.feed(b"x" * 9)
    with pytest.raises(SSELineTooLong):
        parser.feed(b"\ndata: a\n\n")
    with pytest.raises(SSELineTooLong):
        parser.close()


def test_parser_refuses_input_after_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.close() == []
    with pytest.raises(ValueError, match="closed"):
        parser.feed(b"\n")
    with pytest.raises(ValueError, match="closed"):
        parser.close()


@pytest.mark.parametrize("limit", [0, -1])
def test_constructor_rejects_limit_below_one(limit: int) -> None:
    with pytest.raises(ValueError, match="max_line_length"):
        SSEParser(max_line_length=limit)


# Retry and last event ID


def test_retry_longer_than_int_digit_limit() -> None:
    # 5000 nines is beyond int()'s default 4300-digit limit, yet all ASCII digits.
    assert run([b"retry: " + b"9" * 5000 + b"\n"]) == ([], 10**5000 - 1)


def test_last_event_id_is_set_at_dispatch() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 7\n") == []
    assert parser.last_event_id == ""  # the buffer is copied only when a blank line dispatches
    assert parser.feed(b"\n") == []
    assert parser.last_event_id == "7"  # even though no event had data


def test_last_event_id_of_unterminated_event_discarded() -> None:
    parser = SSEParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert parser.close() == []
    assert parser.last_event_id == "1"


def test_close_discards_partial_utf8_and_unterminated_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: \xe2\x82") == []
    assert parser.close() == []


# iter_sse


async def agen(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def test_iter_sse_yields_events() -> None:
    chunks = [b"\xef\xbb", b"\xbfid: 1\r", b"\ndata: \xe2\x82", b"\xac\r\n\r", b"\ndata: b\n\n"]
    events = [event async for event in iter_sse(agen(chunks))]
    assert events == [SSEEvent("message", "€", "1"), SSEEvent("message", "b", "1")]


async def test_iter_sse_yields_events_before_line_too_long() -> None:
    events = iter_sse(agen([b"data: a\n\n" + b"x" * 9]), max_line_length=8)
    assert await anext(events) == SSEEvent("message", "a", "")
    with pytest.raises(SSELineTooLong):
        await anext(events)


STREAM_CHUNKS = (b"event: progress\r", b"\ndata: 4", b"5\r\n\r\n", b": ping\n\ndata: done\n\n")


async def test_iter_sse_over_aiohttp_response(aiohttp_client) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in STREAM_CHUNKS:
            await response.write(chunk)
            await asyncio.sleep(0.01)
        return response

    app = web.Application()
    app.router.add_get("/stream", handler)
    client = await aiohttp_client(app)
    async with client.get("/stream") as response:
        events = [event async for event in iter_sse(response.content.iter_any())]
    assert events == [SSEEvent("progress", "45", ""), SSEEvent("message", "done", "")]


# Event size limit


def test_event_of_exactly_the_limit_is_accepted() -> None:
    # Data "ab\ncd€" is 8 bytes: the LF between lines counts, the dispatching blank line not.
    stream = "data: ab\ndata: cd€\n\n".encode()
    expected = [msg_event("ab\ncd€")]
    assert SSEParser(max_event_bytes=8).feed(stream) == expected
    parser = SSEParser(max_event_bytes=8)
    assert [event for byte in bytewise(stream) for event in parser.feed(byte)] == expected


def test_event_over_limit_raises_before_its_blank_line() -> None:
    parser = SSEParser(max_event_bytes=8)
    assert parser.feed(b"data: ab\ndata: cd") == []
    with pytest.raises(SSEEventTooLarge, match="larger than 8 bytes") as info:
        parser.feed("€x\n".encode())  # 9 bytes, though 8 characters
    assert info.value.limit == 8
    with pytest.raises(SSEEventTooLarge):
        parser.feed(b"\n")
    with pytest.raises(SSEEventTooLarge):
        parser.close()


def test_event_limit_counts_empty_data_lines() -> None:
    # Each empty data line adds a LF to the event: a flood of them is bounded too.
    parser = SSEParser(max_event_bytes=100)
    with pytest.raises(SSEEventTooLarge):
        parser.feed(b"data\n" * 102)


def test_event_limit_is_per_event() -> None:
    stream = b"data: 12345678\n\n" * 3
    assert run(bytewise(stream), max_event_bytes=8) == ([msg("12345678")] * 3, None)


def test_event_too_large_keeps_events_before_it() -> None:
    parser = SSEParser(max_event_bytes=8)
    with pytest.raises(SSELimitExceeded) as info:
        parser.feed(b"data: a\n\nevent: x\ndata: 123456789\n\n")
    assert isinstance(info.value, SSEEventTooLarge)
    assert info.value.events == [msg_event("a")]


def test_event_limit_bounds_what_the_parser_holds() -> None:
    # Lines of 99 bytes against a 10 000-byte limit: 100 of them and their LFs are 9999 bytes,
    # the 101st is refused, so the parser never held more than the limit for the event.
    parser = SSEParser(max_event_bytes=10_000)
    line = b"data: " + b"x" * 99 + b"\n"
    for _ in range(100):
        assert parser.feed(line) == []
    with pytest.raises(SSEEventTooLarge):
        parser.feed(line)


@pytest.mark.parametrize("limit", [0, -1])
def test_constructor_rejects_event_limit_below_one(limit: int) -> None:
    with pytest.raises(ValueError, match="max_event_bytes"):
        SSEParser(max_event_bytes=limit)


async def test_iter_sse_raises_event_too_large_after_earlier_events() -> None:
    events = iter_sse(agen([b"data: a\n\n", b"data: 123456789\n"]), max_event_bytes=8)
    assert await anext(events) == SSEEvent("message", "a", "")
    with pytest.raises(SSEEventTooLarge):
        await anext(events)


def msg_event(data: str) -> SSEEvent:
    return SSEEvent("message", data, "")


def test_retry_digits_are_converted_only_when_asked_for(monkeypatch) -> None:
    # Converting a line-long run of digits is quadratic: a scanner sending many must not cost
    # the event loop anything, since the gateway never asks for the retry value.
    conversions: list[str] = []
    monkeypatch.setattr(
        "gateway.scanners.sse_parser._decimal", lambda digits: conversions.append(digits)
    )
    parser = SSEParser(max_line_length=100_000)
    for _ in range(10):
        assert parser.feed(b"retry: " + b"9" * 99_000 + b"\ndata: a\n\n") == [msg_event("a")]
    assert conversions == []
    assert parser.retry is None  # what the stand-in converter returned
    assert conversions == ["9" * 99_000]
