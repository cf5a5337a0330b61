"""Replay: events published with nobody watching, the scan finished, then late subscribers
read the whole stream one after another."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import aiohttp

from ..harness import Harness
from ..profiles.pyspy import finish_pyspy, start_pyspy
from ..stack import Stack
from ..stats import pct

# Events the gateway stores before the first published one: pending, connecting, the mock's
# initial "bench" event.
EVENTS_BEFORE_PUBLISH: Final = 3
MAX_READS: Final = 200


async def _publish_many(url: str, count: int, concurrency: int = 16) -> dict[str, Any]:
    next_seq = iter(range(count))
    errors: Counter[int] = Counter()
    pad = "x" * 100

    async def worker(session: aiohttp.ClientSession) -> None:
        for seq in next_seq:
            payload = {"t": time.time_ns(), "seq": seq, "pad": pad}
            async with session.post(url, json=payload) as response:
                await response.read()
                if response.status != 204:
                    errors[response.status] += 1

    start = time.perf_counter()
    async with asyncio.timeout(600), aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"published": count, "errors": dict(errors), "seconds": time.perf_counter() - start}


async def _read_stream(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Read a whole stream (replay to the terminal event); count its events."""
    needle = b"\ndata: "
    events = 0
    size = 0
    tail = b""
    cpu0 = time.process_time()
    start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=300)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as response,
    ):
        t_headers = time.perf_counter()
        async for chunk in response.content.iter_any():
            data = tail + chunk
            events += data.count(needle)
            size += len(chunk)
            tail = data[-(len(needle) - 1) :]
    seconds = time.perf_counter() - start
    return {
        "status": response.status,
        "events": events,
        "bytes": size,
        "seconds": round(seconds, 4),
        "headers_ms": round((t_headers - start) * 1000, 2),
        "events_per_s": round(events / seconds, 0) if seconds else None,
        "client_cpu_s": round(time.process_time() - cpu0, 3),
    }


def _ingest(harness: Harness, stack: Stack, scan_id: str, events: int) -> dict[str, Any]:
    """Publish ``events`` with nobody watching; time until the gateway stored them all."""
    gw0 = harness.ticks(stack.gw_pid)
    t0 = time.monotonic()
    published = asyncio.run(_publish_many(stack.publish_url(scan_id), events))
    total = EVENTS_BEFORE_PUBLISH + events
    stack.wait_scans([scan_id], lambda s: s["last_event_id"] >= total, 300)
    ingest_s = time.monotonic() - t0
    ingest_cpu = (harness.ticks(stack.gw_pid) - gw0) / harness.clk_tck
    return {
        "publish": {**published, "seconds": round(published["seconds"], 2)},
        "ingest_s": round(ingest_s, 2),
        "ingest_events_per_s": round(events / ingest_s, 0),
        "ingest_srv_cpu_pct": round(100 * ingest_cpu / ingest_s, 1),
    }


def _read_once(harness: Harness, stack: Stack, scan_id: str) -> dict[str, Any]:
    """One late subscriber reads the whole stream; with the gateway's CPU meanwhile."""
    ticks0, t_read = harness.ticks(stack.gw_pid), time.monotonic()
    read = asyncio.run(_read_stream(stack.stream_url(scan_id), stack.auth))
    elapsed = time.monotonic() - t_read
    read["srv_cpu_pct"] = round(
        100 * (harness.ticks(stack.gw_pid) - ticks0) / harness.clk_tck / elapsed, 1
    )
    return read


def replay(
    harness: Harness, logdir: Path, events: int, readers: int, profile: Path | None = None
) -> dict[str, Any]:
    with Stack("replay", logdir) as stack:
        scan_id = stack.start_bench_scan()
        ingest = _ingest(harness, stack, scan_id, events)
        stack.finish(scan_id)
        stack.wait_scans([scan_id], lambda s: s["status"] == "completed", 60)
        stored = stack.scan(scan_id)["last_event_id"]
        spy = start_pyspy(stack.gw_pid, 10, profile) if profile else None
        reads: list[dict[str, Any]] = []
        # With a profile: read on until py-spy's 10 s are over.
        deadline = time.monotonic() + (10 if profile else 0)
        while len(reads) < readers or time.monotonic() < deadline:
            reads.append(_read_once(harness, stack, scan_id))
            if len(reads) >= MAX_READS:
                break
        rates = sorted(r["events_per_s"] for r in reads if r["events_per_s"])
        result = {
            "events_published": events,
            "events_stored": stored,
            **ingest,
            "reads": reads[:readers] if not profile else reads,
            "events_per_s_median": pct(rates, 50),
            "events_per_s_best": rates[-1] if rates else None,
            "complete": all(r["events"] == stored for r in reads),
        }
        if spy:
            result["profile"] = finish_pyspy(spy, profile)
        return result
