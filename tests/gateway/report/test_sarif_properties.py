"""Property: whatever findings are given, the SARIF of them validates and code scanning takes it.

Findings are drawn as arbitrary JSON-like mappings, biased towards the keys the report reads
(``type``, ``file_path``, ``line``, ...) with values of any type: text with control characters
and lone surrogates, paths with ``..`` and schemes, zero, negative and huge lines, lists of
lines and ranges, related lines, nested containers. The "ci" profile (tests/conftest.py) runs
the same examples each time.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.report.baseline import compare
from gateway.report.merge import merge_findings
from gateway.report.sarif import SarifRun, to_sarif
from tests.helpers import assert_valid_sarif

KEYS = (
    "id",
    "scanner",
    "type",
    "rule_id",
    "severity",
    "title",
    "description",
    "file_path",
    "url",
    "line",
    "related_lines",
    "column",
    "code_snippet",
    "confidence",
    "remediation",
    "cwe",
    "reported_by",
    "baseline_state",
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "../../x",
            "/abs/p.py",
            "C:\\w\\x.py",
            "https://u:p@h:1/a?t=1",
            "file:///a",
            "CWE-79",
            "high",
            "critical",
            "new",
            "absent",
            "9" * 60,
            "0",
            "-1",
            "40-42",
            "1-99999999",
            "\x1b[2J",
            "\ud800",
            "",
        ]
    )
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
finding = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), values, max_size=10)
per_scanner = st.dictionaries(st.text(max_size=12), st.lists(finding, max_size=5), max_size=3)


@given(per_scanner, st.lists(finding, max_size=5))
def test_sarif_of_any_findings_validates(scanners, baseline):
    runs = []
    for name, found in scanners.items():
        marked, fixed = compare(found, baseline)
        runs.append(SarifRun(name, marked, fixed))
    runs.append(SarifRun("merged", merge_findings(scanners)))
    document = to_sarif(runs, baseline=True)
    assert_valid_sarif(document)
    json.dumps(document, allow_nan=False)
