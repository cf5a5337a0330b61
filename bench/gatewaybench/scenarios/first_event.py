"""First event: POST a scan, open its stream as soon as the POST returns, time until the first
event whose status is neither pending nor connecting (sequential scans)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from ..common import API, SCANNER
from ..harness import Harness
from ..profiles.pyspy import finish_pyspy, start_pyspy
from ..stack import Stack
from ..stats import rnd, summary_ms

NOT_STARTED: Final = frozenset({"pending", "connecting"})
BODY: Final = {
    "repository_name": "bench/repo",
    "scanner_name": SCANNER,
    "configurations": {"bench": True},
}


@dataclass
class _Timings:
    post_ms: list[float] = field(default_factory=list)
    headers_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


async def _first_event(
    session: aiohttp.ClientSession, stack: Stack, scan_id: str, t_back: float, into: _Timings
) -> None:
    """Open the scan's stream; time its headers and its first started event."""
    async with session.get(stack.stream_url(scan_id), headers=stack.auth) as stream:
        into.headers_ms.append((time.perf_counter() - t_back) * 1000)
        async for line in stream.content:
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                if event["status"] not in NOT_STARTED:
                    into.first_ms.append((time.perf_counter() - t_back) * 1000)
                    if event["status"] != "scanning":
                        into.errors[f"first status {event['status']}"] += 1
                    break


async def _one_scan(
    session: aiohttp.ClientSession, stack: Stack, limit: float, into: _Timings
) -> None:
    t_send = time.perf_counter()
    async with session.post(f"{stack.gw}{API}/?use_sse=true", json=BODY, headers=stack.auth) as r:
        answer = await r.json()
    t_back = time.perf_counter()
    if r.status != 201:
        into.errors[f"POST {r.status}"] += 1
        return
    scan_id = answer["data"]["scan_id"]
    into.post_ms.append((t_back - t_send) * 1000)
    try:
        async with asyncio.timeout(limit):
            await _first_event(session, stack, scan_id, t_back, into)
    except TimeoutError:
        into.errors["timeout"] += 1
    async with session.post(stack.finish_url(scan_id)) as done:
        await done.read()


async def _first_events(stack: Stack, count: int, limit: float) -> dict[str, Any]:
    timings = _Timings()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    client_timeout = aiohttp.ClientTimeout(total=limit)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        for _ in range(count):
            await _one_scan(session, stack, limit, timings)
    wall = time.perf_counter() - wall0
    return {
        "scans": count,
        "measured": len(timings.first_ms),
        "errors": dict(timings.errors),
        "first_event_ms": summary_ms(timings.first_ms),
        "post_rtt_ms": summary_ms(timings.post_ms),
        "stream_headers_ms": summary_ms(timings.headers_ms),
        "client_cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
        "wall_s": round(wall, 2),
    }


def first_event(
    harness: Harness, logdir: Path, count: int, profile: Path | None = None
) -> dict[str, Any]:
    with Stack("first-event", logdir) as stack:
        sampler = harness.sampler([stack.gw_pid])
        sampler.sample()
        sampler.start()
        spy = start_pyspy(stack.gw_pid, 10, profile) if profile else None
        t0 = time.monotonic()
        try:
            result = asyncio.run(_first_events(stack, count, 10.0))
        finally:
            sampler.stop_ev.set()
        t1 = time.monotonic()
        result["srv_cpu_pct"] = rnd(sampler.cpu_pct(t0, t1), 1)
        if spy:
            result["profile"] = finish_pyspy(spy, profile)
        return result
