"""A real ``redis-server`` on 127.0.0.1, for the Redis store's tests.

It keeps its data in an append-only file (fsync on every write, no RDB snapshots), so
``stop()`` then ``start()`` on the same port and directory is a restart with the data intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.processes import free_port

STARTUP_SECONDS = 10.0
POLL_SECONDS = 0.01  # between attempts to reach a server that is still starting


class RedisServer:
    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server (again, on the same port and data) and wait until it answers."""
        assert self._process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            self.executable,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
            *("--daemonize", "no", "--logfile", "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self._answering()

    async def stop(self) -> None:
        """SIGTERM: Redis finishes its append-only file and exits."""
        await self._end(signal.SIGTERM)

    async def kill(self) -> None:
        await self._end(signal.SIGKILL)

    async def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), STARTUP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _answering(self) -> None:
        """Until PING gets +PONG (not -LOADING while the data is read back), or fail."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while not await self._pong():
            assert self._process is not None
            if self._process.returncode is not None:
                raise RuntimeError(f"redis-server exited {self._process.returncode}: {self._log()}")
            if time.monotonic() > deadline:
                await self.kill()
                raise TimeoutError(f"redis-server did not answer in {STARTUP_SECONDS}s")
            await asyncio.sleep(POLL_SECONDS)

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            return await reader.readline() == b"+PONG\r\n"
        except OSError:
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"


@asynccontextmanager
async def running_redis(directory: Path) -> AsyncIterator[RedisServer]:
    """A started server in ``directory``, stopped on the way out; skips the test when
    ``redis-server`` is not installed."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    server = RedisServer(executable, directory)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
