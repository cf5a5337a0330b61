"""Fingerprints: the same finding in the same code gets the same one, whatever else changes."""

from __future__ import annotations

import re

from gateway.report.fingerprint import fingerprint
from gateway.scanners.vulnerability import normalise_vulnerability
from mock_scanner.scenario import findings

SQLI = {
    "check_id": "python.lang.security.sqli.formatted-sql-query",
    "file_path": "app/db/queries.py",
    "line_number": 88,
    "column": 17,
    "severity": "critical",
    "message": "SQL query built with an f-string from user input.",
    "code_snippet": 'cursor.execute(f"SELECT * FROM users WHERE id = {user_id}")',
}


def normalised(raw, *, scanner="sast_scanner", index=0):
    return normalise_vulnerability(raw, scanner=scanner, index=index)


def test_a_fingerprint_is_32_hex_digits():
    assert re.fullmatch(r"[0-9a-f]{32}", fingerprint(normalised(SQLI)))


def test_the_same_finding_in_another_run_has_the_same_fingerprint():
    # Another run: another position on the scan (so another default id), another scanner
    # name, another severity and confidence, other metadata; the same code.
    first = normalised(SQLI, index=0)
    again = normalised(
        {**SQLI, "severity": "high", "confidence": 0.3, "commit": "abc"},
        scanner="another_scanner",
        index=7,
    )
    assert first["id"] != again["id"]
    assert fingerprint(first) == fingerprint(again)


def test_every_mock_finding_has_the_same_fingerprint_in_two_runs():
    for kind in ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner"):
        one = [fingerprint(normalised(raw, scanner=kind)) for raw in findings(kind, "acme/web")]
        two = [fingerprint(normalised(raw, scanner=kind)) for raw in findings(kind, "acme/web")]
        assert one == two
        assert len(set(one)) == len(one), f"{kind}: two findings share a fingerprint"


def test_reordered_fields_give_the_same_fingerprint():
    finding = normalised(SQLI)
    reordered = dict(reversed(list(finding.items())))
    assert list(reordered) != list(finding)
    assert fingerprint(reordered) == fingerprint(finding)


def test_reindented_code_and_reflowed_text_give_the_same_fingerprint():
    finding = normalised(SQLI)
    assert fingerprint({**finding, "code_snippet": '  cursor.execute(\n\n f"x")  '}) == (
        fingerprint({**finding, "code_snippet": 'cursor.execute(\n    f"x")'})
    )
    bare = {"type": "t", "file_path": "a.py", "line": 3}
    assert fingerprint({**bare, "description": "Token  in\nURL"}) == (
        fingerprint({**bare, "description": "token in url"})
    )


def test_the_same_path_written_differently_gives_the_same_fingerprint():
    finding = normalised(SQLI)
    for path in ("./app/db/queries.py", "app\\db\\queries.py", "app/x/../db/queries.py"):
        assert fingerprint({**finding, "file_path": path}) == fingerprint(finding)


def test_what_identifies_a_finding_changes_its_fingerprint():
    finding = normalised(SQLI)
    base = fingerprint(finding)
    for change in (
        {"line": 89},
        {"line": None},
        {"file_path": "app/db/other.py"},
        {"type": "python.lang.security.other"},
        {"code_snippet": 'cursor.execute(f"DELETE FROM users WHERE id = {user_id}")'},
    ):
        assert fingerprint({**finding, **change}) != base, change


def test_without_a_snippet_the_description_counts():
    bare = {"type": "t", "file_path": "a.py", "line": 3}
    assert fingerprint({**bare, "description": "one"}) != fingerprint(
        {**bare, "description": "two"}
    )


def test_a_list_of_lines_counts_by_its_first_line():
    bare = {"type": "t", "file_path": "a.py"}
    assert fingerprint({**bare, "line": [12, 40]}) == fingerprint({**bare, "line": 12})
    assert fingerprint({**bare, "line": [13, 40]}) != fingerprint({**bare, "line": 12})


def test_a_stored_finding_with_related_lines_keeps_the_fingerprint_it_had():
    # Before related lines were kept, normalisation stored the first line alone: the
    # finding it stores now has the fingerprint that one had, and a baseline taken then
    # still matches.
    for raw_line in ([88, 90, 95], ["88", "90-95"], [88, *range(1, 100_000)]):
        now = normalised({**SQLI, "line_number": raw_line})
        assert now["line"] == 88 and now["related_lines"]
        before = {key: value for key, value in now.items() if key != "related_lines"}
        assert fingerprint(now) == fingerprint(before) == fingerprint(normalised(SQLI))
    # Without a first line, related lines are not taken for one.
    bare = {"type": "t", "file_path": "a.py"}
    assert fingerprint({**bare, "related_lines": [7]}) == fingerprint(bare)
    assert fingerprint({**bare, "line": 0, "related_lines": [7]}) == fingerprint(
        {**bare, "line": 0}
    )


def test_hostile_values_give_a_fingerprint_and_no_error():
    for finding in (
        {},
        {"type": 12345, "line": "9" * 5000},
        {"type": ["a"], "title": {"x": 1}, "line": -4, "file_path": "/" * 100_000},
        {"type": None, "line": list(range(100_000)), "file_path": "../" * 10_000 + "x"},
        {"type": "\x1b[31m", "code_snippet": "\ud800", "description": 3.5},
        {"line": 3, "related_lines": [[1], "9" * 5000, *range(100_000)]},
    ):
        assert re.fullmatch(r"[0-9a-f]{32}", fingerprint(finding))


def test_an_integer_rule_id_and_its_string_are_the_same_rule():
    assert fingerprint({"type": 12}) == fingerprint({"type": "12"})
