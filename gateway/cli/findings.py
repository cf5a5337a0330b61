"""What the terminal shows of the results once it has ended: the findings table (severity,
file:line, rule, title), the counts by severity, the gate's verdict, the SARIF file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.cli.display import SEVERITY_STYLES, clean, say
from gateway.cli.gate import Gate, Report
from gateway.domain.models import SEVERITIES
from gateway.report.location import file_path, lines, rule_id, severity

__all__ = ["findings_table", "location", "show_report", "show_sarif", "show_verdict", "table_row"]

_MAX_ALSO = 5  # other lines of a finding named in its location; the rest counted
_MAX_CELL = 200  # characters of one cell: a table row stays a few lines at most


def _cut(value: object) -> str:
    text = clean(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def location(finding: Mapping[str, Any]) -> str:
    """``file:line`` as SARIF reads them (repository-relative), its other lines after it
    (``app.py:12 (also 40, 41)``), or ``-``."""
    path = file_path(finding)
    found = lines(finding)
    if not found:
        return path or "-"
    where = "line " if path is None else f"{path}:"
    also = ", ".join(map(str, found[1 : 1 + _MAX_ALSO]))
    if len(found) > 1 + _MAX_ALSO:
        also += f" and {len(found) - 1 - _MAX_ALSO} more"
    return f"{where}{found[0]}" + (f" (also {also})" if also else "")


def table_row(finding: Mapping[str, Any]) -> dict[str, Any]:
    """One finding as the table shows it (and ``--json`` prints it beside the finding)."""
    title = finding.get("title")
    return {
        "severity": severity(finding),
        "location": location(finding),
        "rule": rule_id(finding),
        "title": title if isinstance(title, str) else "",
    }


def findings_table(findings: Sequence[Mapping[str, Any]], gate: Gate, *, collection: bool) -> Table:
    table = Table(title="Findings", title_justify="left", show_lines=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("file:line", overflow="fold")
    table.add_column("rule", overflow="fold")
    table.add_column("title", overflow="fold")
    if gate.baseline is not None:
        table.add_column("baseline", no_wrap=True)
    if collection:
        table.add_column("reported by", overflow="fold")
    for finding in findings:
        row = table_row(finding)
        style = SEVERITY_STYLES.get(row["severity"], "")
        mark = ("▶ " if gate.counts(finding) else "  ") if gate.fail_on is not None else ""
        cells = [
            Text(mark + row["severity"], style=style),
            Text(_cut(row["location"])),
            Text(_cut(row["rule"])),
            Text(_cut(row["title"])),
        ]
        if gate.baseline is not None:
            cells.append(Text(clean(finding.get("baseline_state", "?"))))
        if collection:
            by = finding.get("reported_by")
            names = ", ".join(str(name) for name in by) if isinstance(by, list) else ""
            cells.append(Text(_cut(names)))
        table.add_row(*cells)
    return table


def show_report(console: Console, report: Report, gate: Gate, *, collection: bool) -> None:
    """The table (its first ``--max-rows`` rows), the counts, and the baseline's."""
    rows = report.table_rows(gate)
    if rows:
        console.print(findings_table(rows, gate, collection=collection))
    if report.total > len(rows):
        hidden = report.total - len(rows)
        say(console, f"… and {hidden} more (--max-rows {gate.rows}; --sarif or --json has all).")
    counts = ", ".join(f"{report.by_severity[name]} {name}" for name in SEVERITIES)
    noun = "finding" if report.total == 1 else "findings"
    say(console, f"{report.total} {noun}: {counts}.")
    if gate.baseline is not None:
        unchanged = report.total - report.new
        say(
            console,
            f"Against baseline {gate.baseline}: {report.new} new, {unchanged} unchanged,"
            f" {report.fixed} fixed.",
        )


def show_verdict(console: Console, report: Report | None, gate: Gate, code: int) -> None:
    """One line that says why the gate passed or failed."""
    if gate.fail_on is None or report is None:
        return
    which = "any severity" if gate.fail_on == "any" else f"{gate.fail_on} or above"
    scope = f" new since {gate.baseline}" if gate.baseline is not None else ""
    if report.failing:
        noun = "finding" if report.failing == 1 else "findings"
        message = f"--fail-on {gate.fail_on}: {report.failing}{scope} {noun} of {which}"
        say(console, f"{message} (exit {code}).", "bold red")
    else:
        say(console, f"--fail-on {gate.fail_on}: no{scope} finding of {which}.", "bold green")


def show_sarif(console: Console, path: str, size: int) -> None:
    say(console, f"SARIF report written to {path} ({size} bytes).")
