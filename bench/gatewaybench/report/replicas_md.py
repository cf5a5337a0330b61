"""The Markdown section of the replicas part: per scenario a row for both replicas together
and one for each, then a table of Redis, the mock, the machine and the publisher."""

from __future__ import annotations

from typing import Any

from .text import fmt, fmt_range

Row = dict[str, Any]

_INTRO = (
    "Two gateways (`python -m gateway`, `backend: redis`, the same JWT secret) sharing one "
    "`redis-server` {version} started for the scenario (127.0.0.1, no persistence). "
    "One bench scan is POSTed on replica A, which reads the mock scanner's stream and "
    "appends its events to Redis; half the subscribers are on A's stream, half on B's. One "
    "loadgen per replica, GO to both at once: A's publishes E = R×s events through the mock "
    "scanner, B's keeps the same schedule into a sink, so both expect every event and "
    "measure latency from the publisher's stamp `t`. The loadgens report percentiles, not "
    "samples: the percentiles of the A+B row are the range the union's lies in (the "
    "verdict uses its upper end); its max, mean and all-N (per event, until the last of "
    "all N subscribers had it, from the raw files) are exact. CPU over the active window "
    "in % of one core; RSS base (no stream) / idle (N connected) / peak."
)


def _both(row: Row) -> str:
    """The A+B line of one scenario."""
    lat = row["latency_ms"]
    per = row["per_replica"]
    return (
        f"| {row['n']} | {row['rate']:g}×{row['seconds']:g} | **A+B** | "
        f"{row['established']}/{row['n']} | "
        f"{row['delivered']} / {row['expected']} | {fmt(row['loss_pct'], 2)} | "
        f"{fmt_range(lat['p50_range'], 2)} | {fmt_range(lat['p90_range'], 2)} | "
        f"{fmt_range(lat['p99_range'], 2)} | {fmt(lat['max'], 1)} | "
        f"{fmt(row['sched_p99_ms_worst'], 1)} | {row['disconnects']} | "
        f"{fmt(sum(r['srv_cpu_pct'] or 0 for r in per))} | - | "
        f"{fmt(sum(r['lg_cpu_pct'] for r in per))} |"
    )


def _one(r: Row) -> str:
    """The line of one replica."""
    rl = r["latency_ms"] or {}
    return (
        f"| | | {r['replica']}{' (publishes)' if r['publishes'] else ''} | "
        f"{r['established']}/{r['n']} | {r['delivered']} / {r['expected']} | "
        f"{fmt(r['loss_pct'], 2)} | {fmt(rl.get('p50'), 2)} | {fmt(rl.get('p90'), 2)} | "
        f"{fmt(rl.get('p99'), 2)} | {fmt(rl.get('max'), 1)} | "
        f"{fmt(r['sched_p99_ms'], 1)} | {r['disconnects']} | {fmt(r['srv_cpu_pct'])} | "
        f"{fmt(r['srv_rss_base_mib'])}/{fmt(r['srv_rss_idle_mib'])}/"
        f"{fmt(r['srv_rss_peak_mib'])} | {fmt(r['lg_cpu_pct'])} |"
    )


def _subscribers_table(rows: list[Row]) -> list[str]:
    lines = [
        "| N | R×s | replica | subs | delivered / expected | loss % | p50 ms | p90 ms | p99 ms | "
        "max ms | sched p99 ms | disconnects | gateway CPU % | gateway RSS base/idle/peak MiB | "
        "lg CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["status"] != "ok":
            scenario = f"| {row['n']} | {row['rate']:g}×{row['seconds']:g} |"
            lines.append(f"{scenario} A+B | - | error: {row.get('error')} |" + " |" * 10)
            continue
        lines.append(_both(row))
        lines += [_one(r) for r in row["per_replica"]]
    return lines


def _resources_line(row: Row) -> str:
    all_n = row["fanout_all_ms"]
    return (
        f"| {row['n']} | {row['rate']:g}×{row['seconds']:g} | {fmt(row['redis_cpu_pct'])} | "
        f"{fmt(row['redis_rss_base_mib'])}/{fmt(row.get('redis_rss_idle_mib'))}/"
        f"{fmt(row['redis_rss_peak_mib'])} | {fmt(row['mock_cpu_pct'])} | "
        f"{fmt(row['box_cpu_pct'])} | {fmt(row['steal_pct'])} | "
        f"{fmt(all_n['p50'], 1)}/{fmt(all_n['p99'], 1)}/{fmt(all_n['max'], 1)} | "
        f"{row['published']}/{row['events']} ({fmt(row['pub_rate_achieved'])}) | "
        f"{fmt(row['active_window_s'])} |"
    )


def _resources_table(rows: list[Row]) -> list[str]:
    return [
        "| N | R×s | Redis CPU % | Redis RSS base/idle/peak MiB | mock CPU % | box CPU % | "
        "CPU steal % | all-N p50/p99/max ms | pub ok/E (ev/s) | active window s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_resources_line(row) for row in rows if row["status"] == "ok"),
    ]


def replicas_markdown(report: dict[str, Any]) -> list[str]:
    """The section, or nothing when the part did not run."""
    if "replicas" not in report:
        return []
    rows = report["replicas"]
    lines = ["## Two replicas on Redis", ""]
    if report.get("replicas_skipped"):
        return [*lines, f"Skipped: {report['replicas_skipped']}.", ""]
    version = next((r.get("redis_version") for r in rows if r.get("redis_version")), None)
    lines += [_INTRO.format(version=version or ""), ""]
    lines += _subscribers_table(rows)
    lines += ["", *_resources_table(rows), ""]
    return lines
