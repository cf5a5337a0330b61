"""One process of subscribers: it opens them in a ramp, says ``ready`` on stdout once each has
its first event, then ``caught_up K`` whenever more of them are back and caught up after a
reconnect, and at the end writes what they saw to a JSON file."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final

import aiohttp

from .subscriber import Record, Subscriber

RAMP_BATCH: Final = 100  # subscribers opened at a time, so that the setup is no storm itself
RAMP_PAUSE: Final = 0.1
PROGRESS_EVERY: Final = 0.25


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _progress(subs: list[Subscriber], tasks: list[asyncio.Task[Record]]) -> None:
    await asyncio.wait([asyncio.ensure_future(s.first_event.wait()) for s in subs])
    say("ready")
    told = 0
    while True:
        ended = all(t.done() for t in tasks)
        back = sum(s.record.caught_up_at is not None for s in subs)
        if back != told:
            say(f"caught_up {back}")
            told = back
        if ended:
            return
        await asyncio.sleep(PROGRESS_EVERY)


async def run(urls: list[str], n: int, token: str, seconds: float) -> list[Record]:
    deadline = time.time() + seconds
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    subs = [Subscriber(urls, headers, deadline) for _ in range(n)]
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks: list[asyncio.Task[Record]] = []
        for i, sub in enumerate(subs):
            tasks.append(asyncio.create_task(sub.run(session)))
            if i % RAMP_BATCH == RAMP_BATCH - 1:
                await asyncio.sleep(RAMP_PAUSE)
        progress = asyncio.create_task(_progress(subs, tasks))
        # SIGTERM (the scenario gave up waiting): end them, and still say what they saw.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, _cancel, tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait([progress], timeout=PROGRESS_EVERY * 4)  # its last count
        progress.cancel()
        await asyncio.gather(progress, return_exceptions=True)
    return [sub.record for sub in subs]


def _cancel(tasks: list[asyncio.Task[Record]]) -> None:
    for task in tasks:
        task.cancel()


def summary(records: list[Record]) -> dict[str, Any]:
    """The records, in a form the scenario sums over processes."""
    return {
        "n": len(records),
        "last_ids": [r.last_id for r in records],
        "lost": [r.lost for r in records],
        "dups": [r.dups for r in records],
        "done": sum(r.done for r in records),
        "connections": sum(r.connections for r in records),
        "failures": sum(r.failures for r in records),
        "left_at": [r.left_at for r in records],
        "back_at": [r.back_at for r in records],
        "caught_up_at": [r.caught_up_at for r in records],
        "live": [[round(t, 3), round(ms, 1)] for r in records for t, ms in r.live],
    }


def main(urls: list[str], n: int, token: str, seconds: float, out: Path) -> int:
    try:
        import uvloop  # the "fast" extra: the clients should cost as little as they can

        uvloop.install()
    except ImportError:
        pass
    records = asyncio.run(run(urls, n, token, seconds))
    out.write_text(json.dumps(summary(records)))
    return 0
