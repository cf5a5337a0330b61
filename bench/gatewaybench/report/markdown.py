"""The Markdown report: the run's header, the targets, then one section per part that ran."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ..common import MiB
from ..harness import Harness
from .collections_md import collections_markdown
from .replicas_md import replicas_markdown
from .storm_md import storm_markdown
from .text import fmt

Report = dict[str, Any]


def _header(report: Report) -> list[str]:
    """The title, the machine, the command and how the gateway ran."""
    m = report["meta"]
    mc = m["machine"]
    return [
        f"# Xployt gateway benchmarks ({m['date'][:10]})",
        "",
        f"- date: {m['date']}; machine: {mc.get('nproc')} CPUs ({mc.get('cpu_model')}), "
        f"{mc.get('mem_total_mib')} MiB, kernel {mc.get('kernel')}, Python {mc.get('python')}",
        f"- command: `{m['command']}`",
        f"- anchors: {m.get('anchors_json') or 'not run (BENCH_ANCHORS=0)'}",
        f"- CPU steal (the hypervisor running others on these vCPUs) over the gateway's part: "
        f"{fmt(m.get('steal_pct'))} % of the machine's time",
        "- gateway: `python -m gateway`, one process, log level WARNING, its own SQLite file; "
        "events come from the mock scanner's bench mode (`bench/mock_server.py`), which the "
        "harness's publisher POSTs to; `mock CPU` is the mock scanner's CPU over the active "
        "window (not counted in srv CPU).",
        "",
    ]


def _targets(report: Report) -> list[str]:
    """The verdicts, one row per target."""
    lines: list[str] = []
    if report.get("verdicts"):
        lines += ["## Targets", "", "| target | what | measured | verdict |", "|---|---|---|---|"]
        lines += [
            f"| {v['target']} | {v['what']} | {v['measured']} | {v['verdict']} |"
            for v in report["verdicts"]
        ]
        lines.append("")
    return lines


def _first_event(report: Report) -> list[str]:
    """The first-event part: one row per timing."""
    lines: list[str] = []
    first = report.get("first_event")
    if first:
        f1, p1, h1 = first["first_event_ms"], first["post_rtt_ms"], first["stream_headers_ms"]
        lines += [
            "## First event",
            "",
            f"{first['scans']} scans one after another: POST (use_sse, bench), open the stream "
            "as soon as the POST returns, time from the POST's return to the first event whose "
            "status is neither pending nor connecting (the mock scanner's first event).",
            "",
            "| measure | samples | p50 ms | p90 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {s['samples']} | {fmt(s['p50'], 2)} | {fmt(s['p90'], 2)} | "
                f"{fmt(s['p99'], 2)} | {fmt(s['max'], 2)} |"
                for name, s in (
                    ("first event after POST return", f1),
                    ("POST round trip", p1),
                    ("stream headers after POST return", h1),
                )
            ),
            "",
            f"errors: {first['errors'] or 'none'}; gateway CPU {fmt(first.get('srv_cpu_pct'))} %, "
            f"client CPU {fmt(first['client_cpu_pct'])} % over {first['wall_s']} s.",
            "",
        ]
    return lines


def _replay(report: Report) -> list[str]:
    """The replay part: one row per read."""
    lines: list[str] = []
    rep = report.get("replay")
    if rep:
        lines += [
            "## Replay",
            "",
            f"{rep['events_published']} events published through the mock scanner with nobody "
            f"watching ({rep['publish']['seconds']} s; stored in {rep['ingest_s']} s = "
            f"{fmt(rep['ingest_events_per_s'], 0)} events/s, gateway CPU "
            f"{rep['ingest_srv_cpu_pct']} %), then the scan finished "
            f"({rep['events_stored']} events in its log) and late subscribers read the whole "
            "stream one after another.",
            "",
            "| read | events | MiB | seconds | events/s | gateway CPU % | client CPU s |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {i + 1} | {r['events']} | {r['bytes'] / MiB:.2f} | {r['seconds']} | "
                f"{fmt(r['events_per_s'], 0)} | {fmt(r['srv_cpu_pct'])} | {r['client_cpu_s']} |"
                for i, r in enumerate(rep["reads"])
            ),
            "",
            f"median {fmt(rep['events_per_s_median'], 0)} events/s; every read complete: "
            f"{rep['complete']}.",
            "",
        ]
    return lines


def _pipeline(report: Report) -> list[str]:
    """The pipeline part: one row per scan count and server."""
    lines: list[str] = []
    pipes = report.get("pipeline")
    if pipes:
        lines += [
            "## Pipeline",
            "",
            "K scans, each fed at R ev/s by its own loadgen publisher through the mock scanner, "
            "subscribers alternating 2, 1, 2, ... per scan (one loadgen process per scan, plus "
            "its publisher). Latency: receive time minus the stamp `t`, over every delivery (from "
            "the loadgens' raw files). For the gateway the mock scanner sets `t` as it writes the "
            "event upstream (`stamp_emit`), so its rows are the gateway's own path: scanner emit "
            "-> reader -> normaliser -> SQLite log -> hub -> subscriber. The aiohttp-sse rows are "
            "the same load on the harness's aiohttp-sse server (one channel per scan), from the "
            "publisher's stamp: one plain publish->SSE hop, for scale.",
            "",
            "| server | scans | subs | R×s | delivered / expected | loss % | p50 ms | p90 ms | "
            "p99 ms | max ms | srv CPU % | mock CPU % | box CPU % | RSS idle/peak MiB | "
            "lg CPU % (all loadgens) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in pipes:
            lat = p["latency_ms"]
            lines.append(
                f"| {p['server']} | {p['scans']} | {p['subscribers']} | "
                f"{p['rate_per_scan']:g}×{p['seconds']:g} | {p['delivered']} / {p['expected']} | "
                f"{fmt(p['loss_pct'], 2)} | {fmt(lat['p50'], 2)} | {fmt(lat['p90'], 2)} | "
                f"{fmt(lat['p99'], 2)} | {fmt(lat['max'], 1)} | {fmt(p.get('server_cpu_pct'))} | "
                f"{fmt(p.get('mock_cpu_pct'))} | {fmt(p.get('box_cpu_pct'))} | "
                f"{fmt(p.get('server_rss_idle_mib'))}/{fmt(p.get('server_rss_peak_mib'))} | "
                f"{fmt(p['lg_cpu_pct'])} |"
            )
        lines.append("")
    return lines


def _profiles(report: Report) -> list[str]:
    """Each profile's summary, as the profile wrote it."""
    lines: list[str] = []
    profiles = report.get("profiles")
    if profiles:
        lines += ["## Profiles", ""]
        for name, prof in profiles.items():
            lines.append(f"### {name}")
            lines.append("")
            if prof.get("error"):
                lines += [f"error: {prof['error']}", ""]
                continue
            lines += ["```", Path(prof["summary"]).read_text().rstrip(), "```", ""]
    return lines


def _fanout_order(report: Report) -> dict[str, int]:
    """The position of each fan-out scenario on the command line."""
    return {spec: i for i, spec in enumerate(report["meta"]["fanout_specs"])}


def _fanout_meta(report: Report, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The harness's run description, naming the gateway beside the anchors."""
    meta = dict(rows[0].get("harness_meta") or {})
    meta.setdefault("date", report["meta"]["date"])
    if meta.get("targets") is not None:
        meta["targets"] = [
            {
                "name": "xployt-gateway",
                "desc": "the gateway, python -m gateway "
                "(aiohttp, 1 process), bench scan fed by the mock scanner",
            }
        ]
        meta["targets"] += (report.get("anchors_meta") or {}).get("targets", [])
    return meta


def _fanout(harness: Harness, report: Report) -> list[str]:
    """The harness's own table of the gateway's rows and this session's anchors', in the order
    of the command line; then the mock scanner's CPU."""
    rows = list(report.get("fanout", []))
    if not rows:
        return []
    order = _fanout_order(report)

    def key(r: dict[str, Any]) -> tuple[int, int]:
        spec = f"{r['n']}x{r['rate']:g}x{r['seconds']:g}"
        return (order.get(spec, 99), 0 if r["server"] == "xployt-gateway" else 1)

    anchors = [
        a for a in report.get("anchors", []) if f"{a['n']}x{a['rate']:g}x{a['seconds']:g}" in order
    ]
    combined = sorted(rows + anchors, key=key)
    table = harness.md_report(
        "SSE fan-out: xployt-gateway beside the anchors", _fanout_meta(report, rows), combined
    )
    return [
        "## Fan-out (the shared harness's table, gateway and anchors of this run)",
        "",
        table.replace("# SSE fan-out", "### SSE fan-out", 1),
        "",
        "Mock scanner CPU during the gateway's scenarios:",
        "",
        "| N | R×s | mock CPU % (est.) | CPU steal % | harness wall s |",
        "|---|---|---|---|---|",
        *(
            f"| {r['n']} | {r['rate']:g}×{r['seconds']:g} | {fmt(r.get('mock_cpu_pct_est'))} "
            f"| {fmt(r.get('steal_pct'))} | {fmt(r.get('harness_wall_s'))} |"
            for r in rows
        ),
        "",
    ]


_PARTS: Final[tuple[Callable[[Report], list[str]], ...]] = (
    _first_event,
    _replay,
    _pipeline,
    collections_markdown,
    replicas_markdown,
    storm_markdown,
    _profiles,
)


def markdown(harness: Harness, report: Report) -> str:
    """The whole report: header, targets, fan-out, then the other parts that ran."""
    lines = [*_header(report), *_targets(report), *_fanout(harness, report)]
    for part in _PARTS:
        lines += part(report)
    return "\n".join(lines) + "\n"
