"""A report against a baseline: new, unchanged and fixed findings, by fingerprint."""

from __future__ import annotations

from gateway.report.baseline import compare
from gateway.report.fingerprint import fingerprint

A = {"type": "a", "file_path": "x.py", "line": 1, "id": "first-run-1"}
B = {"type": "b", "file_path": "x.py", "line": 2}
C = {"type": "c", "file_path": "y.py", "line": 3}


def test_findings_are_new_unchanged_or_fixed():
    marked, fixed = compare([{**A, "id": "second-run-9"}, C], [A, B])
    assert [(f["type"], f["baseline_state"]) for f in marked] == [("a", "unchanged"), ("c", "new")]
    assert [(f["type"], f["baseline_state"]) for f in fixed] == [("b", "absent")]
    assert [f["fingerprint"] for f in marked + fixed] == [fingerprint(f) for f in (A, C, B)]
    # The current run's own fields are kept (its id, not the baseline's).
    assert marked[0]["id"] == "second-run-9"


def test_against_itself_everything_is_unchanged():
    marked, fixed = compare([A, B, C], [A, B, C])
    assert {f["baseline_state"] for f in marked} == {"unchanged"}
    assert fixed == []


def test_against_nothing_everything_is_new_and_nothing_fixed():
    marked, fixed = compare([A, B], [])
    assert {f["baseline_state"] for f in marked} == {"new"}
    assert fixed == []
    marked, fixed = compare([], [A, B])
    assert marked == [] and [f["type"] for f in fixed] == ["a", "b"]


def test_a_baseline_finding_given_twice_is_fixed_once_in_its_first_form():
    _, fixed = compare([], [{**B, "id": "one"}, A, {**B, "id": "two"}])
    assert [f.get("id") for f in fixed] == ["one", "first-run-1"]


def test_a_moved_finding_is_new_and_its_old_place_fixed():
    marked, fixed = compare([{**A, "line": 5}], [A])
    assert marked[0]["baseline_state"] == "new"
    assert fixed[0]["line"] == 1


def test_the_inputs_are_not_changed():
    current, baseline = [dict(A)], [dict(B)]
    compare(current, baseline)
    assert current == [A] and baseline == [B]
