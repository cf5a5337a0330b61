"""A finding's lines, as a scanner gives them: one number, or a list of them.

``position`` reads one line or column: a non-negative int, an integral float or a string of at
most ``MAX_DIGITS`` digits, up to ``MAX_POSITION``. A list-valued ``line`` (``[12, 40, 41]``,
``["12", "40-42"]``) or a range (``"40-42"``) names several lines: the finding's ``line`` is
its first item (as it has always been; a range's start when that is a range), and
``related_lines`` gives the others -- each item a position or a range ``"a-b"`` (both ends at
least 1 and at most ``MAX_POSITION``, ``a <= b``), zero, negative, bool, nested, fractional and
unreadable items left out.

Whatever the list holds, the work and the result are bounded by constants, not config: the
SARIF a finding becomes has one related location per line, and a scanner gains nothing by
sending more. At most ``MAX_LINE_ITEMS`` items are looked at, a range gives at most what is
still missing, and at most ``MAX_RELATED_LINES`` distinct lines are kept (the first found, in
the order given, then sorted); a list that named more, or had items left unread, says so
(``RelatedLines.cut``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

__all__ = [
    "MAX_DIGITS",
    "MAX_LINE_ITEMS",
    "MAX_POSITION",
    "MAX_RELATED_LINES",
    "RelatedLines",
    "first_named",
    "line_and_related",
    "position",
    "related_lines",
]

# Lines and columns beyond this are not positions but noise; a string of digits is not even
# handed to int() past MAX_DIGITS (int() refuses 4300 digits, and is slow well before).
MAX_POSITION: Final = 2**31 - 1
MAX_DIGITS: Final = 24
# Items of a list-valued ``line`` looked at, and other lines kept (the SARIF result's related
# locations: 50 keep a result small whatever the scanner sends).
MAX_LINE_ITEMS: Final = 1000
MAX_RELATED_LINES: Final = 50

_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_RANGE = re.compile(rf"(\d{{1,{MAX_DIGITS}}})\s*-\s*(\d{{1,{MAX_DIGITS}}})", re.ASCII)
_MAX_RANGE_CHARS = 2 * MAX_DIGITS + 8  # "a-b" with some blanks; longer strings are not read
_END: Final = object()


class RelatedLines(NamedTuple):
    """The other lines (ascending, distinct), and whether the list named more than are kept."""

    lines: list[int]
    cut: bool


def position(value: object) -> int | None:
    """A line or column: a non-negative int, an integral float or an integer string."""
    if isinstance(value, str) and len(value) <= MAX_DIGITS and _INTEGER.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_POSITION:
        return value
    return None


def line_and_related(value: object) -> tuple[int | None, RelatedLines]:
    """A scanner's ``line`` value read whole: its first line and the others it names. A list
    whose first item names no line gives none (the finding's line may come from another key)."""
    items = value if isinstance(value, list | tuple) else (value,)
    head = items[0] if items else None
    first = position(head)
    if first is None:
        first = first_named(head)
    if first is None:
        return None, RelatedLines([], cut=False)
    return first, related_lines(items, first)


def first_named(item: object) -> int | None:
    """The first line (at least 1) one item names: a position, or a range's start."""
    return next(_item_lines(item, 1), None)


def related_lines(items: Iterable[object], first: int | None) -> RelatedLines:
    """The lines ``items`` name other than ``first`` (see the module docstring)."""
    found: dict[int, None] = {}
    remaining = iter(items)
    for item in itertools.islice(remaining, MAX_LINE_ITEMS):
        # One more than is kept: finding it is how a list that named more is told apart.
        for line in _item_lines(item, MAX_RELATED_LINES + 2):
            if line != first:
                found[line] = None
                if len(found) > MAX_RELATED_LINES:
                    return RelatedLines(sorted(list(found)[:MAX_RELATED_LINES]), cut=True)
    unread = next(remaining, _END) is not _END
    return RelatedLines(sorted(found), cut=unread)


def _item_lines(item: object, most: int) -> Iterator[int]:
    """The lines (at least 1) one item names: a position, or at most ``most`` of a range."""
    if (
        isinstance(item, str)
        and len(item) <= _MAX_RANGE_CHARS
        and (match := _RANGE.fullmatch(item.strip()))
    ):
        start, end = int(match.group(1)), int(match.group(2))
        if 1 <= start <= end <= MAX_POSITION:
            yield from range(start, min(end, start + most - 1) + 1)
        return
    line = position(item)
    if line is not None and line >= 1:
        yield line
