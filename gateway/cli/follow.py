"""Following an event stream the way an EventSource would: a scan's or a collection's.

A :class:`Follower` reads ``GET …/stream`` and reconnects after a drop with ``Last-Event-ID``
(waiting the server's ``retry:`` hint), adopts ``event: reset`` snapshots, stops for good on
204 No Content (then reads the resource's final state), and gives up after a bounded number of
consecutive attempts that deliver nothing. What it follows (the URL, what a terminal event is,
the command that resumes) is a :class:`Target`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.cli.client import (
    EXIT_UNREACHABLE,
    MAX_LINE,
    TERMINAL_STATUS_VALUES,
    CliError,
    Options,
    api_error,
    loads_strict,
    token_expired,
)
from gateway.cli.display import Display, parse_event_id
from gateway.scanners.sse_parser import SSEEvent, SSELineTooLong, SSEParser

__all__ = ["Follower", "Target", "resume_command"]


def resume_command(ident: str, last: str | None, flag: str = "") -> str:
    """The command that picks a watch up again after ``last``."""
    tail = f" --last-event-id {last}" if last else ""
    return f"python -m gateway watch {flag}{ident}{tail}"


@dataclass(frozen=True, slots=True)
class Target:
    """What a :class:`Follower` follows."""

    noun: str  # "scan", "collection": for messages
    ident: str
    stream_url: str
    final_state: Callable[[], Awaitable[dict[str, Any]]]  # the resource, read after a 204
    terminal: Callable[[dict[str, Any]], bool]  # a message's or reset's data ends the stream
    resume_flag: str = ""  # "--collection ": what `watch` needs before the id


def status_terminal(data: dict[str, Any]) -> bool:
    """A scan's event (or any snapshot) that carries a terminal ``status``."""
    return data.get("status") in TERMINAL_STATUS_VALUES


class Follower:
    """The reconnecting stream reader of one target."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        options: Options,
        target: Target,
        display: Display,
        last_event_id: str | None,
    ) -> None:
        self.session = session
        self.options = options
        self.target = target
        self.display = display
        self.last = last_event_id  # what the next connection sends as Last-Event-ID
        self.delay = options.retry_ms / 1000
        self.progressed = False  # the current connection delivered an event

    @property
    def resume(self) -> str:
        return resume_command(self.target.ident, self.last, self.target.resume_flag)

    async def follow(self) -> dict[str, Any]:
        """Read until the terminal event; return its data (or, after a 204, the resource)."""
        target = self.target
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
                async with self.session.get(
                    target.stream_url, headers=headers, timeout=timeout
                ) as response:
                    if response.status == 204:
                        self.display.notice(
                            f"The stream has already ended; reading the {target.noun}."
                        )
                        state = await target.final_state()
                        if state.get("status") in TERMINAL_STATUS_VALUES:
                            return state
                        problem = f"204 No Content but the {target.noun} is {state.get('status')}"
                    elif response.status == 429 or response.status >= 500:
                        problem = (await api_error(response, self.options)).message
                        delay = _retry_after(response)
                    elif response.status != 200:
                        raise await api_error(response, self.options, self.resume)
                    elif response.content_type != "text/event-stream":
                        raise CliError(
                            f"{target.stream_url} answered"
                            f" {response.content_type or 'no content type'},"
                            " not an event stream: is --url the gateway?"
                        )
                    else:
                        final = await self._read(response)
                        if final is not None:
                            return final
                        problem = f"the stream ended before the {target.noun} did"
            except (aiohttp.ClientError, TimeoutError, SSELineTooLong) as exc:
                problem = _broken(exc)
            failures = 0 if self.progressed else failures + 1
            if failures >= self.options.max_attempts:
                raise CliError(
                    f"gave up watching {target.noun} {target.ident} after {failures} consecutive"
                    f" failed attempts ({problem}); resume later with: " + self.resume,
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
                resume_command(self.target.ident, resume_id, self.target.resume_flag),
            )
        if event.type not in ("message", "reset"):
            self.display.event(event_id, event.type, data)  # unknown: shown, not interpreted
            return None
        if event.id:
            self.last = event.id
        self.progressed = True
        self.display.event(event_id, event.type, data)
        if isinstance(data, dict) and self.target.terminal(data):
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
