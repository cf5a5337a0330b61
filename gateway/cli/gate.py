"""The CI gate, once a scan or collection has ended: its whole results read page by page
(against ``--baseline``), the SARIF report written (``--sarif``), and the ``--fail-on`` verdict.

The verdict counts the findings at or above the ``--fail-on`` severity (``any``: every finding,
``unknown`` severities included); with ``--baseline`` only those the gateway marks ``new``.
The results are never held whole: the table keeps its first rows (the counted findings first),
and ``--json`` prints each finding as it is read.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from gateway.cli.client import (
    EXIT_COMPLETED,
    EXIT_ERROR,
    EXIT_FINDINGS,
    CliError,
    Options,
    api_error,
    loads_strict,
    scan_data,
    unreachable,
)
from gateway.domain.models import SEVERITIES
from gateway.report.location import severity

__all__ = [
    "DEFAULT_ROWS",
    "FAIL_ON_CHOICES",
    "Gate",
    "Report",
    "read_report",
    "verdict",
    "write_sarif",
]

# `unknown` ranks below `info`: `--fail-on info` leaves it out, `any` counts it.
FAIL_ON_CHOICES = (*(name for name in SEVERITIES if name != "unknown"), "any")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
DEFAULT_ROWS = 100
MAX_ROWS = 100_000
# The gateway's own format for an id (report_query): checked before a scan is started for it.
_BASELINE = re.compile(r"[A-Za-z0-9_-]{1,100}")
# A results page that names a next page must hold a finding; past this many pages the answer
# is not a gateway's (its results are bounded by findings.max_per_scan).
MAX_PAGES = 100_000
MAX_SARIF_BYTES = 1 << 30
SARIF_MEDIA_TYPE = "application/sarif+json"
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Gate:
    """What to do once it has ended: ``--sarif FILE``, ``--fail-on SEVERITY``,
    ``--baseline ID`` and ``--max-rows N`` (the findings table's length)."""

    sarif: str | None = None
    fail_on: str | None = None
    baseline: str | None = None
    rows: int = DEFAULT_ROWS

    def __post_init__(self) -> None:
        if self.fail_on is not None and self.fail_on not in FAIL_ON_CHOICES:
            choices = ", ".join(FAIL_ON_CHOICES)
            raise CliError(f"--fail-on must be one of {choices}, not {self.fail_on!r}")
        if self.baseline is not None and not _BASELINE.fullmatch(self.baseline):
            raise CliError(
                "--baseline must be a scan or collection id (1-100 letters, digits, - or _)"
            )
        if not 0 <= self.rows <= MAX_ROWS:
            raise CliError(f"--max-rows must be between 0 and {MAX_ROWS}")
        if self.sarif is not None:
            _check_writable(Path(self.sarif))

    @property
    def asked(self) -> bool:
        """Whether anything beyond the plain summary was asked for."""
        return self.sarif is not None or self.fail_on is not None or self.baseline is not None

    def counts(self, finding: Mapping[str, Any]) -> bool:
        """The finding trips ``--fail-on`` (new ones only, with a baseline)."""
        if self.fail_on is None:
            return False
        if self.baseline is not None and finding.get("baseline_state") != "new":
            return False
        if self.fail_on == "any":
            return True
        return _RANK[severity(finding)] <= _RANK[self.fail_on]

    @property
    def params(self) -> dict[str, str]:
        return {} if self.baseline is None else {"baseline": self.baseline}


def _check_writable(path: Path) -> None:
    """Before anything starts: the report's folder exists and the file can be replaced."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise CliError(f"--sarif {path} is a directory")
    if not folder.is_dir():
        raise CliError(f"--sarif {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"--sarif {path}: the directory {folder} is not writable")


@dataclass(slots=True)
class Report:
    """What was read of the results: the first page's other fields, counts over every page,
    and the table's rows."""

    head: dict[str, Any] = field(default_factory=dict)
    total: int = 0
    by_severity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    failing: int = 0
    new: int = 0
    fixed: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    _others: list[dict[str, Any]] = field(default_factory=list)

    def take(self, finding: dict[str, Any], gate: Gate) -> None:
        self.total += 1
        self.by_severity[severity(finding)] += 1
        self.new += finding.get("baseline_state") == "new"
        if gate.counts(finding):
            self.failing += 1
            if len(self.rows) < gate.rows:
                self.rows.append(finding)
        elif len(self._others) < gate.rows:
            self._others.append(finding)

    def table_rows(self, gate: Gate) -> list[dict[str, Any]]:
        """The findings that trip the gate first, then the others, at most ``gate.rows``."""
        return [*self.rows, *self._others][: gate.rows]


async def read_report(
    session: aiohttp.ClientSession,
    options: Options,
    api: str,
    ident: str,
    gate: Gate,
    on_finding: Callable[[dict[str, Any]], None] | None = None,
) -> Report:
    """Every page of ``GET {api}/{ident}/results`` (with the baseline), counted."""
    report = Report()
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = {**gate.params, **({"cursor": cursor} if cursor else {})}
        page = await scan_data(session, options, ident, "/results", api=api, params=params)
        found = page.pop("vulnerabilities", None)
        fixed = page.pop("fixed", None) or []
        if not isinstance(found, list) or not isinstance(fixed, list):
            raise CliError(f"unexpected results for {ident}: no list of vulnerabilities")
        if not report.head:
            report.head = page
        for finding in found:
            if isinstance(finding, dict):
                report.take(finding, gate)
                if on_finding is not None:
                    on_finding(finding)
        report.fixed += len(fixed)
        following = page.get("next_cursor")
        if not isinstance(following, str) or not following:
            return report
        if not found and not fixed:
            raise CliError(f"unexpected results for {ident}: an empty page before the last")
        cursor = following
    raise CliError(f"unexpected results for {ident}: more than {MAX_PAGES} pages")


def verdict(outcome: int, report: Report | None, gate: Gate) -> int:
    """The exit code: how it ended first (failed, cancelled), then ``--fail-on``."""
    if outcome != EXIT_COMPLETED:
        return outcome
    if report is not None and report.failing > 0:
        return EXIT_FINDINGS
    return EXIT_COMPLETED


async def write_sarif(
    session: aiohttp.ClientSession, options: Options, api: str, ident: str, gate: Gate
) -> int:
    """``GET {api}/{ident}/results?format=sarif`` into ``gate.sarif`` (replaced whole, never
    left half-written); the number of bytes written."""
    assert gate.sarif is not None
    target = Path(gate.sarif)
    url = options.endpoint(f"/{quote(ident, safe='')}/results", api)
    params = {"format": "sarif", **gate.params}
    headers = {**options.headers, "Accept": SARIF_MEDIA_TYPE}
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            size = await _download(session, url, params, headers, file, options)
        _check_sarif(Path(temporary), url)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return size


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    file: Any,
    options: Options,
) -> int:
    size = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=options.request_timeout)
    try:
        async with session.get(url, params=params, headers=headers, timeout=timeout) as response:
            if response.status >= 400:
                raise await api_error(response, options)
            if response.content_type != SARIF_MEDIA_TYPE:
                raise CliError(
                    f"{url} answered {response.content_type or 'no content type'},"
                    f" not {SARIF_MEDIA_TYPE}"
                )
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > MAX_SARIF_BYTES:
                    raise CliError(f"the SARIF report is larger than {MAX_SARIF_BYTES} bytes")
                file.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise unreachable(options.url, exc) from None
    except OSError as exc:
        raise CliError(f"cannot write the SARIF report: {exc}", EXIT_ERROR) from None
    return size


def _check_sarif(path: Path, url: str) -> None:
    """What was written is a SARIF 2.1.0 log (not, say, a proxy's error page)."""
    try:
        document = loads_strict(path.read_bytes())
    except ValueError as exc:
        raise CliError(f"{url} did not answer JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != "2.1.0":
        raise CliError(f"{url} did not answer a SARIF 2.1.0 log")
