"""Tests for gateway.scanners.normalise and gateway.scanners.vulnerability: upstream messages
and findings in, one shape out."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gateway.domain.models import SEVERITIES, Status, UpstreamUpdate
from gateway.scanners.normalise import FAILURE_TEXT, UpstreamFormatError, normalise_update
from gateway.scanners.vulnerability import normalise_vulnerability, severity_summary

VULN_KEYS = {
    "id",
    "scanner",
    "type",
    "severity",
    "title",
    "description",
    "file_path",
    "line",
    "column",
    "code_snippet",
    "confidence",
    "remediation",
    "cwe",
    "metadata",
}


def update(raw: object, start_index: int = 0) -> UpstreamUpdate:
    return normalise_update(raw, scanner="semgrep", start_index=start_index)


def vuln(raw: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return normalise_vulnerability(raw, scanner="semgrep", index=index)


# --------------------------------------------------------------------------- seed examples


def test_seed_progress_message() -> None:
    raw = {"status": "scanning", "progress_percent": 30, "message": "Analyzing files..."}
    assert update(raw) == UpstreamUpdate(
        status=Status.SCANNING, progress_percent=30, progress_text="Analyzing files..."
    )


def test_seed_completed_message() -> None:
    raw = {
        "status": "completed",
        "progress_percent": 100,
        "vulnerabilities": [
            {
                "type": "sql_injection",
                "severity": "high",
                "file_path": "app/db.py",
                "line": 42,
                "description": "User input reaches a SQL query.",
            }
        ],
    }
    result = update(raw)
    assert result.status is Status.COMPLETED
    assert result.progress_percent == 100
    assert result.progress_text is None
    assert result.error is None
    assert result.terminal
    assert result.vulnerabilities == (
        {
            "id": "semgrep-1",
            "scanner": "semgrep",
            "type": "sql_injection",
            "severity": "high",
            "title": "sql_injection",
            "description": "User input reaches a SQL query.",
            "file_path": "app/db.py",
            "line": 42,
            "column": None,
            "code_snippet": None,
            "confidence": None,
            "remediation": None,
            "cwe": None,
            "metadata": {},
        },
    )


def test_empty_object_says_nothing() -> None:
    assert update({}) == UpstreamUpdate()


# --------------------------------------------------------------------------- raw shape


@pytest.mark.parametrize("raw", [None, [], [{"status": "scanning"}], "scanning", 30, 1.5, True])
def test_non_object_raises(raw: object) -> None:
    with pytest.raises(UpstreamFormatError, match="not a JSON object"):
        update(raw)


def test_format_error_is_a_value_error() -> None:
    assert issubclass(UpstreamFormatError, ValueError)


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"message": "Analyzing files..."}, "Analyzing files..."),
        ({"progress_text": "a", "message": "b", "text": "c", "detail": "d"}, "a"),
        ({"message": "b", "text": "c", "detail": "d"}, "b"),
        ({"text": "c", "detail": "d"}, "c"),
        ({"detail": "d"}, "d"),
        ({"progress_text": "   ", "message": "b"}, "b"),
        ({"progress_text": "", "message": "b"}, "b"),
        ({"progress_text": 5, "message": "b"}, "b"),
        ({"message": ["x"], "detail": "d"}, "d"),
        ({"message": {"text": "x"}}, None),
        ({"message": None}, None),
        ({"message": "  padded  \n"}, "padded"),
        ({"message": "x" * 1500}, "x" * 1000),
        ({"message": "y" * 1000}, "y" * 1000),
        ({}, None),
    ],
)
def test_progress_text(raw: dict[str, Any], expected: str | None) -> None:
    assert update(raw).progress_text == expected


# --------------------------------------------------------------------------- progress


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"progress_percent": 45}, 45),
        ({"progress": 45}, 45),
        ({"progress_percent": 10, "progress": 20}, 10),
        ({"progress_percent": "bad", "progress": 20}, 20),
        ({"progress_percent": 0}, 0),
        ({"progress_percent": 100}, 100),
        # floats round down
        ({"progress_percent": 45.9}, 45),
        ({"progress_percent": 100.0}, 100),
        # numeric strings
        ({"progress_percent": "45"}, 45),
        ({"progress_percent": "45.5"}, 45),
        ({"progress_percent": "45%"}, 45),
        ({"progress": " 45 % "}, 45),
        ({"progress_percent": ".5"}, 0),
        # clamping
        ({"progress_percent": 150}, 100),
        ({"progress_percent": 10**30}, 100),
        ({"progress_percent": -5}, 0),
        ({"progress_percent": -0.5}, 0),
        ({"progress_percent": 100.5}, 100),
        ({"progress_percent": "250%"}, 100),
        ({"progress_percent": "-3"}, 0),
        # fractions are not guessed: 0.45 is 0 percent
        ({"progress_percent": 0.45}, 0),
        ({"progress_percent": 0.999}, 0),
        ({"progress_percent": 1.0}, 1),
        ({"progress_percent": "0.45"}, 0),
        # rejected
        ({"progress_percent": True}, None),
        ({"progress_percent": False}, None),
        ({"progress": True}, None),
        ({"progress_percent": math.nan}, None),
        ({"progress_percent": math.inf}, None),
        ({"progress_percent": -math.inf}, None),
        ({"progress_percent": "nan"}, None),
        ({"progress_percent": "inf"}, None),
        ({"progress_percent": "1e2"}, None),
        ({"progress_percent": "abc"}, None),
        ({"progress_percent": "45 percent"}, None),
        ({"progress_percent": ""}, None),
        ({"progress_percent": "%"}, None),
        ({"progress_percent": [50]}, None),
        ({"progress_percent": {"value": 50}}, None),
        ({"progress_percent": None}, None),
        ({}, None),
    ],
)
def test_progress_percent(raw: dict[str, Any], expected: int | None) -> None:
    result = update(raw).progress_percent
    assert result == expected
    assert result is None or type(result) is int


# --------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("complete", Status.COMPLETED),
        ("completed", Status.COMPLETED),
        ("done", Status.COMPLETED),
        ("finished", Status.COMPLETED),
        ("success", Status.COMPLETED),
        ("succeeded", Status.COMPLETED),
        ("failed", Status.FAILED),
        ("failure", Status.FAILED),
        ("error", Status.FAILED),
        ("errored", Status.FAILED),
        ("setting up", Status.INITIALIZING),
        ("setup", Status.INITIALIZING),
        ("initializing", Status.INITIALIZING),
        ("initialising", Status.INITIALIZING),
        ("init", Status.INITIALIZING),
        ("starting", Status.INITIALIZING),
        ("started", Status.INITIALIZING),
        ("queued", Status.INITIALIZING),
        ("pending", Status.INITIALIZING),
        ("cloning", Status.CLONING),
        ("clone", Status.CLONING),
        ("fetching", Status.CLONING),
        ("analyzing", Status.ANALYZING),
        ("analysing", Status.ANALYZING),
        ("analysis", Status.ANALYZING),
        ("scanning", Status.SCANNING),
        ("running", Status.SCANNING),
        ("in progress", Status.SCANNING),
        ("in_progress", Status.SCANNING),
        ("processing", Status.PROCESSING),
        ("postprocessing", Status.PROCESSING),
        ("saving", Status.SAVING),
        ("uploading", Status.SAVING),
        ("reporting", Status.SAVING),
        # case, surrounding whitespace and separators are folded
        ("COMPLETED", Status.COMPLETED),
        ("  Done \n", Status.COMPLETED),
        ("Setting-Up", Status.INITIALIZING),
        ("setting_up", Status.INITIALIZING),
        ("Set Up", Status.INITIALIZING),
        ("In-Progress", Status.SCANNING),
        ("IN PROGRESS", Status.SCANNING),
        ("in   progress", Status.SCANNING),
        ("Post-Processing", Status.PROCESSING),
        ("post_processing", Status.PROCESSING),
        ("Analysing", Status.ANALYZING),
    ],
)
def test_status_synonyms(word: str, expected: Status) -> None:
    result = update({"status": word})
    assert result.status is expected
    assert result.progress_text is None


@pytest.mark.parametrize(
    ("raw", "status", "text"),
    [
        ({"status": "Warming up"}, Status.SCANNING, "Warming up"),
        ({"status": "  Warming up  "}, Status.SCANNING, "Warming up"),
        ({"status": "connecting"}, Status.SCANNING, "connecting"),
        ({"status": "Warming up", "message": "Loading rules"}, Status.SCANNING, "Loading rules"),
        ({"status": "Warming up", "progress_text": "  "}, Status.SCANNING, "Warming up"),
        ({"status": "z" * 1200}, Status.SCANNING, "z" * 1000),
    ],
)
def test_unknown_status_is_scanning_and_keeps_its_text(
    raw: dict[str, Any], status: Status, text: str
) -> None:
    result = update(raw)
    assert result.status is status
    assert result.progress_text == text
    assert result.error is None


@pytest.mark.parametrize("value", [None, "", "   ", 3, 1.5, True, ["scanning"], {"s": 1}])
def test_missing_or_unusable_status_is_not_said(value: object) -> None:
    result = update({"status": value, "progress_percent": 5})
    assert result.status is None
    assert result.progress_text is None
    assert result.progress_percent == 5


def test_status_absent() -> None:
    assert update({"message": "hi"}).status is None


# --------------------------------------------------------------------------- completion


@pytest.mark.parametrize(
    "raw",
    [
        {"status": "completed"},
        {"status": "done", "progress_percent": 40},
        {"status": "finished", "progress": "12%"},
        {"status": "success", "progress_percent": True},
    ],
)
def test_completed_forces_progress_100(raw: dict[str, Any]) -> None:
    result = update(raw)
    assert result.status is Status.COMPLETED
    assert result.progress_percent == 100


@pytest.mark.parametrize("word", ["scanning", "saving", "Warming up"])
def test_running_status_keeps_progress_unsaid(word: str) -> None:
    assert update({"status": word}).progress_percent is None


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("raw", "error", "text", "progress"),
    [
        # failed status: error text falls back to the progress text, then the default
        ({"status": "failed"}, FAILURE_TEXT, None, None),
        ({"status": "error", "message": "clone failed"}, "clone failed", "clone failed", None),
        ({"status": "FAILURE", "detail": "timeout", "progress": 60}, "timeout", "timeout", 60),
        ({"status": "failed", "error": "boom", "message": "m"}, "boom", "m", None),
        # an error field wins over any status
        ({"status": "scanning", "error": "boom"}, "boom", None, None),
        ({"status": "completed", "progress_percent": 100, "error": "boom"}, "boom", None, 100),
        ({"status": "completed", "error": "boom"}, "boom", None, None),
        ({"status": "done", "progress_percent": 40, "error": "x"}, "x", None, 40),
        ({"error": "boom"}, "boom", None, None),
        ({"error": "  boom \n"}, "boom", None, None),
        ({"status": "Warming up", "error": "boom"}, "boom", "Warming up", None),
        ({"error": "e" * 1500}, "e" * 1000, None, None),
        # error objects
        ({"error": {"message": "disk full", "code": 28}}, "disk full", None, None),
        ({"error": {"message": " disk full "}}, "disk full", None, None),
        ({"error": {"code": 28}}, "{'code': 28}", None, None),
        ({"error": {"message": 5}}, "{'message': 5}", None, None),
        ({"error": {"message": "x" * 1200}}, "x" * 1000, None, None),
        # other types: their str()
        ({"error": 42}, "42", None, None),
        ({"error": ["a", "b"]}, "['a', 'b']", None, None),
        ({"error": [1] * 600}, str([1] * 600)[:1000], None, None),
        # true: failed, but the field has no text of its own
        ({"error": True}, FAILURE_TEXT, None, None),
        ({"error": True, "message": "scanner crashed"}, "scanner crashed", "scanner crashed", None),
    ],
)
def test_failure(raw: dict[str, Any], error: str, text: str | None, progress: int | None) -> None:
    result = update(raw)
    assert result.status is Status.FAILED
    assert result.error == error
    assert result.progress_text == text
    assert result.progress_percent == progress
    assert result.terminal


@pytest.mark.parametrize("value", [None, False, 0, "", "   ", [], {}])
def test_empty_error_field_is_no_error(value: object) -> None:
    result = update({"status": "scanning", "error": value})
    assert result.status is Status.SCANNING
    assert result.error is None


def test_no_error_without_failure() -> None:
    assert update({"status": "completed", "message": "all good"}).error is None


# ------------------------------------------------------------------- findings in updates


def test_vulnerabilities_skip_non_objects_and_number_from_start_index() -> None:
    raw = {"vulnerabilities": [1, {"type": "a"}, "x", None, {"type": "b"}, ["c"]]}
    result = update(raw, start_index=5)
    assert [(v["id"], v["type"]) for v in result.vulnerabilities] == [
        ("semgrep-6", "a"),
        ("semgrep-7", "b"),
    ]
    assert all(v["scanner"] == "semgrep" for v in result.vulnerabilities)


def test_vulnerability_ids_default_start_at_one() -> None:
    result = update({"vulnerabilities": [{}, {}, {"id": "given"}, {}]})
    assert [v["id"] for v in result.vulnerabilities] == [
        "semgrep-1",
        "semgrep-2",
        "given",
        "semgrep-4",
    ]


def test_findings_alias() -> None:
    result = update({"findings": [{"title": "t"}]})
    assert [v["title"] for v in result.vulnerabilities] == ["t"]


@pytest.mark.parametrize(
    ("raw", "titles"),
    [
        ({"vulnerabilities": [{"title": "v"}], "findings": [{"title": "f"}]}, ["v"]),
        ({"vulnerabilities": "lots", "findings": [{"title": "f"}]}, ["f"]),
        ({"vulnerabilities": {"title": "v"}}, []),
        ({"vulnerabilities": "v"}, []),
        ({"vulnerabilities": None}, []),
        ({"findings": 3}, []),
        ({"vulnerabilities": []}, []),
        ({}, []),
    ],
)
def test_vulnerability_lists(raw: dict[str, Any], titles: list[str]) -> None:
    result = update(raw)
    assert isinstance(result.vulnerabilities, tuple)
    assert [v["title"] for v in result.vulnerabilities] == titles


def test_vulnerabilities_come_with_any_status() -> None:
    result = update({"status": "scanning", "progress": 50, "findings": [{"severity": "low"}]})
    assert result.status is Status.SCANNING
    assert [v["severity"] for v in result.vulnerabilities] == ["low"]


# --------------------------------------------------------------------------- findings


def test_empty_finding() -> None:
    assert vuln({}, index=3) == {
        "id": "semgrep-4",
        "scanner": "semgrep",
        "type": None,
        "severity": "unknown",
        "title": "Untitled finding",
        "description": None,
        "file_path": None,
        "line": None,
        "column": None,
        "code_snippet": None,
        "confidence": None,
        "remediation": None,
        "cwe": None,
        "metadata": {},
    }


def test_full_finding() -> None:
    raw = {
        "fingerprint": "abc123",
        "check_id": "python.sqli",
        "severity": "ERROR",
        "message": "SQL injection",
        "details": "Tainted input reaches execute().",
        "location": {"file": "app.py", "line": [10, 12], "end_line": 12},
        "col": "4",
        "snippet": "    cur.execute(q)\n",
        "confidence": "HIGH",
        "fix": "Use parameters.",
        "cwe": ["CWE-89", "CWE-20"],
        "tags": ["owasp"],
        "scanner": "semgrep-ci",
    }
    assert normalise_vulnerability(raw, scanner="semgrep", index=0) == {
        "id": "abc123",
        "scanner": "semgrep",
        "type": "python.sqli",
        "severity": "high",
        "title": "SQL injection",
        "description": "Tainted input reaches execute().",
        "file_path": "app.py",
        "line": 10,
        "related_lines": [12],
        "column": 4,
        "code_snippet": "    cur.execute(q)\n",
        "confidence": "HIGH",
        "remediation": "Use parameters.",
        "cwe": "CWE-89",
        "metadata": {
            "location": {"end_line": 12},
            "tags": ["owasp"],
            "scanner": "semgrep-ci",
        },
    }


@pytest.mark.parametrize(
    "raw",
    [{}, {"title": "x", "extra": 1}, {"location": {"path": "a"}, "cwe": 79, "severity": 9.9}],
)
def test_finding_has_exactly_the_keys(raw: dict[str, Any]) -> None:
    result = vuln(raw)
    assert set(result) == VULN_KEYS
    json.dumps(result)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"id": "abc"}, "abc"),
        ({"vulnerability_id": "v-1"}, "v-1"),
        ({"fingerprint": "f00d"}, "f00d"),
        ({"id": 7}, "7"),
        ({"id": " abc "}, "abc"),
        ({"id": "a", "vulnerability_id": "b", "fingerprint": "c"}, "a"),
        ({"vulnerability_id": "b", "fingerprint": "c"}, "b"),
        ({"id": "", "fingerprint": "c"}, "c"),
        ({"id": ""}, "semgrep-10"),
        ({"id": None}, "semgrep-10"),
        ({"id": True}, "semgrep-10"),
        ({"id": ["a"]}, "semgrep-10"),
        ({}, "semgrep-10"),
    ],
)
def test_finding_id(raw: dict[str, Any], expected: str) -> None:
    assert vuln(raw, index=9)["id"] == expected


@pytest.mark.parametrize(
    "key",
    ["type", "vulnerability_type", "category", "rule_id", "check_id", "secret_type", "rule"],
)
def test_type_aliases(key: str) -> None:
    result = vuln({key: "hardcoded-secret"})
    assert result["type"] == "hardcoded-secret"
    assert result["title"] == "hardcoded-secret"
    assert result["metadata"] == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "a", "rule_id": "b"}, "a"),
        ({"category": "c", "rule": "r"}, "c"),
        ({"type": 5, "rule_id": "b"}, "b"),
        ({"type": 5}, None),
        ({"type": "  "}, None),
    ],
)
def test_type_precedence(raw: dict[str, Any], expected: str | None) -> None:
    assert vuln(raw)["type"] == expected


@pytest.mark.parametrize(
    ("raw", "title", "description"),
    [
        ({"title": "T", "name": "N", "message": "M", "summary": "S"}, "T", "M"),
        ({"name": "N", "message": "M"}, "N", "M"),
        ({"message": "M", "summary": "S"}, "M", None),
        ({"summary": "S"}, "S", None),
        ({"message": "M"}, "M", None),
        ({"title": "T", "description": "D", "message": "M"}, "T", "D"),
        ({"title": "T", "details": "D", "message": "M"}, "T", "D"),
        ({"description": "D", "details": "E"}, "Untitled finding", "D"),
        ({"details": "E"}, "Untitled finding", "E"),
        ({"type": "xss", "description": "D"}, "xss", "D"),
        ({"title": "  ", "type": "xss"}, "xss", None),
        ({"title": 3, "name": "N"}, "N", None),
        ({"description": ["D"]}, "Untitled finding", None),
    ],
)
def test_title_and_description(raw: dict[str, Any], title: str, description: str | None) -> None:
    result = vuln(raw)
    assert (result["title"], result["description"]) == (title, description)


def test_message_left_over_goes_to_metadata() -> None:
    result = vuln({"title": "T", "description": "D", "message": "M"})
    assert result["metadata"] == {"message": "M"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", "critical"),
        ("high", "high"),
        ("medium", "medium"),
        ("low", "low"),
        ("info", "info"),
        ("unknown", "unknown"),
        ("CRITICAL", "critical"),
        (" High ", "high"),
        ("crit", "critical"),
        ("moderate", "medium"),
        ("warning", "medium"),
        ("WARNING", "medium"),
        ("med", "medium"),
        ("informational", "info"),
        ("information", "info"),
        ("note", "info"),
        ("none", "info"),
        ("error", "high"),
        ("ERROR", "high"),
        (10, "critical"),
        (9.8, "critical"),
        (9.0, "critical"),
        (9, "critical"),
        (8.9, "high"),
        (7.0, "high"),
        (6.9, "medium"),
        (4.0, "medium"),
        (3.9, "low"),
        (0.1, "low"),
        (1, "low"),
        (0, "info"),
        (0.0, "info"),
        ("7.5", "high"),
        ("0", "info"),
        (-1, "unknown"),
        (math.nan, "unknown"),
        (math.inf, "unknown"),
        (True, "unknown"),
        (False, "unknown"),
        ("bogus", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (["high"], "unknown"),
        ({"level": "high"}, "unknown"),
    ],
)
def test_severity(value: object, expected: str) -> None:
    assert vuln({"severity": value})["severity"] == expected


def test_unrecognised_severity_is_kept_in_metadata() -> None:
    assert vuln({"severity": "bogus"})["metadata"] == {"severity": "bogus"}
    assert vuln({"severity": "High"})["metadata"] == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"file_path": "a.py"}, "a.py"),
        ({"file": "a.py"}, "a.py"),
        ({"path": "a.py"}, "a.py"),
        ({"filename": "a.py"}, "a.py"),
        ({"location": {"path": "a.py"}}, "a.py"),
        ({"location": {"file": "a.py"}}, "a.py"),
        ({"url": "https://example.test/login"}, "https://example.test/login"),
        ({"file_path": "a", "file": "b", "path": "c", "filename": "d"}, "a"),
        ({"file": "b", "path": "c"}, "b"),
        ({"path": "c", "filename": "d"}, "c"),
        ({"filename": "d", "location": {"path": "e"}}, "d"),
        ({"location": {"path": "e", "file": "f"}, "url": "u"}, "e"),
        ({"location": {"file": "f"}, "url": "u"}, "f"),
        ({"file_path": 3, "file": "b"}, "b"),
        ({"location": "a.py:3"}, None),
        ({"url": 5}, None),
        ({}, None),
    ],
)
def test_file_path(raw: dict[str, Any], expected: str | None) -> None:
    assert vuln(raw)["file_path"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"line": 12}, 12),
        ({"line_number": 12}, 12),
        ({"start_line": 12}, 12),
        ({"location": {"line": 12}}, 12),
        ({"line": 1, "line_number": 2, "start_line": 3, "location": {"line": 4}}, 1),
        ({"line": [12, 14]}, 12),
        ({"line": (12, 14)}, 12),
        ({"line": ["12"]}, 12),
        ({"line": "12"}, 12),
        ({"line": " 12 "}, 12),
        ({"line": 12.0}, 12),
        ({"line": 0}, 0),
        ({"line": 0, "location": {"line": 5}}, 0),
        ({"line": -1}, None),
        ({"line": "-1"}, None),
        ({"line": -1, "line_number": 7}, 7),
        ({"line": True}, None),
        ({"line": [True]}, None),
        ({"line": 12.5}, None),
        ({"line": "12.5"}, None),
        ({"line": "abc"}, None),
        ({"line": []}, None),
        ({"line": [[12]]}, None),
        ({"line": {"start": 12}}, None),
        ({"line": None}, None),
        ({}, None),
    ],
)
def test_line(raw: dict[str, Any], expected: int | None) -> None:
    assert vuln(raw)["line"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"column": 5}, 5),
        ({"col": 5}, 5),
        ({"start_column": 5}, 5),
        ({"column": 1, "col": 2, "start_column": 3}, 1),
        ({"column": [5, 9]}, 5),
        ({"col": "5"}, 5),
        ({"column": True}, None),
        ({"column": -2}, None),
        ({"column": "x", "col": 3}, 3),
        ({"location": {"column": 5}}, None),
        ({}, None),
    ],
)
def test_column(raw: dict[str, Any], expected: int | None) -> None:
    assert vuln(raw)["column"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"code_snippet": "x = 1"}, "x = 1"),
        ({"snippet": "x = 1"}, "x = 1"),
        ({"code": "x = 1"}, "x = 1"),
        ({"evidence": "token=abc"}, "token=abc"),
        ({"code_snippet": "a", "snippet": "b", "code": "c", "evidence": "d"}, "a"),
        ({"snippet": "    if x:\n        y()\n"}, "    if x:\n        y()\n"),
        ({"code_snippet": "   ", "code": "c"}, "c"),
        ({"code": 5}, None),
        ({}, None),
    ],
)
def test_code_snippet(raw: dict[str, Any], expected: str | None) -> None:
    assert vuln(raw)["code_snippet"] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HIGH", "HIGH"),
        ("", ""),
        (0.9, 0.9),
        (3, 3),
        (0, 0),
        (True, None),
        (None, None),
        (["high"], None),
        ({"score": 1}, None),
    ],
)
def test_confidence(value: object, expected: object) -> None:
    result = vuln({"confidence": value})["confidence"]
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"remediation": "Escape it."}, "Escape it."),
        ({"fix": "Escape it."}, "Escape it."),
        ({"recommendation": "Escape it."}, "Escape it."),
        ({"solution": "Escape it."}, "Escape it."),
        ({"remediation": "a", "fix": "b", "recommendation": "c", "solution": "d"}, "a"),
        ({"fix": {"patch": "..."}, "solution": "d"}, "d"),
        ({}, None),
    ],
)
def test_remediation(raw: dict[str, Any], expected: str | None) -> None:
    assert vuln(raw)["remediation"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"cwe": 89}, "CWE-89"),
        ({"cwe": "89"}, "CWE-89"),
        ({"cwe": "CWE-89"}, "CWE-89"),
        ({"cwe": "cwe-89"}, "CWE-89"),
        ({"cwe": " CWE-89 "}, "CWE-89"),
        ({"cwe": "CWE-089"}, "CWE-89"),
        ({"cwe_id": 79}, "CWE-79"),
        ({"cwe_id": "cwe-79"}, "CWE-79"),
        ({"cwe": ["CWE-79", "CWE-89"]}, "CWE-79"),
        ({"cwe": [89]}, "CWE-89"),
        ({"cwe": 89, "cwe_id": 79}, "CWE-89"),
        ({"cwe": "junk", "cwe_id": 79}, "CWE-79"),
        ({"cwe": []}, None),
        ({"cwe": ["junk", "CWE-89"]}, None),
        ({"cwe": "CWE-89: SQL Injection"}, None),
        ({"cwe": "CWE89x"}, None),
        ({"cwe": 89.0}, None),
        ({"cwe": True}, None),
        ({"cwe": 0}, None),
        ({"cwe": -89}, None),
        ({"cwe": {"id": 89}}, None),
        ({"cwe": None}, None),
        ({}, None),
    ],
)
def test_cwe(raw: dict[str, Any], expected: str | None) -> None:
    assert vuln(raw)["cwe"] == expected


@pytest.mark.parametrize(
    ("raw", "metadata"),
    [
        ({"type": "x", "tags": ["a"], "extra": {"k": 1}}, {"tags": ["a"], "extra": {"k": 1}}),
        ({"file": "a", "path": "b"}, {"path": "b"}),
        ({"line": -1, "line_number": 7}, {"line": -1}),
        ({"cwe": "junk", "cwe_id": 79}, {"cwe": "junk"}),
        ({"id": "", "fingerprint": "c"}, {"id": ""}),
        ({"confidence": None}, {"confidence": None}),
        ({"scanner": "other", "owasp": "A03"}, {"scanner": "other", "owasp": "A03"}),
        # location keeps what nothing used, and goes when all of it was used
        ({"location": {"path": "a.py", "line": 3, "column": 4}}, {"location": {"column": 4}}),
        ({"location": {"path": "a.py", "line": 3}}, {}),
        ({"file": "b.py", "location": {"path": "a.py"}}, {"location": {"path": "a.py"}}),
        ({"location": "a.py:3"}, {"location": "a.py:3"}),
        ({"location": {}}, {"location": {}}),
    ],
)
def test_metadata_holds_the_rest(raw: dict[str, Any], metadata: dict[str, Any]) -> None:
    result = vuln(raw)
    assert result["metadata"] == metadata
    assert json.loads(json.dumps(result["metadata"])) == metadata


def test_finding_does_not_change_its_input() -> None:
    raw = {"location": {"path": "a.py", "line": 3, "column": 4}, "severity": "HIGH"}
    before = json.dumps(raw)
    vuln(raw)
    assert json.dumps(raw) == before


# --------------------------------------------------------------------------- summary


def test_summary_of_nothing() -> None:
    summary = severity_summary([])
    assert summary == dict.fromkeys(SEVERITIES, 0)
    assert list(summary) == list(SEVERITIES)


def test_summary_counts() -> None:
    vulns = [
        {"severity": "high"},
        {"severity": "high"},
        {"severity": "critical"},
        {"severity": "low"},
        {"severity": "info"},
        {"severity": "unknown"},
        {"severity": "weird"},
        {},
    ]
    assert severity_summary(vulns) == {
        "critical": 1,
        "high": 2,
        "medium": 0,
        "low": 1,
        "info": 1,
        "unknown": 3,
    }


def test_summary_of_normalised_update() -> None:
    result = update(
        {
            "status": "completed",
            "vulnerabilities": [
                {"severity": "ERROR"},
                {"severity": "warning"},
                {"severity": 9.1},
                {"severity": "note"},
                {"severity": 5},
                {},
            ],
        }
    )
    summary = severity_summary(result.vulnerabilities)
    assert list(summary) == list(SEVERITIES)
    assert summary == {"critical": 1, "high": 1, "medium": 2, "low": 0, "info": 1, "unknown": 1}


def test_status_text_loses_control_characters():
    update = normalise_update(
        {"status": "scanning", "message": "line one\nline\x1b[31m two\x00", "error": None},
        scanner="s",
    )
    assert update.progress_text == "line one line [31m two"
    failed = normalise_update({"error": "bad\r\nthing\x9b"}, scanner="s")
    assert failed.error == "bad thing"


def test_unknown_scalars_travel_under_extra_within_bounds():
    raw = {
        "status": "scanning",
        "progress_percent": 5,
        "t": 1764000000123456789,
        "seq": 7,
        "host": "runner-3\x1b",
        "ratio": 0.5,
        "nan": float("nan"),
        "nested": {"a": 1},
        "list": [1, 2],
        "long": "x" * 1000,
        "k" * 65: 1,
        **{f"f{i}": i for i in range(30)},
    }
    extra = dict(normalise_update(raw, scanner="s").extra)
    assert extra["t"] == 1764000000123456789
    assert extra["seq"] == 7
    assert extra["host"] == "runner-3 "
    assert extra["ratio"] == 0.5
    assert extra["long"] == "x" * 256
    assert "nan" not in extra and "nested" not in extra and "list" not in extra
    assert "k" * 65 not in extra
    assert len(extra) == 16
    assert normalise_update({"status": "scanning", "message": "m"}, scanner="s").extra == ()


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_never_reaches_a_stored_finding(number: float) -> None:
    """The scanner edge refuses NaN and infinities; a finding built from any other source
    still holds only JSON (no crash when its size is measured, nothing non-JSON stored)."""
    found = vuln({"title": "t", "confidence": number, "score": number, "nested": [number]})
    assert found["confidence"] is None
    assert found["metadata"] == {"confidence": None, "score": None, "nested": [None]}
    json.dumps(found, allow_nan=False)


def test_only_the_findings_a_scan_has_room_for_are_normalised() -> None:
    raw = {"status": "scanning", "findings": [{"title": f"f{i}"} for i in range(10)] + ["x"]}
    update = normalise_update(raw, scanner="s", start_index=4, max_findings=3)
    assert [v["title"] for v in update.vulnerabilities] == ["f0", "f1", "f2"]
    assert [v["id"] for v in update.vulnerabilities] == ["s-5", "s-6", "s-7"]
    assert update.findings_over == 7, "objects only: the string is not a finding"
    none = normalise_update(raw, scanner="s", max_findings=0)
    assert (none.vulnerabilities, none.findings_over) == ((), 10)
    every = normalise_update(raw, scanner="s")
    assert (len(every.vulnerabilities), every.findings_over) == (10, 0)


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u202e", "\u2066", "\u200f", "\x1b", "\x85"])
def test_status_text_is_one_line_without_reordering_controls(char: str) -> None:
    update = normalise_update({"progress_text": f"scan{char}ning", "error": None}, scanner="s")
    assert update.progress_text == "scan ning"


def test_finding_text_keeps_tabs_and_line_breaks_and_loses_other_controls() -> None:
    found = vuln(
        {
            "title": "\x00x\x1b[2J\u202etitle",
            "code_snippet": "if a:\n\treturn 1\r\n\x07",
            "description": "line one\nline two\u2066",
        }
    )
    assert found["title"] == "x[2Jtitle"
    assert found["code_snippet"] == "if a:\n\treturn 1\r\n"
    assert found["description"] == "line one\nline two"
