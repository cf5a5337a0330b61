"""What the terminal shows: the live bar, JSON lines, the severity summary."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from gateway.cli.client import TERMINAL_STATUS_VALUES
from gateway.domain.models import SEVERITIES, Status

SEVERITY_STYLES = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
    "unknown": "dim",
}
# C0 and C1 controls and DEL: text from scanners must not drive the terminal (rich keeps ESC).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value: object) -> str:
    """Text from the gateway (and so from scanners) made safe for a terminal, on one line."""
    return _CONTROLS.sub(lambda m: " " if m.group() in "\t\n\r" else "\ufffd", str(value))


def say(console: Console, message: str | Text, style: str = "") -> None:
    """A message printed as is: no markup, no highlighting, no control characters, and no hard
    line breaks (the terminal wraps it), so commands in it can be copied."""
    if isinstance(message, str):
        message = clean(message)
    console.print(message, style=style, highlight=False, markup=False, soft_wrap=True)


def json_line(console: Console, event_id: int | str | None, event: str, data: Any) -> None:
    # ASCII only: \\u escapes keep C1 controls (and any locale's encoding) out of the terminal.
    line = json.dumps({"id": event_id, "event": event, "data": data}, allow_nan=False)
    console.out(line, highlight=False)


def parse_event_id(raw: str) -> int | str:
    return int(raw) if raw.isascii() and raw.isdigit() else raw


class Display:
    """What ``watch`` shows; one implementation per output mode."""

    def begin(self, scan: Mapping[str, Any]) -> None: ...

    def event(self, event_id: int | str | None, name: str, data: Any) -> None: ...

    def notice(self, message: str) -> None: ...

    def stop(self) -> None: ...

    def finish(
        self,
        final: Mapping[str, Any],
        results: Mapping[str, Any] | None,
        code: int,
        gate: Mapping[str, Any] | None = None,
    ) -> None: ...


class JsonLines(Display):
    """One JSON object per line on stdout; notices go to stderr so stdout stays parseable."""

    def __init__(self, console: Console, errors: Console) -> None:
        self.console = console
        self.errors = errors

    def event(self, event_id: int | str | None, name: str, data: Any) -> None:
        json_line(self.console, event_id, name, data)

    def notice(self, message: str) -> None:
        say(self.errors, message, "yellow")

    def finish(
        self,
        final: Mapping[str, Any],
        results: Mapping[str, Any] | None,
        code: int,
        gate: Mapping[str, Any] | None = None,
    ) -> None:
        summary = results.get("summary") if results else None
        data = {
            "scan_id": final.get("scan_id"),
            "status": final.get("status"),
            "exit_code": code,
            "error": final.get("error"),
            "progress_text": final.get("progress_text"),
            "findings": _finding_count(results),
            "findings_dropped": results.get("findings_dropped") if results else None,
            "summary": summary,
            **(gate or {}),
        }
        json_line(self.console, None, "summary", data)


_MARKS = {"completed": ("✓", "green"), "failed": ("✗", "red"), "cancelled": ("■", "yellow")}


class StateColumn(SpinnerColumn):
    """A spinner while it runs; a mark once it has ended."""

    def render(self, task: Task) -> RenderableType:
        mark = _MARKS.get(task.fields.get("status", ""))
        if mark is not None:
            return Text(mark[0], style=mark[1])
        return super().render(task)


class Bar(Display):
    """A live progress bar (status, percent, text) with one log line per event above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            StateColumn(),
            TextColumn("{task.fields[status]:<12}", markup=False),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[text]}", markup=False),
            console=console,
        )
        self.task: TaskID | None = None

    def begin(self, scan: Mapping[str, Any]) -> None:
        head = Text.assemble(
            ("Scan ", "bold"),
            (clean(scan.get("scan_id", "")), "bold"),
            clean(f"  {scan.get('scanner_name', '?')} on {scan.get('repository_name', '?')}"),
        )
        self.console.print(head, highlight=False)
        self.progress.start()
        self.task = self.progress.add_task("scan", total=100, status="waiting", text="")

    def event(self, event_id: int | str | None, name: str, data: Any) -> None:
        if not isinstance(data, dict) or self.task is None:
            return
        status = clean(data.get("status", "?"))
        percent = data.get("progress_percent")
        text = clean(data.get("progress_text") or "")
        fields: dict[str, Any] = {"status": status, "text": text}
        if isinstance(percent, int):
            fields["completed"] = percent
        if status == Status.COMPLETED:
            fields["completed"] = 100
        self.progress.update(self.task, **fields)
        if status in TERMINAL_STATUS_VALUES:
            self.progress.stop_task(self.task)
        self.progress.refresh()  # the bar moves with the line below, not up to 0.1 s later
        if name == "reset":
            text = f"{text} ({clean(data.get('reason', 'reset'))})"
        shown = f"{percent:>3}%" if isinstance(percent, int) else "   ?"
        label = f"{event_id!s:>4}" if event_id is not None else "   -"
        line = Text.assemble(
            (label, "dim"), "  ", (f"{status:<12}", status_style(status)), f" {shown}  ", text
        )
        if name != "message":
            line = Text.assemble((f"[{name}] ", "magenta"), line)
        self.progress.console.print(line, highlight=False)

    def notice(self, message: str) -> None:
        say(self.progress.console, message, "yellow")

    def stop(self) -> None:
        self.progress.stop()

    def finish(
        self,
        final: Mapping[str, Any],
        results: Mapping[str, Any] | None,
        code: int,
        gate: Mapping[str, Any] | None = None,
    ) -> None:
        status = str(final.get("status"))
        scan_id = clean(final.get("scan_id", ""))
        if status == Status.FAILED:
            error = final.get("error") or final.get("progress_text") or "no reason given"
            say(self.console, Text.assemble((f"Scan {scan_id} failed: ", "bold red"), clean(error)))
            return
        if status == Status.CANCELLED:
            say(self.console, f"Scan {scan_id} was cancelled.", "bold yellow")
            return
        summary = results.get("summary") if results else None
        count = _finding_count(results) or 0
        noun = "finding" if count == 1 else "findings"
        say(self.console, f"Scan {scan_id} completed: {count} {noun}.", "bold green")
        dropped = results.get("findings_dropped") if results else None
        if isinstance(dropped, int) and dropped > 0:
            say(
                self.console,
                f"{dropped} more findings were dropped: past the gateway's limits for one scan.",
                "yellow",
            )
        if isinstance(summary, dict):
            self.console.print(_summary_table(summary, count))


def _finding_count(results: Mapping[str, Any] | None) -> int | None:
    """Every finding of the scan: ``total_findings`` (the results come a page at a time), or
    the length of the list from a gateway that sent them all at once."""
    if not results:
        return None
    total = results.get("total_findings")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    vulnerabilities = results.get("vulnerabilities")
    return len(vulnerabilities) if isinstance(vulnerabilities, list) else None


_STATUS_STYLES = {"completed": "green", "failed": "red", "cancelled": "yellow"}


def status_style(status: str) -> str:
    return _STATUS_STYLES.get(status, "cyan")


def _summary_table(summary: Mapping[str, Any], count: int) -> Table:
    table = Table(title="Findings by severity", show_footer=True, title_justify="left")
    table.add_column("severity", footer="total")
    table.add_column("count", justify="right", footer=str(count))
    names = [*SEVERITIES, *(name for name in summary if name not in SEVERITIES)]
    for name in names:
        value = summary.get(name, 0)
        style = SEVERITY_STYLES.get(name, "") if value else "dim"
        table.add_row(Text(clean(name), style=style), Text(clean(value), style=style))
    return table


# --- watching ---------------------------------------------------------------------------------
