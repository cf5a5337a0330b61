"""Several scanners' findings as one list: alike ones merged, each naming who reported it."""

from __future__ import annotations

from gateway.domain.models import SEVERITIES
from gateway.report.fingerprint import fingerprint
from gateway.report.location import lines
from gateway.report.merge import merge_findings, summary
from gateway.scanners.lines import MAX_RELATED_LINES
from gateway.scanners.vulnerability import normalise_vulnerability
from mock_scanner.scenario import findings

LEAK = {"type": "hardcoded-secret", "file_path": "app/config.py", "line": 4, "title": "Secret"}


def test_alike_findings_of_two_scanners_are_one_naming_both():
    merged = merge_findings(
        {
            "secret_scanner": [{**LEAK, "scanner": "secret_scanner", "severity": "medium"}],
            "sast_scanner": [{**LEAK, "scanner": "sast_scanner", "severity": "high"}],
        }
    )
    assert len(merged) == 1
    (finding,) = merged
    assert finding["reported_by"] == ["sast_scanner", "secret_scanner"]
    # The most severe is kept, with its own fields.
    assert finding["severity"] == "high" and finding["scanner"] == "sast_scanner"
    assert finding["fingerprint"] == fingerprint(LEAK)


def test_among_equals_the_first_scanner_by_name_is_kept():
    merged = merge_findings(
        {
            "zeta": [{**LEAK, "severity": "low", "id": "z"}],
            "alpha": [{**LEAK, "severity": "low", "id": "a"}],
        }
    )
    assert [f["id"] for f in merged] == ["a"]
    assert merged[0]["reported_by"] == ["alpha", "zeta"]


def test_one_scanners_duplicates_are_one_too():
    merged = merge_findings({"s": [dict(LEAK), dict(LEAK)]})
    assert len(merged) == 1 and merged[0]["reported_by"] == ["s"]


def test_different_findings_stay_apart_ordered_by_severity_then_path_and_line():
    per_scanner = {
        kind: [
            normalise_vulnerability(raw, scanner=kind, index=i)
            for i, raw in enumerate(findings(kind, "acme/web"))
        ]
        for kind in ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner")
    }
    merged = merge_findings(per_scanner)
    assert len(merged) == sum(len(f) for f in per_scanner.values())
    assert all(f["reported_by"] == [f["scanner"]] for f in merged)
    ranks = [SEVERITIES.index(f["severity"]) for f in merged]
    assert ranks == sorted(ranks)
    keys = [(f["severity"], f["file_path"] or "", f["line"] or 0) for f in merged]
    for severity in SEVERITIES:
        same = [k[1:] for k in keys if k[0] == severity]
        assert same == sorted(same)


def test_the_order_and_the_result_do_not_depend_on_the_order_given():
    a = [{**LEAK, "line": n, "severity": s} for n, s in ((1, "low"), (2, "high"), (3, "low"))]
    b = [{**LEAK, "line": 2, "severity": "critical"}]
    one = merge_findings({"a": a, "b": b})
    two = merge_findings({"b": b, "a": list(reversed(a))})
    assert one == two
    assert [(f["line"], f["severity"]) for f in one] == [(2, "critical"), (1, "low"), (3, "low")]


def test_the_input_is_not_changed():
    finding = dict(LEAK)
    merge_findings({"s": [finding]})
    assert finding == LEAK


def test_nothing_merges_to_nothing():
    assert merge_findings({}) == []
    assert merge_findings({"s": []}) == []


def test_the_summary_counts_every_severity():
    counted = summary(
        [{"severity": "high"}, {"severity": "high"}, {"severity": "info"}, {"severity": 7}, {}]
    )
    assert counted == {
        "total": 5,
        "by_severity": {"critical": 0, "high": 2, "medium": 0, "low": 0, "info": 1, "unknown": 2},
    }
    assert list(counted["by_severity"]) == list(SEVERITIES)


def test_alike_findings_keep_every_scanners_lines():
    merged = merge_findings(
        {
            "sast_scanner": [{**LEAK, "severity": "high", "related_lines": [40, 9]}],
            "secret_scanner": [{**LEAK, "severity": "low", "line": [4, 41, 40]}],
        }
    )
    (finding,) = merged
    assert finding["severity"] == "high"
    assert (finding["line"], finding["related_lines"]) == (4, [9, 40, 41])
    assert lines(finding) == [4, 9, 40, 41]


def test_merged_lines_keep_the_kept_findings_own_first_and_stay_bounded():
    own = list(range(1000, 1000 + MAX_RELATED_LINES - 2))
    merged = merge_findings(
        {
            "a": [{**LEAK, "severity": "high", "related_lines": own}],
            "b": [{**LEAK, "severity": "low", "related_lines": list(range(5, 500))}],
        }
    )
    (finding,) = merged
    assert finding["related_lines"] == [5, 6, *own]
    assert len(finding["related_lines"]) == MAX_RELATED_LINES


def test_a_finding_no_other_adds_a_line_to_is_as_it_was():
    alone = {**LEAK, "related_lines": [9]}
    same = {**LEAK, "line": [4, 9]}
    bare = dict(LEAK)
    merged = merge_findings({"a": [alone], "b": [same], "c": [bare]})
    assert merged == [{**alone, "fingerprint": fingerprint(LEAK), "reported_by": ["a", "b", "c"]}]
    (single,) = merge_findings({"a": [bare]})
    assert "related_lines" not in single
