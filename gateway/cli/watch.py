"""Following a scan's stream the way an EventSource would, and the two commands."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp
from rich.console import Console

from gateway.cli.client import (
    EXIT_CANCELLED,
    EXIT_COMPLETED,
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    MAX_LINE,
    TERMINAL_STATUS_VALUES,
    CliError,
    Options,
    ScanCommand,
    api_error,
    loads_strict,
    open_session,
    post_scan,
    scan_data,
    token_expired,
)
from gateway.cli.display import Bar, Display, JsonLines, clean, json_line, parse_event_id, say
from gateway.domain.models import Status
from gateway.scanners.sse_parser import SSEEvent, SSELineTooLong, SSEParser


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
        display: Display,
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
                        state = await scan_data(self.session, self.options, self.scan_id)
                        if state.get("status") in TERMINAL_STATUS_VALUES:
                            return state
                        problem = f"204 No Content but the scan is {state.get('status')}"
                    elif response.status == 429 or response.status >= 500:
                        problem = (await api_error(response, self.options)).message
                        delay = _retry_after(response)
                    elif response.status != 200:
                        raise await api_error(response, self.options, self.resume)
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
                event_id = parse_event_id(event.id) if event.id != previous_id else None
                previous_id = event.id
                final = self._handle(event, event_id)
                if final is not None:
                    return final
        return None

    def _handle(self, event: SSEEvent, event_id: int | str | None) -> dict[str, Any] | None:
        try:
            data: Any = loads_strict(event.data)
        except ValueError:
            data = event.data
        if event.type == "auth_expired":
            self.display.event(event_id, event.type, data)
            reason = data.get("reason") if isinstance(data, dict) else None
            resume = data.get("last_event_id") if isinstance(data, dict) else None
            resume_id = str(resume) if isinstance(resume, int) and resume > 0 else self.last
            raise token_expired(
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
        if isinstance(data, dict) and data.get("status") in TERMINAL_STATUS_VALUES:
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
    display: Display = JsonLines(console, errors) if options.json else Bar(console)
    watcher = _Watcher(session, options, scan_id, display, last_event_id)
    try:
        scan_info = await scan_data(session, options, scan_id)
        display.begin(scan_info)
        try:
            final = await watcher.follow()
        finally:
            display.stop()
        status = final.get("status")
        if status == Status.COMPLETED:
            results = await scan_data(session, options, scan_id, "/results")
            display.finish(final, results, EXIT_COMPLETED)
            return EXIT_COMPLETED
        code = EXIT_FAILED if status == Status.FAILED else EXIT_CANCELLED
        display.finish(final, None, code)
        return code
    except CliError as exc:
        say(errors, f"error: {exc.message}")
        return exc.code
    except asyncio.CancelledError:  # Ctrl-C: say how to pick up where this left off
        say(errors, f"interrupted; resume with: {watcher.resume}")
        raise


async def scan(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    command: ScanCommand,
    *,
    errors: Console | None = None,
) -> int:
    """Start a scan, print its id (or, with ``--json``, the created line), maybe watch it."""
    errors = errors or console
    try:
        created = await post_scan(session, options, command)
    except CliError as exc:
        say(errors, f"error: {exc.message}")
        return exc.code
    if options.json:
        json_line(console, None, "created", created)
    else:
        console.out(clean(created["scan_id"]), highlight=False)
    if not command.watch:
        return EXIT_COMPLETED
    return await watch(session, console, options, created["scan_id"], errors=errors)


# --- entry points for __main__ ----------------------------------------------------------------


async def run_scan(options: Options, command: ScanCommand) -> int:
    async with open_session() as session:
        return await scan(session, Console(), options, command, errors=Console(stderr=True))


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
