"""How one scan's events go out: the chosen format (SSE, NDJSON or one JSON body), its framing
and heartbeats, and noticing a client that left or a server that is stopping."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from aiohttp import ClientConnectionResetError, hdrs, web

from mock_scanner.knobs import Scan

_CONTENT_TYPES: Final = {
    "sse": "text/event-stream",
    "ndjson": "application/x-ndjson",
    "json": "application/json",
}
_BOM: Final = b"\xef\xbb\xbf"
_POLL_SECONDS: Final = 0.1
"""How often a waiting handler checks whether its client left or the server is stopping."""


class ScanStream:
    """Writes one scan's events in the requested format and notices a departed client."""

    def __init__(self, request: web.Request, scan: Scan, stopping: asyncio.Event) -> None:
        self.request = request
        self.scan = scan
        self.knobs = scan.knobs
        self.stopping = stopping
        self.response: web.StreamResponse | None = None

    @property
    def content_type(self) -> str:
        return self.knobs.content_type or _CONTENT_TYPES[self.knobs.format]

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing() or self.stopping.is_set()

    async def start(self) -> bool:
        """Send the headers (and BOM) of a streamed answer; a JSON answer waits for its end."""
        if self.knobs.format == "json":
            return True
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: self.content_type,
                hdrs.CACHE_CONTROL: "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        self.response = response
        try:
            await response.prepare(self.request)
        except (ConnectionResetError, ClientConnectionResetError):
            return False
        return not self.knobs.bom or await self.write(_BOM)

    async def write(self, data: bytes) -> bool:
        assert self.response is not None
        try:
            await self.response.write(data)
        except (ConnectionResetError, ClientConnectionResetError):
            return False
        return True

    async def keep_alive(self) -> bool:
        """An SSE comment that keeps proxies and clients from timing the stream out."""
        eol = self.knobs.line_ending
        return await self.write(f": keep-alive{eol}{eol}".encode())

    def _frame(self, data: str) -> bytes:
        if self.knobs.format == "ndjson":
            return f"{data}\n".encode()
        eol = self.knobs.line_ending
        return f"data: {data}{eol}{eol}".encode()

    async def event(self, payload: dict[str, Any]) -> bool:
        """Send one event; the terminal event of a JSON answer becomes the whole body."""
        if self.knobs.format == "json":
            if payload["status"] in ("completed", "failed"):
                data = json.dumps(payload)
                if self.knobs.malformed:
                    data = data[: len(data) // 2] + " oops"
                body = (_BOM if self.knobs.bom else b"") + data.encode()
                self.response = web.Response(
                    body=body, headers={hdrs.CONTENT_TYPE: self.content_type}
                )
            return True
        return await self.write(self._frame(json.dumps(payload)))

    async def malformed(self, status: str, percent: int) -> bool:
        if self.knobs.format == "json":
            return True
        data = f'{{"status": "{status}", "{self.knobs.progress_field}": {percent}, oops'
        return await self.write(self._frame(data))

    async def wait(self, seconds: float | None) -> bool:
        """Wait ``seconds`` (``None``: until the client leaves), sending heartbeats if asked.

        Returns False as soon as the client is gone or the server is stopping.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = None if seconds is None else now + seconds
        beat = self.knobs.heartbeat if self.knobs.format == "sse" else None
        next_beat = None if beat is None else now + beat
        while True:
            if self.gone():
                return False
            now = loop.time()
            if deadline is not None and now >= deadline:
                await asyncio.sleep(0)  # stay fair to other connections even with no delay
                return not self.gone()
            if next_beat is not None and beat is not None and now >= next_beat:
                if not await self.keep_alive():
                    return False
                next_beat = max(next_beat + beat, now)
            wake = now + _POLL_SECONDS
            if deadline is not None:
                wake = min(wake, deadline)
            if next_beat is not None:
                wake = min(wake, next_beat)
            await asyncio.sleep(max(0.0, wake - now))

    def drop(self) -> None:
        """End the connection without finishing the body (or without any answer at all)."""
        transport = self.request.transport
        if transport is not None:
            # close() flushes what was written, then closes: the chunked body never gets its
            # terminating chunk, so the client sees the payload end early.
            transport.close()
