"""SARIF 2.1.0: valid against the official schema, and what GitHub code scanning needs."""

from __future__ import annotations

import json
import urllib.parse

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the venv
import pytest

from gateway.report.baseline import compare
from gateway.report.fingerprint import VERSION, fingerprint
from gateway.report.merge import merge_findings
from gateway.report.sarif import MAX_MESSAGE_CHARS, NO_FILE, SarifRun, to_sarif
from gateway.scanners.vulnerability import normalise_vulnerability
from mock_scanner.scenario import findings
from tests.helpers import assert_valid_sarif, github_problems, sarif_schema

KINDS = ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner")


def mock_findings(kind):
    return [
        normalise_vulnerability(raw, scanner=kind, index=i)
        for i, raw in enumerate(findings(kind, "acme/web"))
    ]


def only_run(document):
    (run,) = document["runs"]
    return run


def test_the_schema_is_the_official_one_and_it_refuses_what_is_wrong():
    document = to_sarif([SarifRun("sast_scanner", mock_findings("sast_scanner"))])
    assert_valid_sarif(document)
    document["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(sarif_schema()).validate(document)


def test_the_checks_for_code_scanning_find_what_it_refuses():
    document = to_sarif([SarifRun("s", [{"type": "t", "file_path": "a.py", "line": 2}])])
    result = document["runs"][0]["results"][0]
    result["ruleId"] = "other"
    result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "/etc/passwd"
    result["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    del result["partialFingerprints"]
    document["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["security-severity"] = 8.0
    assert len(github_problems(document)) == 5


def test_one_run_per_scanner_with_its_driver_and_rules():
    document = to_sarif([SarifRun(kind, mock_findings(kind)) for kind in KINDS])
    assert_valid_sarif(document)
    assert document["version"] == "2.1.0" and document["$schema"].endswith(
        "sarif-schema-2.1.0.json"
    )
    assert [run["tool"]["driver"]["name"] for run in document["runs"]] == list(KINDS)
    sast = document["runs"][1]
    driver = sast["tool"]["driver"]
    assert driver["version"] and driver["informationUri"].startswith("https://")
    sqli = driver["rules"][0]
    assert sqli["id"] == "python.lang.security.sqli.formatted-sql-query"
    assert sqli["name"] == "PythonLangSecuritySqliFormattedSqlQuery"
    assert sqli["shortDescription"]["text"] == "SQL query built with an f-string from user input."
    assert sqli["help"]["text"].startswith("Use a parameterised query")
    assert sqli["defaultConfiguration"] == {"level": "error"}
    assert sqli["properties"] == {
        "security-severity": "9.5",
        "tags": ["security", "external/cwe/cwe-89"],
    }
    result = sast["results"][0]
    assert result["ruleId"] == sqli["id"] and result["ruleIndex"] == 0
    assert result["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "app/db/queries.py"},
        "region": {
            "startLine": 88,
            "startColumn": 17,
            "snippet": {"text": 'cursor.execute(f"SELECT * FROM users WHERE id = {user_id}")'},
        },
    }
    finding = mock_findings("sast_scanner")[0]
    assert result["partialFingerprints"] == {VERSION: fingerprint(finding)}
    assert "baselineState" not in result


def test_levels_and_security_severities_follow_the_severity():
    severities = ["critical", "high", "medium", "low", "info", "unknown"]
    run = only_run(
        to_sarif([SarifRun("s", [{"type": s, "severity": s, "line": 1} for s in severities])])
    )
    levels = [result["level"] for result in run["results"]]
    assert levels == ["error", "error", "warning", "note", "note", "warning"]
    scores = [rule["properties"]["security-severity"] for rule in run["tool"]["driver"]["rules"]]
    assert scores == ["9.5", "8.0", "5.5", "3.0", "1.0", "4.0"]


def test_a_rule_is_as_severe_as_its_most_severe_result():
    run = only_run(
        to_sarif(
            [SarifRun("s", [{"type": "r", "severity": "low"}, {"type": "r", "severity": "high"}])]
        )
    )
    (rule,) = run["tool"]["driver"]["rules"]
    assert rule["defaultConfiguration"]["level"] == "error"
    assert rule["properties"]["security-severity"] == "8.0"


def test_a_list_of_lines_is_a_region_and_related_locations():
    run = only_run(to_sarif([SarifRun("s", [{"type": "t", "file_path": "k", "line": [1, 27, 1]}])]))
    result = run["results"][0]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert result["relatedLocations"] == [
        {
            "id": 1,
            "physicalLocation": {"artifactLocation": {"uri": "k"}, "region": {"startLine": 27}},
            "message": {"text": "line 27"},
        }
    ]


def test_a_stored_findings_related_lines_are_related_locations_in_its_file():
    raw = {"type": "t", "file": "app/x.py", "line": ["12", "40-41", 12], "column": 3}
    stored = normalise_vulnerability(raw, scanner="s", index=0)
    assert (stored["line"], stored["related_lines"]) == (12, [40, 41])
    document = to_sarif([SarifRun("s", [stored])])
    assert_valid_sarif(document)
    (result,) = only_run(document)["results"]
    assert result["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 12,
        "startColumn": 3,
    }
    related = result["relatedLocations"]
    assert [r["id"] for r in related] == [1, 2]
    assert [r["physicalLocation"]["region"]["startLine"] for r in related] == [40, 41]
    assert {r["physicalLocation"]["artifactLocation"]["uri"] for r in related} == {"app/x.py"}
    assert [r["message"]["text"] for r in related] == ["line 40", "line 41"]
    # Its fingerprint is the one the first line alone gives.
    alone = normalise_vulnerability({**raw, "line": 12}, scanner="s", index=0)
    assert result["partialFingerprints"] == {VERSION: fingerprint(alone)}


def test_a_finding_without_file_or_line_still_has_a_location():
    run = only_run(to_sarif([SarifRun("s", [{"title": "Header missing"}])]))
    location = run["results"][0]["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": NO_FILE}, "region": {"startLine": 1}}


def test_a_dast_url_becomes_a_relative_uri_without_its_query():
    document = to_sarif([SarifRun("dast_scanner", mock_findings("dast_scanner"))])
    assert_valid_sarif(document)
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in document["runs"][0]["results"]
    ]
    urls = [urllib.parse.urlsplit(raw["url"]) for raw in findings("dast_scanner", "acme/web")]
    assert all(url.query or url.path for url in urls)
    assert uris == [f"{url.hostname}{url.path}".rstrip("/") for url in urls]
    assert not any("?" in uri or "q=" in uri for uri in uris)


def test_paths_are_percent_encoded():
    run = only_run(to_sarif([SarifRun("s", [{"file_path": "dir/a b#c?.py"}])]))
    uri = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "dir/a%20b%23c%3F.py"


def test_against_a_baseline_results_say_their_state_and_fixed_ones_are_absent():
    old = mock_findings("sast_scanner")
    new = [old[0], {**old[1], "line": 99}]
    marked, fixed = compare(new, old)
    document = to_sarif([SarifRun("sast_scanner", marked, fixed)], baseline=True)
    assert_valid_sarif(document)
    states = [r["baselineState"] for r in only_run(document)["results"]]
    assert states == ["unchanged", "new", "absent", "absent"]


def test_fixed_findings_are_left_out_without_a_baseline():
    run = only_run(to_sarif([SarifRun("s", [{"type": "a"}], [{"type": "b"}])]))
    assert [r["ruleId"] for r in run["results"]] == ["a"]


def test_merged_findings_name_their_reporters():
    leak = {"type": "leak", "file_path": "a.py", "line": 1}
    merged = merge_findings({"one": [leak], "two": [leak]})
    run = only_run(to_sarif([SarifRun("collection", merged)]))
    assert run["results"][0]["properties"]["reported_by"] == ["one", "two"]


def test_scanner_names_that_read_alike_are_still_two_categories():
    # Found by the property test: code scanning refuses two runs in one category.
    document = to_sarif([SarifRun("a b", []), SarifRun("a-b", []), SarifRun("a b", [])])
    assert_valid_sarif(document)
    ids = [run["automationDetails"]["id"] for run in document["runs"]]
    assert ids == ["xployt/a-b/", "xployt/a-b-2/", "xployt/a-b-3/"]


def test_two_scanners_are_two_categories_and_an_empty_run_is_valid():
    document = to_sarif([SarifRun("a", []), SarifRun("b", [])])
    assert_valid_sarif(document)
    assert [run["automationDetails"]["id"] for run in document["runs"]] == [
        "xployt/a/",
        "xployt/b/",
    ]
    assert to_sarif([]) == {"$schema": document["$schema"], "version": "2.1.0", "runs": []}


HOSTILE = [
    {},
    {"type": 7, "line": 0, "column": 0},
    {"type": ["x"], "line": -3, "title": {"a": 1}, "severity": ["high"]},
    {"type": "r", "line": "9" * 5000, "file_path": "/" + "a/" * 50_000},
    {"type": "r", "line": list(range(100_000)), "file_path": "../../../../etc/passwd"},
    {
        "type": "r" * 100_000,
        "file_path": "C:\\Users\\x\\..\\..\\..\\y.py",
        "cwe": "CWE-" + "9" * 99,
    },
    {"type": "\x00\x1b[2J", "title": "\u202e\ud800", "description": "d" * 1_000_000},
    {"file_path": "https://user:pw@[::1]:99999/x?token=t", "confidence": float("nan")},
    {"file_path": "http://[::1", "confidence": 10**30, "reported_by": ["a"] * 10_000},
    {"id": None, "scanner": 3, "code_snippet": "\n\n", "remediation": "   "},
    {"line": True, "column": "12", "file_path": "file://host/srv/a.py"},
    {"line": 3, "related_lines": [[1], True, "9" * 5000, "1-99999999", *range(100_000)]},
    {"related_lines": {"a": 1}, "line": [0, "2147483647-2147483647"]},
    # Found by the property test: a path no UTF-8 can hold, a state that is not a string.
    {"file_path": "a\ud800b.py", "baseline_state": ["new"]},
]


@pytest.mark.parametrize("finding", HOSTILE)
def test_hostile_findings_give_valid_bounded_sarif(finding):
    document = to_sarif([SarifRun("\x1b]scanner\n", [finding], [finding])], baseline=True)
    assert_valid_sarif(document)
    json.dumps(document, allow_nan=False)  # JSON as the gateway writes it
    (result, absent) = only_run(document)["results"]
    assert absent["baselineState"] == "absent"
    assert len(result["message"]["text"]) <= MAX_MESSAGE_CHARS
    assert len(result.get("relatedLocations", [])) <= 50
    # However big the finding, its result is bounded.
    assert len(json.dumps(result)) < 30_000
