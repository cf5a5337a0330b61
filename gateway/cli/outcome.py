"""After the end, for a scan and a collection alike: read the results (when there are any),
write the SARIF report, decide the exit code, and show it all (a table, or JSON lines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from rich.console import Console

from gateway.cli.client import Options
from gateway.cli.display import json_line, say
from gateway.cli.findings import show_report, show_sarif, show_verdict
from gateway.cli.gate import Gate, Report, read_report, verdict, write_sarif

__all__ = ["Outcome", "conclude"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How it ended, for the shell (``code``) and for the summary."""

    code: int
    report: Report | None = None
    sarif_bytes: int | None = None
    no_results: str | None = None  # why there is nothing to report (a failed scan's 409)

    def summary(self, gate: Gate) -> dict[str, Any]:
        """The gate's part of the ``--json`` summary line."""
        report = self.report
        return {
            "fail_on": gate.fail_on,
            "baseline": gate.baseline,
            "failing": report.failing if report is not None else None,
            "new": report.new if report is not None and gate.baseline is not None else None,
            "fixed": report.fixed if report is not None and gate.baseline is not None else None,
            "sarif": gate.sarif if self.sarif_bytes is not None else None,
        }

    def show(self, console: Console, gate: Gate, *, collection: bool) -> None:
        """The human form: the findings table, the SARIF file, the verdict."""
        if self.no_results is not None:
            say(console, self.no_results, "yellow")
        if self.report is not None:
            show_report(console, self.report, gate, collection=collection)
        if self.sarif_bytes is not None and gate.sarif is not None:
            show_sarif(console, gate.sarif, self.sarif_bytes)
        show_verdict(console, self.report, gate, self.code)


async def conclude(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    gate: Gate,
    *,
    api: str,
    ident: str,
    ended: int,
    has_results: bool,
    noun: str,
) -> Outcome:
    """``ended`` is the exit code of how it ended; ``has_results`` whether the gateway serves
    results for it (a collection's whatever its end, a scan's once completed). With
    ``--json``, every finding is printed as a line as it is read."""
    if not has_results:
        why = None
        if gate.asked:
            why = f"No findings to report and no SARIF written: the {noun} has no results."
        return Outcome(ended, no_results=why)

    def line(finding: dict[str, Any]) -> None:
        json_line(console, None, "finding", finding)

    report = await read_report(
        session, options, api, ident, gate, on_finding=line if options.json else None
    )
    size = await write_sarif(session, options, api, ident, gate) if gate.sarif else None
    return Outcome(verdict(ended, report, gate), report, size)
