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
collection must end ``completed``: the row says how many did. A delivery the loadgens missed
is either lost in the middle (``missing_in_middle``) or late: not there yet when they stopped.
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
from ..stack import Stack, scanning
from ..stats import raw_holes
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


def collections(
    harness: Harness, logdir: Path, count: int, scanners: int, rate: float, seconds: float
) -> dict[str, Any]:
    """C collections × S scanners, R ev/s per collection for ``seconds`` (see the module)."""
    if not 1 <= scanners <= len(SCANNERS):
        raise ValueError(f"scanners must be 1-{len(SCANNERS)}, got {scanners}")
    rawdir = logdir / f"collections-{count}x{scanners}"
    shutil.rmtree(rawdir, ignore_errors=True)
    rawdir.mkdir(parents=True)
    load = Load(count, rate, seconds, rawdir)
    with _gateway(logdir, load, scanners) as (target, stack, collection_ids):
        with Meters(harness, target.pids) as meters:
            run = run_loadgens(harness.loadgen, target.specs, on_ready=meters.at_ready)
        target.finish()
        ended = Counter(stack.collection(cid)["status"] for cid in collection_ids)
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
        # Of the deliveries the loadgens missed, those before a later complete event (lost in
        # the middle); the rest had not arrived when they stopped (``drain`` after the end).
        missing_in_middle=sum(raw_holes(load.raw(i)) for i in range(count)),
    )
    return row
