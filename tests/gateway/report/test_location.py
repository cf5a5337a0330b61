"""Where a finding is, read from anything: repository-relative paths, lines, rule ids."""

from __future__ import annotations

import pytest

from gateway.report.location import (
    MAX_LINES,
    MAX_PATH_CHARS,
    MAX_RULE_CHARS,
    first_line,
    lines,
    repository_path,
    rule_id,
    severity,
)


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("src/app.py", "src/app.py"),
        ("/home/runner/work/app.py", "home/runner/work/app.py"),
        ("C:\\repo\\src\\app.py", "repo/src/app.py"),
        ("../../etc/passwd", "etc/passwd"),
        ("src/./a/../b.py", "src/b.py"),
        ("file:///srv/repo/a%20b.py", "srv/repo/a b.py"),
        ("https://user:secret@shop.test:8443/login?token=abc#top", "shop.test:8443/login"),
        ("https://shop.test/", "shop.test"),
        ("a:b/c.py", "a:b/c.py"),
        ("dir/\x1b[31mred.py", "dir/[31mred.py"),
        ("", None),
        ("   ", None),
        ("/", None),
        ("../..", None),
        (42, None),
        (None, None),
        (["a.py"], None),
    ],
)
def test_paths_are_made_repository_relative(given, path):
    assert repository_path(given) == path


def test_a_huge_path_is_cut_and_keeps_what_tells_it_apart():
    one = repository_path("a/" * 5000 + "one.py")
    two = repository_path("a/" * 5000 + "two.py")
    assert one is not None and two is not None
    assert len(one) == len(two) == MAX_PATH_CHARS
    assert one != two


@pytest.mark.parametrize(
    ("line", "found"),
    [
        (12, [12]),
        ("12", [12]),
        (12.0, [12]),
        ([12, 40, 12], [12, 40]),
        ([0, -1, "x", None, 7], [7]),
        ("40-42", [40, 41, 42]),
        (["40-42", 12], [40, 12, 41, 42]),
        ([0, "5-3", "7-8"], [7, 8]),
        (0, []),
        (-5, []),
        (True, []),
        (12.5, []),
        ("9" * 5000, []),
        (10**40, []),
        (float("nan"), []),
        ({"line": 3}, []),
        (None, []),
    ],
)
def test_lines_keep_what_is_a_line(line, found):
    assert lines({"line": line}) == found


@pytest.mark.parametrize(
    ("finding", "first", "found"),
    [
        # As normalisation stores a list-valued line: the first, and the others beside it.
        ({"line": 12, "related_lines": [40, 41]}, 12, [12, 40, 41]),
        ({"line": 12, "related_lines": [41, 12, 40, 40]}, 12, [12, 40, 41]),
        ({"line": [12, "40-41"]}, 12, [12, 40, 41]),
        ({"line": "40-41", "related_lines": [12]}, 40, [40, 12, 41]),
        ({"line": [12, 50], "related_lines": [40]}, 12, [12, 40, 50]),
        # Related lines are never the first line, and never read as one.
        ({"related_lines": [40, 41]}, None, [40, 41]),
        ({"line": 0, "related_lines": [12]}, None, [12]),
        ({"line": 12, "related_lines": "40"}, 12, [12]),
        ({"line": 12, "related_lines": [[40], True, 0, -1, "x", 10**40]}, 12, [12]),
        (
            {"line": 12, "related_lines": list(range(100_000))},
            12,
            [12, *(n for n in range(1, MAX_LINES + 1) if n != 12)],
        ),
    ],
)
def test_related_lines_follow_the_first_line(finding, first, found):
    assert first_line(finding) == first
    assert lines(finding) == found


def test_a_list_of_thousands_of_lines_is_read_only_so_far():
    assert lines({"line": list(range(1, 1_000_000))}) == list(range(1, MAX_LINES + 1))
    # Past the items looked at, nothing more is found, however many there are.
    assert lines({"line": [0] * 1000 + [5]}) == []


def test_rule_ids_of_every_kind():
    assert rule_id({"type": "sql-injection"}) == "sql-injection"
    assert rule_id({"rule_id": 42}) == "42"
    assert rule_id({"type": True, "title": "Missing auth: /admin!"}) == "missing-auth-admin"
    assert rule_id({"type": "a\nb\x1bc"}) == "a b c"
    assert rule_id({}) == "finding"
    long = rule_id({"type": "r" * 10_000})
    assert len(long) == MAX_RULE_CHARS and long != rule_id({"type": "r" * 10_001})


def test_an_unknown_severity_is_unknown():
    assert severity({"severity": "HIGH"}) == "high"
    assert [severity({"severity": s}) for s in ("severe", 9, None)] == ["unknown"] * 3
