"""One SSE subscriber as a browser's EventSource behaves: it resumes with ``Last-Event-ID``,
waits the last ``retry:`` it was sent before each reconnect (also after a refused connection),
and goes to the next URL of its list each time (the last one stays): a balancer that has taken
a draining replica out. It stops at the scan's terminal event or at its deadline.

It checks the ids as they come (exactly 1..n: a gap is a loss, an id again a duplicate) and
keeps the latency of each live event: one emitted after the stream that got it was answered
(a replayed event's age says nothing about the storm)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Final

import aiohttp

# The gateway's compact JSON, read without parsing it.
_TERMINAL: Final = re.compile(rb'"status":"(?:completed|failed|cancelled)"')
_STAMP: Final = re.compile(rb'"t":(\d+)')
DEFAULT_RETRY_MS: Final = 3000  # EventSource's own default until a retry: arrives


@dataclass
class Record:
    """What one subscriber saw."""

    last_id: int = 0
    lost: int = 0
    dups: int = 0
    connections: int = 0  # that answered 200
    failures: int = 0  # refused, reset, or not 200
    done: bool = False  # got the terminal event
    left_at: float | None = None  # epoch s: its first stream ended (told to reconnect)
    back_at: float | None = None  # epoch s: a later stream answered 200
    caught_up_at: float | None = None  # ...and then delivered a live (or the terminal) event
    live: list[tuple[float, float]] = field(default_factory=list)  # (received, latency ms)


class Subscriber:
    def __init__(self, urls: list[str], headers: dict[str, str], deadline: float) -> None:
        self.urls = urls
        self.headers = headers
        self.deadline = deadline  # epoch s
        self.retry_ms = DEFAULT_RETRY_MS
        self.record = Record()
        self.first_event = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession) -> Record:
        attempt = 0
        while not self.record.done and time.time() < self.deadline:
            url = self.urls[min(attempt, len(self.urls) - 1)]
            try:
                await self._stream(session, url)
            except (aiohttp.ClientError, OSError, TimeoutError):
                self.record.failures += 1
            if self.record.done:
                break
            if self.record.left_at is None and self.record.connections:
                self.record.left_at = time.time()
            attempt += 1
            await asyncio.sleep(min(self.retry_ms / 1000, max(0.0, self.deadline - time.time())))
        return self.record

    async def _stream(self, session: aiohttp.ClientSession, url: str) -> None:
        headers = dict(self.headers)
        if self.record.last_id:
            headers["Last-Event-ID"] = str(self.record.last_id)
        left = max(0.1, self.deadline - time.time())
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(left)) as r:
            if r.status != 200:
                self.record.failures += 1
                return
            # From its answer on, not its connect: a connection may wait in the accept queue,
            # and what was emitted meanwhile comes as a replay, not live.
            opened = time.time()
            self.record.connections += 1
            later = self.record.connections > 1
            if later and self.record.back_at is None:
                self.record.back_at = opened
            await self._read(r.content, opened, later)

    async def _read(self, content: aiohttp.StreamReader, opened: float, later: bool) -> None:
        # Chunks split by hand, and no JSON parsed: thousands of these share two cores with
        # the gateways they measure, so each event must cost them as little as it can.
        buffer = b""
        async for chunk in content.iter_any():
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                self._frame(frame, opened, later)
                if self.record.done:
                    return

    def _frame(self, frame: bytes, opened: float, later: bool) -> None:
        event_id: int | None = None
        data = b""
        for line in frame.split(b"\n"):
            if line.startswith(b"retry:"):
                self.retry_ms = int(line[6:])
            elif line.startswith(b"id:"):
                event_id = int(line[3:])
            elif line.startswith(b"data:"):
                data = line[5:]
        if event_id is not None:
            self._event(event_id, data, opened, later)

    def _event(self, event_id: int, data: bytes, opened: float, later: bool) -> None:
        record, now = self.record, time.time()
        if event_id <= record.last_id:
            record.dups += 1
            return
        record.lost += event_id - record.last_id - 1
        record.last_id = event_id
        self.first_event.set()
        is_live = False
        stamp = _STAMP.search(data)  # ns, the mock's emit time
        if stamp is not None and int(stamp[1]) / 1e9 >= opened:
            is_live = True
            record.live.append((now, now * 1000 - int(stamp[1]) / 1e6))
        record.done = _TERMINAL.search(data) is not None
        if later and record.caught_up_at is None and (is_live or record.done):
            record.caught_up_at = now
