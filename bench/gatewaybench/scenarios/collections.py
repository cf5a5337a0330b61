"""Collections: C scan collections of S scanners each (bench scans), fed at R ev/s per collection
and read on the collections' streams; one loadgen process per collection.

Each collection's publisher POSTs its events to the mock's spread route
(``/bench/{scan1},{scan2},.../publish``): event ``seq`` goes to scan ``seq % S``, so every
scanner gets R/S ev/s and the collection's stream, which has one event per event of its scans,
carries all R. The mock stamps ``t`` as it writes each event upstream (``stamp_emit``); the
collection event carries it in ``scan.extra``. Latency is then the collection's whole path:
scanner emit -> the scan's reader, normaliser, SQLite log and hub -> the collection's
aggregator -> the collection's log and hub -> subscriber. Subscribers alternate 2, 1, 2, ...
per collection, as the pipeline's. Once the loadgens are done every scan is finished and each
collection must end ``completed``: the row says how many did, and how many events the
collections' logs and their scans' logs hold (as many, or the collections lost some).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..common import SCANNERS
from ..harness import Harness
from ..loadgen import LoadSpec, run_loadgens
from ..meters import Meters
from ..profiles.pyspy import finish_pyspy, start_pyspy
from ..stack import Stack, scanning
from .pipeline import Load, Target, pipeline_row

SERVER = "xployt-gateway (collections)"
END_TIMEOUT = 120.0  # seconds for every collection to end once its scans are finished


@contextlib.contextmanager
def _gateway(logdir: Path, load: Load, scanners: int) -> Iterator[tuple[Target, Stack, list[str]]]:
    """A fresh gateway with C collections of bench scans that stamp their events as the mock
    writes them: the loadgens' target, the stack, and the collections' ids. The target's
    ``finish`` finishes every scan and waits for the collections to end."""
    stack = Stack(f"collections-{load.scans}x{scanners}", logdir)
    try:
        stack.start()
        names = SCANNERS[:scanners]
        created = [stack.create_collection(names, stamp_emit=True) for _ in range(load.scans)]
        stack.wait_scans([sid for _, ids in created for sid in ids], scanning, 120)
        specs = [
            LoadSpec(
                f"collection/{i}",
                stack.collection_stream_url(cid),
                load.subs[i],
                load.events,
                load.rate,
                headers=[stack.auth_header],
                pub_url=stack.spread_url(ids),
                raw_out=load.raw(i),
            )
            for i, (cid, ids) in enumerate(created)
        ]
        collection_ids = [cid for cid, _ in created]

        def finish() -> None:
            for _, ids in created:
                for sid in ids:
                    stack.finish(sid)
            deadline = time.monotonic() + END_TIMEOUT
            waiting = list(collection_ids)
            while waiting and time.monotonic() < deadline:
                waiting = [cid for cid in waiting if stack.collection(cid)["finished_at"] is None]
                if waiting:
                    time.sleep(0.2)

        target = Target({"server": stack.gw_pid, "mock": stack.mock_pid}, specs, finish)
        yield target, stack, collection_ids
    finally:
        stack.stop()


def _logged(stack: Stack, collection_ids: list[str]) -> dict[str, int]:
    """Events in the collections' logs and in their scans' logs, which must be as many: one
    collection event per scan event (a delivery the loadgens missed was then late, not lost:
    the scans' events reach a collection's stream in the order its scans sent them, not in
    ``seq`` order, so which ``seq`` is late says nothing)."""
    collection_events = scan_events = 0
    for cid in collection_ids:
        collection = stack.collection(cid)
        collection_events += collection["last_event_id"]
        scan_events += sum(stack.scan(sid)["last_event_id"] for sid in collection["scan_ids"])
    return {"collection_events": collection_events, "scan_events": scan_events}


def collections(
    harness: Harness,
    logdir: Path,
    count: int,
    scanners: int,
    rate: float,
    seconds: float,
    *,
    profile: Path | None = None,
) -> dict[str, Any]:
    """C collections × S scanners, R ev/s per collection for ``seconds`` (see the module);
    with ``profile``, py-spy records the gateway for the first 10 s after GO."""
    if not 1 <= scanners <= len(SCANNERS):
        raise ValueError(f"scanners must be 1-{len(SCANNERS)}, got {scanners}")
    rawdir = logdir / f"collections-{count}x{scanners}"
    shutil.rmtree(rawdir, ignore_errors=True)
    rawdir.mkdir(parents=True)
    load = Load(count, rate, seconds, rawdir)
    with _gateway(logdir, load, scanners) as (target, stack, collection_ids):
        spy: list[Any] = []

        def at_go() -> None:
            if profile:
                spy.append(start_pyspy(target.pids["server"], min(seconds, 10), profile))

        with Meters(harness, target.pids) as meters:
            run = run_loadgens(harness.loadgen, target.specs, on_ready=meters.at_ready, on_go=at_go)
        target.finish()
        ended = Counter(stack.collection(cid)["status"] for cid in collection_ids)
        logged = _logged(stack, collection_ids)
        row = pipeline_row(load, run, meters, baseline=False)
    for key in ("scans", "rate_per_scan"):  # the pipeline's words for them, said below
        del row[key]
    row.update(
        server=SERVER,
        collections=count,
        scanners=scanners,
        rate_per_collection=rate,
        rate_per_scanner=rate / scanners,
        ended=dict(ended),
        **logged,
    )
    if spy and profile:
        row["profile"] = finish_pyspy(spy[0], profile)
    return row
