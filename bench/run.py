#!/usr/bin/env python3
"""Benchmarks of the Xployt gateway: SSE fan-out, first event, replay, the scan pipeline, scan
collections through it, and two replicas on Redis.

Run from the project root with the project's venv (``make bench`` does, after the anchors):

    .venv/bin/python bench/run.py [--shared ../shared/bench]
        [--parts fanout,first,replay,pipeline,collections,replicas[,storm]]
        [--fanout 100x20x10,1000x20x10,5000x20x10,10000x20x10,1000x500x5] [--replicas 5000x20x10]
        [--collections 100 --collection-scanners 4 --collection-rate 10 --collection-seconds 10]
        [--anchors-prefix anchors-xployt --anchors-since EPOCH | --anchors-json FILE]
        [--profile fanout:5000,fanout:1000,memory:10000,pipeline:100,first,replay]
        [--storm 5000x2 --storm-kinds replicas,restart --storm-spreads 10000,0 --storm-runs 1
         --storm-workers 4 [--storm-backlog 128]]

Every scenario starts its own mock scanner (``bench/mock_server.py``, bench mode) and gateway
(``python -m gateway`` with a config in a temp dir: its own SQLite file, raised limits, log level
WARNING) on free 127.0.0.1 ports, and stops both afterwards, also on failure.

* fan-out: one bench scan, N subscribers on its stream, events published at R/s through the mock
  scanner's ``/bench/{scan_id}/publish``; driven by the shared harness (``ssebench.py run
  --no-start --pid <gateway>``), so the figures are the anchors' own.
* first event: POST a scan, open its stream as soon as the POST returns, time until the first
  event whose status is neither pending nor connecting (sequential scans).
* replay: 10,000 events published with nobody watching, then late subscribers read them all.
* pipeline: K scans at R ev/s each with 1-2 subscribers (alternating), one loadgen process per
  scan; latency from the scanner's emit (the mock stamps ``t`` as it writes upstream,
  ``stamp_emit``) to receipt, over every delivery. The same load on the harness's aiohttp-sse
  anchor server (from the publisher's stamp) gives the scale of one plain publish->SSE hop.
* collections: C collections of S bench scans (100 × 4 by default), one loadgen per collection
  publishing R ev/s (10) through the mock's spread route (event ``seq`` to scan ``seq % S``)
  and 1-2 subscribers (alternating) on the collection's stream; latency from the scanner's emit
  (``stamp_emit``; the collection event carries ``t`` in ``scan.extra``) to receipt on the
  collection's stream, over every delivery; then every scan is finished and the row counts how
  the collections ended.
* replicas: two gateways with ``backend: redis`` sharing a ``redis-server`` the scenario starts
  (free port, no persistence; skipped when redis-server is not installed). One bench scan POSTed
  on replica A, N/2 subscribers on A's stream and N/2 on B's, one loadgen per replica, GO to
  both at once: A's publishes at R/s through the mock scanner, B's keeps the same schedule
  into a sink (``--pub-pipe``), so it still expects every event and measures latency from the
  stamp ``t`` A's publisher wrote. Both replicas', Redis's and the mock's CPU and RSS are
  sampled from /proc.
* storm (not in the default parts): N subscribers of one running bench scan, in a few
  ``bench/storm_subscribers.py`` processes, each resuming with ``Last-Event-ID`` after the
  ``retry:`` it was sent. ``replicas``: all on replica A of two on Redis; A drains (SIGTERM),
  all come back on B while events go on. ``restart``: one gateway on SQLite is restarted under
  them. Per subscriber the ids must be exactly 1..n; times from the SIGTERM until all left, were
  back and were caught up; live events' p99 before and during; each process's CPU.

Results: ``bench/results/<date>-gateway.md`` and ``.json`` (profiles beside them). The shared
harness (``../shared/bench``) is only called, never copied; its outputs go to
``$SSEBENCH_WORK`` (default /tmp/ssebench-work).
"""

from __future__ import annotations

import sys

from gatewaybench.cli import main

# The code is the package beside this file, ``bench/gatewaybench`` (its docstring maps it);
# this docstring is the ``--help`` text.
if __name__ == "__main__":
    sys.exit(main(__doc__))
