"""Gateway subprocesses, for tests where a restart, a kill or a signal is the point."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.keys import SECRET

LOG_WAIT_SECONDS = 30


class ProcessLog(list[str]):
    """A process's log lines as they arrive, that a test can wait on (pass it as ``log``)."""

    def __init__(self) -> None:
        super().__init__()
        self._grown = asyncio.Event()

    def append(self, line: str) -> None:
        super().append(line)
        self._grown.set()

    async def line(self, text: str, *, after: int = 0) -> int:
        """Wait (30 s at most) for the first line from index ``after`` on that holds ``text``;
        its index."""
        try:
            async with asyncio.timeout(LOG_WAIT_SECONDS):
                while True:
                    for index in range(after, len(self)):
                        if text in self[index]:
                            return index
                    after = len(self)
                    self._grown.clear()
                    await self._grown.wait()
        except TimeoutError:
            waited = f"no line with {text!r} in {LOG_WAIT_SECONDS} s"
            raise AssertionError(f"{waited}: {''.join(self)}") from None

    def index_of(self, text: str) -> int:
        """The first line holding ``text`` (ValueError if none)."""
        return next(index for index, line in enumerate(self) if text in line)


def write_config(directory: Path, data: dict[str, Any]) -> Path:
    """A config file for a gateway process, with its own database in ``directory``."""
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump({"database": {"path": str(directory / "gateway.db")}, **data}))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def gateway_process(
    config_path: Path, port: int, log: list[str] | None = None, *, listening: bool = True
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``python -m gateway`` and yield once it listens (at once with ``listening=False``);
    kill it on the way out.

    Its log lines are appended to ``log`` when given.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "--config",
        str(config_path),
        "--port",
        str(port),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XPLOYT_JWT_SECRET": SECRET},
    )
    lines = log if log is not None else []
    assert process.stderr is not None
    stderr = process.stderr

    async def read_log() -> None:
        while line := await stderr.readline():
            lines.append(line.decode())

    reader = None
    try:
        while listening:
            line = (await asyncio.wait_for(stderr.readline(), 30)).decode()
            assert line, f"gateway exited before listening: {''.join(lines)}"
            lines.append(line)
            if "Running on" in line:
                break
        reader = asyncio.create_task(read_log())
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        if reader is not None:
            await reader
