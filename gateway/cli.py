"""The command-line client: ``python -m gateway scan`` and ``python -m gateway watch``.

Each step is a small async function that takes an :class:`aiohttp.ClientSession`, a
:class:`rich.console.Console` and :class:`Options`, so tests call them in-process against a real
gateway. Nothing here reads the environment or global state: ``__main__`` resolves the URL and
the token (:func:`resolve_url`, :func:`resolve_token`) and passes them in.

``watch`` follows ``GET /api/v1/scans/{id}/stream`` the way an EventSource would: it reconnects
with ``Last-Event-ID`` after a drop (waiting the server's ``retry:`` hint), adopts ``event: reset``
snapshots, stops for good on 204 No Content, and gives up after a bounded number of consecutive
attempts that deliver nothing. It cannot refresh a bearer token, so ``event: auth_expired`` ends
it with :data:`EXIT_AUTH_EXPIRED` and a resume command.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
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

from .auth import TokenVerifier
from .config import Config
from .models import SEVERITIES, TERMINAL_STATUSES, Status
from .sse_parser import SSEEvent, SSELineTooLong, SSEParser

__all__ = [
    "EXIT_AUTH_EXPIRED",
    "EXIT_CANCELLED",
    "EXIT_CODES_HELP",
    "EXIT_COMPLETED",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_UNREACHABLE",
    "CliError",
    "Options",
    "ScanRequest",
    "open_session",
    "parse_configurations",
    "resolve_token",
    "resolve_url",
    "run_scan",
    "run_watch",
    "scan",
    "start_scan",
    "watch",
]

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 2
EXIT_AUTH_EXPIRED = 3
EXIT_ERROR = 4  # the API refused a request (its error envelope), or bad arguments/config
EXIT_UNREACHABLE = 5  # the gateway cannot be reached, or the stream was lost for good
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES_HELP = """\
exit codes:
  0    the scan completed (a severity summary is printed); `scan` without --watch: started
  1    the scan failed (its error is printed)
  2    the scan was cancelled
  3    the token expired: get a new one (the CLI cannot refresh it), resume with --last-event-id
  4    the API refused a request (its message is printed) or the arguments/config are invalid
  5    the gateway could not be reached, or the stream stayed lost for --max-attempts attempts
  130  interrupted (Ctrl-C); resume with --last-event-id

environment:
  XPLOYT_URL    gateway URL (default: http://127.0.0.1:<server.port of the config>)
  XPLOYT_TOKEN  bearer token. Without it and without --token, a token for --sub is minted from
                the configured jwt secret (HMAC only): for local use against a gateway that
                shares this machine's config, never a way to log in to a real deployment."""

API = "/api/v1/scans"
DEFAULT_RETRY_MS = 3000  # EventSource's usual default, until the server sends its own
MINTED_TOKEN_MIN_TTL = 3600
MAX_LINE = 16 * 1024 * 1024  # longest SSE line accepted from the gateway (characters)
_MAX_ERROR_EXCERPT = 300
_SEVERITY_STYLES = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
    "unknown": "dim",
}
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
# C0 and C1 controls and DEL: text from scanners must not drive the terminal (rich keeps ESC).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class CliError(Exception):
    """Something that ends the command: ``message`` for the user, ``code`` for the shell."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Options:
    """How to reach the gateway and how to report."""

    url: str
    token: str
    json: bool = False
    max_attempts: int = 10  # consecutive stream attempts that deliver nothing, then give up
    retry_ms: int = DEFAULT_RETRY_MS  # reconnection delay until the server sends ``retry:``
    read_timeout: float = 60  # silence (heartbeats included) after which a stream is dead
    request_timeout: float = 30
    token_minted: bool = False  # the token was minted locally (for the hint on a 401)

    def endpoint(self, path: str = "") -> str:
        return f"{self.url.rstrip('/')}{API}{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class ScanRequest:
    scanner: str
    repository: str
    use_sse: bool = False
    configurations: Mapping[str, Any] = field(default_factory=dict)
    watch: bool = False


# --- settings ---------------------------------------------------------------------------------


def resolve_url(
    explicit: str | None, environ: Mapping[str, str], config: Callable[[], Config]
) -> str:
    """``--url``, else ``XPLOYT_URL``, else the configured port on 127.0.0.1."""
    if explicit:
        return explicit
    if environ.get("XPLOYT_URL"):
        return environ["XPLOYT_URL"]
    return f"http://127.0.0.1:{config().server.port}"


def resolve_token(
    explicit: str | None, environ: Mapping[str, str], config: Callable[[], Config], subject: str
) -> tuple[str, bool]:
    """``--token``, else ``XPLOYT_TOKEN``, else one minted for ``subject`` from the configured
    HMAC secret (local use). Returns the token and whether it was minted."""
    if explicit:
        return explicit, False
    if environ.get("XPLOYT_TOKEN"):
        return environ["XPLOYT_TOKEN"], False
    loaded = config()
    # Long enough to watch the longest scan the gateway allows.
    ttl = max(MINTED_TOKEN_MIN_TTL, int(loaded.upstream.scan_timeout_seconds) + 300)
    try:
        return TokenVerifier(loaded.jwt).issue(subject, ttl), True
    except ValueError as exc:
        raise CliError(
            f"no token: pass --token or set XPLOYT_TOKEN (cannot mint one locally: {exc})"
        ) from None


def parse_configurations(raw: str | None) -> dict[str, Any]:
    """The ``--config-json`` value: a JSON object sent to the scanner as given."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise CliError(f"--config-json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError("--config-json must be a JSON object, e.g. '{\"fail_at\": 50}'")
    return value


# --- HTTP -------------------------------------------------------------------------------------


def open_session() -> aiohttp.ClientSession:
    """The session every command uses (per-request timeouts are set where they are made)."""
    return aiohttp.ClientSession(headers={"User-Agent": "xployt-gateway-cli"})


async def _api_error(
    response: aiohttp.ClientResponse, options: Options, resume: str | None = None
) -> CliError:
    """The error envelope's message (or an excerpt of a body that is not one); ``resume`` is
    the command that picks a watch up again, for an expired token."""
    raw = await response.read()
    message = None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    if not message:
        excerpt = raw.decode("utf-8", "replace").strip()[:_MAX_ERROR_EXCERPT]
        message = excerpt or (response.reason or "no message")
    message = f"{message} (HTTP {response.status})"
    if response.status == 401:
        if "expired" in message:
            return _token_expired(message, options, resume)
        if options.token_minted:
            message += (
                "; the token was minted from this machine's jwt secret, which this gateway does"
                " not accept: pass --token or set XPLOYT_TOKEN"
            )
    return CliError(message, EXIT_ERROR)


def _token_expired(reason: str, options: Options, resume: str | None = None) -> CliError:
    how = "python -m gateway token --sub NAME" if options.token_minted else "your identity provider"
    message = (
        f"the token expired ({reason}). The CLI cannot refresh a bearer token: get a new one"
        f" (e.g. from {how}) and pass it with --token or XPLOYT_TOKEN"
    )
    if resume is not None:
        message += f"; resume with: {resume} --token NEW_TOKEN"
    return CliError(message, EXIT_AUTH_EXPIRED)


def _unreachable(url: str, exc: BaseException) -> CliError:
    detail = str(exc) or type(exc).__name__
    return CliError(f"cannot reach the gateway at {url}: {detail}", EXIT_UNREACHABLE)


async def _request(
    session: aiohttp.ClientSession,
    options: Options,
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
) -> Any:
    """One API call: its ``data`` on success, :class:`CliError` otherwise."""
    url = options.endpoint(path)
    timeout = aiohttp.ClientTimeout(total=options.request_timeout)
    try:
        async with session.request(
            method, url, json=body, params=params, headers=options.headers, timeout=timeout
        ) as response:
            if response.status >= 400:
                raise await _api_error(response, options)
            envelope = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _unreachable(options.url, exc) from None
    except ValueError as exc:  # a 2xx that is not JSON: not a gateway
        raise CliError(f"unexpected answer from {url}: {exc}") from None
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise CliError(f"unexpected answer from {url}: no data envelope")
    return envelope["data"]


async def start_scan(
    session: aiohttp.ClientSession, options: Options, request: ScanRequest
) -> dict[str, Any]:
    """``POST /api/v1/scans/``: the 201's data (``scan_id``, ``status``, links)."""
    body = {
        "repository_name": request.repository,
        "scanner_name": request.scanner,
        "configurations": dict(request.configurations),
    }
    params = {"use_sse": "true" if request.use_sse else "false"}
    data = await _request(session, options, "POST", "/", body=body, params=params)
    if not isinstance(data, dict) or not isinstance(data.get("scan_id"), str):
        raise CliError("unexpected answer to POST /api/v1/scans/: no scan_id")
    return data


async def _scan_data(
    session: aiohttp.ClientSession, options: Options, scan_id: str, tail: str = ""
) -> dict[str, Any]:
    data = await _request(session, options, "GET", f"/{quote(scan_id, safe='')}{tail}")
    if not isinstance(data, dict):
        raise CliError(f"unexpected answer for scan {scan_id}: data is not an object")
    return data


# --- output -----------------------------------------------------------------------------------


def _clean(value: object) -> str:
    """Text from the gateway (and so from scanners) made safe for a terminal, on one line."""
    return _CONTROLS.sub(lambda m: " " if m.group() in "\t\n\r" else "\ufffd", str(value))


def _say(console: Console, message: str | Text, style: str = "") -> None:
    """A message printed as is: no markup, no highlighting, no control characters, and no hard
    line breaks (the terminal wraps it), so commands in it can be copied."""
    if isinstance(message, str):
        message = _clean(message)
    console.print(message, style=style, highlight=False, markup=False, soft_wrap=True)


def _json_line(console: Console, event_id: int | str | None, event: str, data: Any) -> None:
    # ASCII only: \\u escapes keep C1 controls (and any locale's encoding) out of the terminal.
    line = json.dumps({"id": event_id, "event": event, "data": data})
    console.out(line, highlight=False)


def _event_id(raw: str) -> int | str:
    return int(raw) if raw.isascii() and raw.isdigit() else raw


class _Display:
    """What ``watch`` shows; one implementation per output mode."""

    def begin(self, scan: Mapping[str, Any]) -> None: ...

    def event(self, event_id: int | str | None, name: str, data: Any) -> None: ...

    def notice(self, message: str) -> None: ...

    def stop(self) -> None: ...

    def finish(
        self, final: Mapping[str, Any], results: Mapping[str, Any] | None, code: int
    ) -> None: ...


class _JsonLines(_Display):
    """One JSON object per line on stdout; notices go to stderr so stdout stays parseable."""

    def __init__(self, console: Console, errors: Console) -> None:
        self.console = console
        self.errors = errors

    def event(self, event_id: int | str | None, name: str, data: Any) -> None:
        _json_line(self.console, event_id, name, data)

    def notice(self, message: str) -> None:
        _say(self.errors, message, "yellow")

    def finish(
        self, final: Mapping[str, Any], results: Mapping[str, Any] | None, code: int
    ) -> None:
        summary = results.get("summary") if results else None
        vulnerabilities = results.get("vulnerabilities") if results else None
        data = {
            "scan_id": final.get("scan_id"),
            "status": final.get("status"),
            "exit_code": code,
            "error": final.get("error"),
            "progress_text": final.get("progress_text"),
            "findings": len(vulnerabilities) if isinstance(vulnerabilities, list) else None,
            "summary": summary,
        }
        _json_line(self.console, None, "summary", data)


_MARKS = {"completed": ("✓", "green"), "failed": ("✗", "red"), "cancelled": ("■", "yellow")}


class _StateColumn(SpinnerColumn):
    """A spinner while the scan runs; a mark once it has ended."""

    def render(self, task: Task) -> RenderableType:
        mark = _MARKS.get(task.fields.get("status", ""))
        if mark is not None:
            return Text(mark[0], style=mark[1])
        return super().render(task)


class _Bar(_Display):
    """A live progress bar (status, percent, text) with one log line per event above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            _StateColumn(),
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
            (_clean(scan.get("scan_id", "")), "bold"),
            _clean(f"  {scan.get('scanner_name', '?')} on {scan.get('repository_name', '?')}"),
        )
        self.console.print(head, highlight=False)
        self.progress.start()
        self.task = self.progress.add_task("scan", total=100, status="waiting", text="")

    def event(self, event_id: int | str | None, name: str, data: Any) -> None:
        if not isinstance(data, dict) or self.task is None:
            return
        status = _clean(data.get("status", "?"))
        percent = data.get("progress_percent")
        text = _clean(data.get("progress_text") or "")
        fields: dict[str, Any] = {"status": status, "text": text}
        if isinstance(percent, int):
            fields["completed"] = percent
        if status == Status.COMPLETED:
            fields["completed"] = 100
        self.progress.update(self.task, **fields)
        if status in _TERMINAL:
            self.progress.stop_task(self.task)
        self.progress.refresh()  # the bar moves with the line below, not up to 0.1 s later
        if name == "reset":
            text = f"{text} ({_clean(data.get('reason', 'reset'))})"
        shown = f"{percent:>3}%" if isinstance(percent, int) else "   ?"
        label = f"{event_id!s:>4}" if event_id is not None else "   -"
        line = Text.assemble(
            (label, "dim"), "  ", (f"{status:<12}", _status_style(status)), f" {shown}  ", text
        )
        if name != "message":
            line = Text.assemble((f"[{name}] ", "magenta"), line)
        self.progress.console.print(line, highlight=False)

    def notice(self, message: str) -> None:
        _say(self.progress.console, message, "yellow")

    def stop(self) -> None:
        self.progress.stop()

    def finish(
        self, final: Mapping[str, Any], results: Mapping[str, Any] | None, code: int
    ) -> None:
        status = str(final.get("status"))
        scan_id = _clean(final.get("scan_id", ""))
        if status == Status.FAILED:
            error = final.get("error") or final.get("progress_text") or "no reason given"
            _say(
                self.console, Text.assemble((f"Scan {scan_id} failed: ", "bold red"), _clean(error))
            )
            return
        if status == Status.CANCELLED:
            _say(self.console, f"Scan {scan_id} was cancelled.", "bold yellow")
            return
        summary = results.get("summary") if results else None
        vulnerabilities = results.get("vulnerabilities") if results else None
        count = len(vulnerabilities) if isinstance(vulnerabilities, list) else 0
        noun = "finding" if count == 1 else "findings"
        _say(self.console, f"Scan {scan_id} completed: {count} {noun}.", "bold green")
        if isinstance(summary, dict):
            self.console.print(_summary_table(summary, count))


_STATUS_STYLES = {"completed": "green", "failed": "red", "cancelled": "yellow"}


def _status_style(status: str) -> str:
    return _STATUS_STYLES.get(status, "cyan")


def _summary_table(summary: Mapping[str, Any], count: int) -> Table:
    table = Table(title="Findings by severity", show_footer=True, title_justify="left")
    table.add_column("severity", footer="total")
    table.add_column("count", justify="right", footer=str(count))
    names = [*SEVERITIES, *(name for name in summary if name not in SEVERITIES)]
    for name in names:
        value = summary.get(name, 0)
        style = _SEVERITY_STYLES.get(name, "") if value else "dim"
        table.add_row(Text(_clean(name), style=style), Text(_clean(value), style=style))
    return table


# --- watching ---------------------------------------------------------------------------------


def _resume_command(scan_id: str, last: str | None) -> str:
    tail = f" --last-event-id {last}" if last else ""
    return f"python -m gateway watch {scan_id}{tail}"


class _Watcher:
    """The reconnecting stream reader of one scan."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        options: Options,
        scan_id: str,
        display: _Display,
        last_event_id: str | None,
    ) -> None:
        self.session = session
        self.options = options
        self.scan_id = scan_id
        self.display = display
        self.last = last_event_id  # what the next connection sends as Last-Event-ID
        self.delay = options.retry_ms / 1000
        self.progressed = False  # the current connection delivered an event

    @property
    def resume(self) -> str:
        return _resume_command(self.scan_id, self.last)

    async def follow(self) -> dict[str, Any]:
        """Read until the terminal event; return the scan's final state."""
        url = self.options.endpoint(f"/{quote(self.scan_id, safe='')}/stream")
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.options.request_timeout,
            sock_read=self.options.read_timeout,
        )
        failures = 0
        while True:
            headers = {**self.options.headers, "Accept": "text/event-stream"}
            if self.last:
                headers["Last-Event-ID"] = self.last
            self.progressed = False
            delay: float | None = None  # None: the server's retry hint (or the default)
            try:
                async with self.session.get(url, headers=headers, timeout=timeout) as response:
                    if response.status == 204:
                        self.display.notice("The stream has already ended; reading the scan.")
                        state = await _scan_data(self.session, self.options, self.scan_id)
                        if state.get("status") in _TERMINAL:
                            return state
                        problem = f"204 No Content but the scan is {state.get('status')}"
                    elif response.status == 429 or response.status >= 500:
                        problem = (await _api_error(response, self.options)).message
                        delay = _retry_after(response)
                    elif response.status != 200:
                        raise await _api_error(response, self.options, self.resume)
                    elif response.content_type != "text/event-stream":
                        raise CliError(
                            f"{url} answered {response.content_type or 'no content type'},"
                            " not an event stream: is --url the gateway?"
                        )
                    else:
                        final = await self._read(response)
                        if final is not None:
                            return final
                        problem = "the stream ended before the scan did"
            except (aiohttp.ClientError, TimeoutError, SSELineTooLong) as exc:
                problem = _broken(exc)
            failures = 0 if self.progressed else failures + 1
            if failures >= self.options.max_attempts:
                raise CliError(
                    f"gave up watching scan {self.scan_id} after {failures} consecutive failed"
                    f" attempts ({problem}); resume later with: " + self.resume,
                    EXIT_UNREACHABLE,
                )
            delay = self.delay if delay is None else delay
            where = f"after event {self.last}" if self.last else "from the start"
            self.display.notice(
                f"{problem}; reconnecting in {delay:g}s {where}"
                f" (attempt {failures + 1}/{self.options.max_attempts})"
            )
            await asyncio.sleep(delay)

    async def _read(self, response: aiohttp.ClientResponse) -> dict[str, Any] | None:
        """One connection: the final state if the terminal event came."""
        parser = SSEParser(max_line_length=MAX_LINE)
        previous_id = ""
        async for chunk in response.content.iter_any():
            events = parser.feed(chunk)
            if parser.retry is not None:
                self.delay = parser.retry / 1000
            for event in events:
                event_id = _event_id(event.id) if event.id != previous_id else None
                previous_id = event.id
                final = self._handle(event, event_id)
                if final is not None:
                    return final
        return None

    def _handle(self, event: SSEEvent, event_id: int | str | None) -> dict[str, Any] | None:
        try:
            data: Any = json.loads(event.data)
        except ValueError:
            data = event.data
        if event.type == "auth_expired":
            self.display.event(event_id, event.type, data)
            reason = data.get("reason") if isinstance(data, dict) else None
            resume = data.get("last_event_id") if isinstance(data, dict) else None
            resume_id = str(resume) if isinstance(resume, int) and resume > 0 else self.last
            raise _token_expired(
                str(reason or "the gateway closed the stream"),
                self.options,
                _resume_command(self.scan_id, resume_id),
            )
        if event.type not in ("message", "reset"):
            self.display.event(event_id, event.type, data)  # unknown: shown, not interpreted
            return None
        if event.id:
            self.last = event.id
        self.progressed = True
        self.display.event(event_id, event.type, data)
        if isinstance(data, dict) and data.get("status") in _TERMINAL:
            return data
        return None


def _broken(exc: BaseException) -> str:
    """Why a connection ended, in a few words."""
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return "the connection dropped mid-stream"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return "the stream went silent (no event or heartbeat in time)"
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return f"cannot connect ({str(exc) or type(exc).__name__})"
    return f"the stream broke ({str(exc) or type(exc).__name__})"


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    raw = response.headers.get("Retry-After", "")
    return float(raw) if raw.isascii() and raw.isdigit() else None


async def watch(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    scan_id: str,
    *,
    last_event_id: str | None = None,
    errors: Console | None = None,
) -> int:
    """Follow a scan to its end; print the summary; return the exit code."""
    errors = errors or console
    display: _Display = _JsonLines(console, errors) if options.json else _Bar(console)
    watcher = _Watcher(session, options, scan_id, display, last_event_id)
    try:
        scan_info = await _scan_data(session, options, scan_id)
        display.begin(scan_info)
        try:
            final = await watcher.follow()
        finally:
            display.stop()
        status = final.get("status")
        if status == Status.COMPLETED:
            results = await _scan_data(session, options, scan_id, "/results")
            display.finish(final, results, EXIT_COMPLETED)
            return EXIT_COMPLETED
        code = EXIT_FAILED if status == Status.FAILED else EXIT_CANCELLED
        display.finish(final, None, code)
        return code
    except CliError as exc:
        _say(errors, f"error: {exc.message}")
        return exc.code
    except asyncio.CancelledError:  # Ctrl-C: say how to pick up where this left off
        _say(errors, f"interrupted; resume with: {watcher.resume}")
        raise


async def scan(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    request: ScanRequest,
    *,
    errors: Console | None = None,
) -> int:
    """Start a scan, print its id (or, with ``--json``, the created line), maybe watch it."""
    errors = errors or console
    try:
        created = await start_scan(session, options, request)
    except CliError as exc:
        _say(errors, f"error: {exc.message}")
        return exc.code
    if options.json:
        _json_line(console, None, "created", created)
    else:
        console.out(_clean(created["scan_id"]), highlight=False)
    if not request.watch:
        return EXIT_COMPLETED
    return await watch(session, console, options, created["scan_id"], errors=errors)


# --- entry points for __main__ ----------------------------------------------------------------


async def run_scan(options: Options, request: ScanRequest) -> int:
    async with open_session() as session:
        return await scan(session, Console(), options, request, errors=Console(stderr=True))


async def run_watch(options: Options, scan_id: str, last_event_id: str | None = None) -> int:
    async with open_session() as session:
        return await watch(
            session,
            Console(),
            options,
            scan_id,
            last_event_id=last_event_id,
            errors=Console(stderr=True),
        )
