"""What the terminal shows of a collection: one line per event (what CI logs get), live bars
on a terminal (one per scanner and one for the whole), or JSON lines; then how it ended.

A line says which scanner moved, to what, and what the collection is at::

      7  secret_scanner   completed  100%  Scan complete: 3 vulnerabilities found.  +3 findings
         (1 critical, 1 high, 1 medium) · all running 61%
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from gateway.cli.client import TERMINAL_STATUS_VALUES
from gateway.cli.display import Display, StateColumn, clean, json_line, say, status_style
from gateway.cli.findings import table_row
from gateway.domain.models import SEVERITIES

__all__ = ["CollectionBars", "CollectionDisplay", "CollectionJson", "CollectionLines"]

OVERALL = "all"
_NAME_WIDTH = 16


def _progress(data: Mapping[str, Any]) -> tuple[str, int | None]:
    status = clean(data.get("status", "?"))
    percent = data.get("progress_percent")
    return status, percent if isinstance(percent, int) and not isinstance(percent, bool) else None


def _percent(percent: int | None) -> str:
    return f"{percent:>3}%" if percent is not None else "   ?"


def _found(findings: list[Any]) -> str:
    """``+3 findings (1 critical, 2 high)``: what an event brought."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        if isinstance(finding, dict):
            counts[table_row(finding)["severity"]] += 1
    parts = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    noun = "finding" if len(findings) == 1 else "findings"
    return f"+{len(findings)} {noun} ({parts})"


class CollectionDisplay(Display):
    """What ``scan --scanners`` and ``watch --collection`` show; one per output mode."""

    def ended(
        self, final: Mapping[str, Any], head: Mapping[str, Any], code: int, gate: Mapping[str, Any]
    ) -> None: ...


class CollectionLines(CollectionDisplay):
    """One line per event, nothing redrawn: readable in a CI log."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @property
    def out(self) -> Console:
        """Where lines go (above the bars, when there are bars)."""
        return self.console

    def begin(self, collection: Mapping[str, Any]) -> None:
        scanners = collection.get("scanners")
        names = ", ".join(clean(name) for name in scanners) if isinstance(scanners, list) else "?"
        head = Text.assemble(
            ("Collection ", "bold"),
            (clean(collection.get("id", "")), "bold"),
            clean(f"  {names} on {collection.get('repository_name', '?')}"),
        )
        self.out.print(head, highlight=False)

    def event(self, event_id: int | str | None, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            say(self.out, f"[{name}] {clean(data)}", "magenta")
            return
        label = Text(f"{event_id!s:>4}" if event_id is not None else "   -", style="dim")
        if name == "reset" or not isinstance(data.get("scan"), dict):
            status, percent = _progress(data)
            reason = clean(data.get("reason", ""))
            line = Text.assemble(
                (f"[{name}] ", "magenta"),
                label,
                "  ",
                (f"{OVERALL:<{_NAME_WIDTH}} ", "bold"),
                (f"{status:<12}", status_style(status)),
                f" {_percent(percent)}  {reason}",
            )
            self.out.print(line, highlight=False, soft_wrap=True)
            return
        scan = data["scan"]
        status, percent = _progress(scan)
        parts: list[Any] = [
            label,
            "  ",
            (f"{clean(scan.get('scanner_name', '?')):<{_NAME_WIDTH}} ", "bold"),
            (f"{status:<12}", status_style(status)),
            f" {_percent(percent)}  ",
            clean(scan.get("error") or scan.get("progress_text") or ""),
        ]
        findings = data.get("findings")
        if isinstance(findings, list) and findings:
            parts += ["  ", (_found(findings), "bold")]
        whole = data.get("collection")
        if isinstance(whole, dict):
            total, overall = _progress(whole)
            parts += ["  · ", (f"{OVERALL} {total} {_percent(overall).strip()}", "dim")]
        self.out.print(Text.assemble(*parts), highlight=False, soft_wrap=True)

    def notice(self, message: str) -> None:
        say(self.out, message, "yellow")

    def ended(
        self, final: Mapping[str, Any], head: Mapping[str, Any], code: int, gate: Mapping[str, Any]
    ) -> None:
        status = clean(head.get("status") or _final_status(final))
        ident = clean(head.get("collection_id") or final.get("collection_id") or "")
        total = head.get("total_findings")
        count = f": {total} findings after merging" if isinstance(total, int) else ""
        say(self.console, f"Collection {ident} {status}{count}.", f"bold {status_style(status)}")
        scans = head.get("scans")
        if isinstance(scans, list) and scans:
            self.console.print(_outcomes(scans))


def _final_status(final: Mapping[str, Any]) -> str:
    whole = final.get("collection")
    return str((whole if isinstance(whole, dict) else final).get("status", "?"))


def _outcomes(scans: list[Any]) -> Table:
    table = Table(title="Scanners", title_justify="left")
    for column in ("scanner", "status", "findings", "error"):
        table.add_column(column, justify="right" if column == "findings" else "left")
    for scan in scans:
        if not isinstance(scan, dict):
            continue
        status = clean(scan.get("status", "?"))
        dropped = scan.get("findings_dropped")
        found = clean(scan.get("findings", "?"))
        if isinstance(dropped, int) and dropped > 0:
            found += f" (+{dropped} dropped)"
        table.add_row(
            clean(scan.get("scanner_name", "?")),
            Text(status, style=status_style(status)),
            found,
            clean(scan.get("error") or ""),
        )
    return table


class CollectionBars(CollectionLines):
    """On a terminal: the lines, and below them a live bar per scanner and one for the whole."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.progress = Progress(
            StateColumn(),
            TextColumn("{task.description:<16}", markup=False),
            TextColumn("{task.fields[status]:<12}", markup=False),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[text]}", markup=False),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.statuses: dict[str, str] = {}  # each bar's status

    @property
    def out(self) -> Console:
        return self.progress.console

    def _task(self, name: str) -> TaskID:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=100, status="waiting", text="")
            self.statuses[name] = "waiting"
        return self.tasks[name]

    def _move(self, name: str, data: Mapping[str, Any]) -> None:
        status, percent = _progress(data)
        fields: dict[str, Any] = {"status": status}
        text = data.get("error") or data.get("progress_text")
        if isinstance(text, str):
            fields["text"] = clean(text)
        if percent is not None:
            fields["completed"] = percent
        if status == "completed":
            fields["completed"] = 100
        task = self._task(name)
        self.statuses[name] = status
        self.progress.update(task, **fields)
        if status in TERMINAL_STATUS_VALUES:
            self.progress.stop_task(task)

    def begin(self, collection: Mapping[str, Any]) -> None:
        super().begin(collection)
        self.progress.start()
        scanners = collection.get("scanners")
        for name in scanners if isinstance(scanners, list) else []:
            self._task(clean(name))
        self._task(OVERALL)

    def event(self, event_id: int | str | None, name: str, data: Any) -> None:
        if isinstance(data, dict):
            scan = data.get("scan")
            if isinstance(scan, dict):
                self._move(clean(scan.get("scanner_name", "?")), scan)
            whole = data.get("collection")
            self._move(OVERALL, whole if isinstance(whole, dict) else data)
            self.progress.update(self._task(OVERALL), text=self._ended())
            self.progress.refresh()
        super().event(event_id, name, data)

    def _ended(self) -> str:
        """``2 of 4 scanners ended``: the whole's text."""
        scanners = [status for name, status in self.statuses.items() if name != OVERALL]
        done = sum(1 for status in scanners if status in TERMINAL_STATUS_VALUES)
        return f"{done} of {len(scanners)} scanners ended"

    def stop(self) -> None:
        self.progress.stop()


class CollectionJson(CollectionDisplay):
    """One JSON object per line on stdout (each event as the gateway sent it, each finding of
    the results, then a summary); notices on stderr."""

    def __init__(self, console: Console, errors: Console) -> None:
        self.console = console
        self.errors = errors

    def event(self, event_id: int | str | None, name: str, data: Any) -> None:
        json_line(self.console, event_id, name, data)

    def notice(self, message: str) -> None:
        say(self.errors, message, "yellow")

    def ended(
        self, final: Mapping[str, Any], head: Mapping[str, Any], code: int, gate: Mapping[str, Any]
    ) -> None:
        data = {
            "collection_id": head.get("collection_id") or final.get("collection_id"),
            "status": head.get("status") or _final_status(final),
            "exit_code": code,
            "findings": head.get("total_findings"),
            "summary": head.get("summary"),
            "scans": head.get("scans"),
            **gate,
        }
        json_line(self.console, None, "summary", data)
