"""A finding's lines: one read, and the other lines of a list, bounded whatever the list holds."""

from __future__ import annotations

import itertools

import pytest

from gateway.scanners.lines import (
    MAX_LINE_ITEMS,
    MAX_POSITION,
    MAX_RELATED_LINES,
    RelatedLines,
    line_and_related,
    position,
    related_lines,
)


def ident(value: object) -> str:
    """A test id, short; repr() refuses a number of more than 4300 digits."""
    try:
        return repr(value)[:40]
    except ValueError:
        return "huge"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (0, 0),
        ("12", 12),
        (" 12 ", 12),
        (12.0, 12),
        (MAX_POSITION, MAX_POSITION),
        (MAX_POSITION + 1, None),
        (-1, None),
        ("-1", None),
        (True, None),
        (12.5, None),
        (float("nan"), None),
        (float("inf"), None),
        ("9" * 5000, None),
        (10**5000, None),
        ("40-42", None),
        ([12], None),
        (None, None),
    ],
    ids=ident,
)
def test_position(value, expected):
    assert position(value) == expected


@pytest.mark.parametrize(
    ("items", "first", "expected"),
    [
        ([12, 40, 41], 12, [40, 41]),
        (["12", "40-42"], 12, [40, 41, 42]),
        # Ascending and distinct, the first line left out wherever it comes.
        ([40, 12, 41, 40, "41", 12.0], 40, [12, 41]),
        ([" 7 - 9 ", "8-8"], 1, [7, 8, 9]),
        # What is no line is left out: zero, negative, bools, fractions, nested lists, huge
        # numbers, ranges that are backwards, start at zero, or end past a position.
        ([0, -3, "-4", True, False, 6.5, float("nan"), [13, 14], {"line": 15}, None], 1, []),
        ([10**5000, "9" * 5000, MAX_POSITION + 1, "1-" + "9" * 5000], 1, []),
        (["5-3", "0-3", "-3-5", "7-9-11", "1-99999999999", "1 - 2 - 3", "a-b"], 1, []),
        ([MAX_POSITION, f"{MAX_POSITION - 1}-{MAX_POSITION}"], 1, [MAX_POSITION - 1, MAX_POSITION]),
        ([], 12, []),
    ],
    ids=ident,
)
def test_related_lines(items, first, expected):
    assert related_lines(items, first) == RelatedLines(expected, cut=False)


def test_a_hundred_thousand_lines_keep_the_first_ones_found_and_say_so():
    assert related_lines(list(range(100_000)), 0) == RelatedLines(
        list(range(1, MAX_RELATED_LINES + 1)), cut=True
    )
    # The first found, in the order given, then sorted: not the least.
    descending = list(range(100_000, 0, -1))
    kept = list(range(100_000 - MAX_RELATED_LINES, 100_000))
    assert related_lines(descending, 100_000) == RelatedLines(kept, cut=True)


def test_a_huge_range_gives_what_is_still_missing():
    assert related_lines(["1-99999999"], 1) == RelatedLines(
        list(range(2, MAX_RELATED_LINES + 2)), cut=True
    )
    # Exactly as many as are kept is not a cut; one more is.
    assert related_lines([f"1-{MAX_RELATED_LINES}"], None).cut is False
    assert related_lines([f"1-{MAX_RELATED_LINES + 1}"], None).cut is True


def test_items_past_the_ones_looked_at_are_never_read_and_make_a_cut():
    assert related_lines([0] * MAX_LINE_ITEMS + [5], 1) == RelatedLines([], cut=True)
    assert related_lines([0] * MAX_LINE_ITEMS, 1) == RelatedLines([], cut=False)
    # A list that never ends is read only as far.
    assert related_lines(itertools.repeat("3-4"), 1) == RelatedLines([3, 4], cut=True)


@pytest.mark.parametrize(
    ("value", "first", "related"),
    [
        (12, 12, []),
        (0, 0, []),
        ([12, "40-41"], 12, [40, 41]),
        # A range, alone or first, gives its start as the line and the rest as related.
        ("40-42", 40, [41, 42]),
        (["40-42", 12, 41], 40, [12, 41, 42]),
        ("1-99999999", 1, list(range(2, MAX_RELATED_LINES + 2))),
        # A first item that names no line gives none, whatever follows.
        (["0-3", 12], None, []),
        ([None, 12], None, []),
        ([], None, []),
        ("9" * 5000 + "-1", None, []),
    ],
    ids=ident,
)
def test_a_line_value_read_whole(value, first, related):
    line, others = line_and_related(value)
    assert (line, others.lines) == (first, related)
