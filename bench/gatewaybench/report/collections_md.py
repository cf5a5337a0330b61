"""The Markdown section of the collections part: one row per collection count."""

from __future__ import annotations

from typing import Any

from .text import fmt

Report = dict[str, Any]

_INTRO = (
    "C scan collections of S scanners (bench scans), each fed at R ev/s by its own loadgen "
    "publisher through the mock scanner's spread route (event `seq` to scan `seq % S`, so "
    "R/S ev/s per scanner), subscribers alternating 2, 1, 2, ... on the collections' "
    "streams. The mock stamps `t` as it writes each event upstream; a collection event "
    "carries it in `scan.extra`. Latency, over every delivery: scanner emit -> the scan's "
    "reader, normaliser, SQLite log and hub -> the collection's aggregator -> its log and "
    "hub -> subscriber. `ended` counts how the collections ended once their scans were "
    "finished. `published`: the events the publishers got into the mock (one they could not "
    "is loss too). `logged`: the events in the collections' logs / in their scans' logs, "
    "which must be as many (one collection event per scan event); when they are, a "
    "delivery the loadgens missed was late (not there 5 s after the last publish), not lost."
)


def collections_markdown(report: Report) -> list[str]:
    rows = report.get("collections")
    if not rows:
        return []
    lines = [
        "## Collections",
        "",
        _INTRO,
        "",
        "| server | collections × scanners | subs | R×s | published | delivered / expected | "
        "loss % | p50 ms | p90 ms | p99 ms | max ms | ended | logged | srv CPU % | mock CPU % | "
        "box CPU % | RSS idle/peak MiB | lg CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("status") == "error":
            lines.append(f"| {r['server']} | {r['scenario']} | error: {r['error']} |")
            continue
        lat = r["latency_ms"]
        ended = ", ".join(f"{n} {status}" for status, n in sorted(r["ended"].items()))
        lines.append(
            f"| {r['server']} | {r['collections']} × {r['scanners']} | {r['subscribers']} | "
            f"{r['rate_per_collection']:g}×{r['seconds']:g} | {r['published']} / "
            f"{round(r['collections'] * r['rate_per_collection'] * r['seconds'])} | "
            f"{r['delivered']} / "
            f"{r['expected']} | {fmt(r['loss_pct'], 2)} | {fmt(lat['p50'], 2)} | "
            f"{fmt(lat['p90'], 2)} | {fmt(lat['p99'], 2)} | {fmt(lat['max'], 1)} | {ended} | "
            f"{r['collection_events']} / {r['scan_events']} | "
            f"{fmt(r.get('server_cpu_pct'))} | {fmt(r.get('mock_cpu_pct'))} | "
            f"{fmt(r.get('box_cpu_pct'))} | {fmt(r.get('server_rss_idle_mib'))}/"
            f"{fmt(r.get('server_rss_peak_mib'))} | {fmt(r['lg_cpu_pct'])} |"
        )
    lines.append("")
    return lines
