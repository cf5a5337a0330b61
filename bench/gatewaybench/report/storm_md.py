"""The Markdown section of the storm part: one row per run, the ids, the times from the signal,
the live latency before and in the storm, and the CPU of each process."""

from __future__ import annotations

from typing import Any

from .text import fmt

Row = dict[str, Any]

_INTRO = (
    "N subscribers of one running bench scan (`bench/storm_subscribers.py`, a few processes; "
    "each resumes with `Last-Event-ID` and waits the `retry:` it was sent). *replicas*: all on "
    "replica A (`backend: redis`), A gets SIGTERM and drains, all come back on replica B while "
    "events go on. *restart*: one gateway on SQLite gets SIGTERM (no drain) and is started "
    "again on its port; each subscriber comes back for the interrupted scan's terminal event. "
    "Times in seconds from the SIGTERM: all streams ended (left), all answered again (back), "
    "all caught up (a live event, or the terminal one, on the new stream). Latency of live "
    "events (ms from the scanner's emit) over the 5 s before the signal and over the storm; "
    "CPU in % of one core over the same windows."
)

_HEAD = (
    "| kind | N | spread ms | run | lost | dup | not exact | left | back | caught up "
    "(median) | p99 before | p99 storm | CPU before | CPU storm | load avg |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _cpu(cpu: dict[str, Any] | None) -> str:
    if not cpu:
        return "-"
    return ", ".join(f"{name} {fmt(value, 0)}" for name, value in cpu.items() if name != "box")


def _line(row: Row) -> str:
    if row.get("status") != "ok":
        return f"| {row['kind']} | - | {row['spread_ms']} | {row.get('run')} | {row['error']} |"
    ids, times, lat = row["ids"], row["times"], row["latency_ms"]
    return (
        f"| {row['kind']} | {row['n']} | {row['spread_ms']} | {row['run']} | {ids['lost']} | "
        f"{ids['duplicated']} | {ids['subscribers_not_exact']} | {fmt(times['all_left_s'], 2)} | "
        f"{fmt(times['all_back_s'], 2)} | {fmt(times['all_caught_up_s'], 2)} "
        f"({fmt(times['median_caught_up_s'], 2)}) | {fmt(lat['before']['p99'])} | "
        f"{fmt(lat.get('storm', {}).get('p99'))} | {_cpu(row.get('cpu_pct_before'))} | "
        f"{_cpu(row.get('cpu_pct_storm'))} | {row.get('uptime')} |"
    )


def storm_markdown(report: dict[str, Any]) -> list[str]:
    rows = report.get("storm")
    if not rows:
        return []
    return ["## Reconnect storms", "", _INTRO, "", _HEAD, *map(_line, rows), ""]
