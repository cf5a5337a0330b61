"""The targets of docs/BENCHMARKS.md, each checked against the report's figures: ``met``,
``MISSED``, or ``n/a`` when what it needs was not run. One function per target, a to g."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .text import fmt

TARGET_KEEPUP_N: Final = 5000
TARGET_NCHAN_N: Final = 1000
TARGET_NCHAN_RATIO: Final = 2.0
TARGET_KIB_PER_STREAM: Final = 12.0
TARGET_PIPELINE_SCANS: Final = 100
TARGET_PIPELINE_P99_MS: Final = 10.0
TARGET_FIRST_EVENT_P99_MS: Final = 50.0
TARGET_REPLAY_EVENTS_PER_S: Final = 50_000.0
TARGET_REPLICAS_N: Final = 5000
TARGET_REPLICAS_P99_MS: Final = 100.0

Report = dict[str, Any]
Verdict = dict[str, Any]


def verdict(key: str, target: str, value: str, ok: bool | None) -> Verdict:
    return {
        "target": key,
        "what": target,
        "measured": value,
        "verdict": "n/a" if ok is None else ("met" if ok else "MISSED"),
    }


def fanout_rows(report: Report) -> list[dict[str, Any]]:
    """The gateway's fan-out rows that have figures."""
    return [r for r in report.get("fanout", []) if r.get("loadgen")]


def anchor_row(
    anchors: list[dict[str, Any]], server: str, n: int, rate: float
) -> dict[str, Any] | None:
    for row in anchors:
        if row["server"] == server and row["n"] == n and row["rate"] == rate:
            return row
    return None


def _keeps_up(report: Report) -> Verdict:
    rows = fanout_rows(report)
    row = next((r for r in rows if r["n"] == TARGET_KEEPUP_N and r["rate"] == 20), None)
    if not row:
        return verdict("a", f"keeps up at {TARGET_KEEPUP_N} x 20", "not run", None)
    g = row["loadgen"]
    sched = (g.get("latency_from_schedule_ms") or {}).get("p99")
    ok = (
        g["established"] == row["n"]
        and g["delivered"] >= g["expected"] > 0
        and sched is not None
        and sched < 1000
        and not g.get("disconnects")
    )
    return verdict(
        "a",
        f"keeps up at {TARGET_KEEPUP_N} subscribers x 20 ev/s (no loss, sched p99 < 1 s)",
        f"loss {fmt(g.get('loss_pct'), 2)} %, sched p99 {fmt(sched, 1)} ms, "
        f"{g.get('disconnects', 0)} disconnects",
        ok,
    )


def _near_nchan(report: Report) -> Verdict:
    rows = fanout_rows(report)
    row = next((r for r in rows if r["n"] == TARGET_NCHAN_N and r["rate"] == 20), None)
    nchan = anchor_row(report.get("anchors", []), "nchan-w1", TARGET_NCHAN_N, 20)
    if not (row and nchan and nchan.get("loadgen")):
        return verdict("b", f"p99 within {TARGET_NCHAN_RATIO:g}x nchan-w1", "no anchor run", None)
    mine = row["loadgen"]["latency_ms"]["p99"]
    theirs = nchan["loadgen"]["latency_ms"]["p99"]
    ratio = mine / theirs if theirs else None
    return verdict(
        "b",
        f"p99 at {TARGET_NCHAN_N} subscribers within {TARGET_NCHAN_RATIO:g}x nchan-w1",
        f"{fmt(mine, 1)} ms vs {fmt(theirs, 1)} ms = {fmt(ratio, 2)}x",
        ratio is not None and ratio <= TARGET_NCHAN_RATIO and row["loadgen"]["loss_pct"] == 0,
    )


def _kib_per_stream(report: Report) -> Verdict | None:
    rows = fanout_rows(report)
    full = [r for r in rows if r["loadgen"]["established"] == r["n"] and r.get("srv_kib_per_conn")]
    if not full:
        return None
    biggest = max(full, key=lambda r: r["n"])
    kib = biggest["srv_kib_per_conn"]
    each = ", ".join(
        f"N={r['n']}: {fmt(r['srv_kib_per_conn'], 1)}" for r in full if r["rate"] == 20
    )
    return verdict(
        "c",
        f"<= {TARGET_KIB_PER_STREAM:g} KiB RSS per idle open stream",
        f"{fmt(kib, 1)} KiB at N={biggest['n']} ({each})",
        kib <= TARGET_KIB_PER_STREAM,
    )


def _pipeline_row(report: Report, gateway: bool) -> dict[str, Any] | None:
    return next(
        (
            p
            for p in report.get("pipeline", [])
            if (p["server"] == "xployt-gateway") == gateway and p["scans"] == TARGET_PIPELINE_SCANS
        ),
        None,
    )


def _pipeline(report: Report) -> Verdict | None:
    pipe = _pipeline_row(report, gateway=True)
    if not pipe:
        return None
    p99 = pipe["latency_ms"]["p99"]
    base = _pipeline_row(report, gateway=False)
    extra = ""
    if base and base["latency_ms"]["p99"] is not None and p99 is not None:
        extra = (
            f"; {fmt(p99 - base['latency_ms']['p99'], 1)} ms over the aiohttp-sse "
            f"baseline's {fmt(base['latency_ms']['p99'], 1)} ms"
        )
    return verdict(
        "d",
        f"pipeline adds < {TARGET_PIPELINE_P99_MS:g} ms p99 at {TARGET_PIPELINE_SCANS} "
        "scans x 10 ev/s",
        f"p99 {fmt(p99, 1)} ms scanner emit->subscriber, loss {fmt(pipe['loss_pct'], 2)} %{extra}",
        p99 is not None and p99 < TARGET_PIPELINE_P99_MS and pipe["loss_pct"] == 0,
    )


def _first_event(report: Report) -> Verdict | None:
    first = report.get("first_event")
    if not first:
        return None
    p99 = first["first_event_ms"]["p99"]
    return verdict(
        "e",
        f"first event < {TARGET_FIRST_EVENT_P99_MS:g} ms p99 after the POST returns",
        f"p99 {fmt(p99, 1)} ms (p50 {fmt(first['first_event_ms']['p50'], 1)}) over "
        f"{first['measured']} scans",
        p99 is not None and p99 < TARGET_FIRST_EVENT_P99_MS and first["measured"] == first["scans"],
    )


def _replay(report: Report) -> Verdict | None:
    rep = report.get("replay")
    if not rep:
        return None
    rate = rep["events_per_s_median"]
    return verdict(
        "f",
        f"replay > {TARGET_REPLAY_EVENTS_PER_S:,.0f} events/s",
        f"{fmt(rate, 0)} events/s median of {len(rep['reads'])} reads of "
        f"{rep['events_stored']} events",
        rate is not None and rate > TARGET_REPLAY_EVENTS_PER_S and rep["complete"],
    )


_REPLICAS_WHAT: Final = (
    f"two replicas on Redis keep up at {TARGET_REPLICAS_N} subscribers x 20 ev/s "
    f"(no loss, p99 < {TARGET_REPLICAS_P99_MS:g} ms)"
)


def _replicas_ok(row: dict[str, Any]) -> Verdict:
    p99 = row["latency_ms"]["p99"]  # the upper bound of the merged p99
    each = ", ".join(
        f"{r['replica']} {fmt((r['latency_ms'] or {}).get('p99'), 1)}" for r in row["per_replica"]
    )
    return verdict(
        "g",
        _REPLICAS_WHAT,
        f"loss {fmt(row['loss_pct'], 2)} %, p99 <= {fmt(p99, 1)} ms over both ({each}), "
        f"{row['established']}/{row['n']} connected, {row['disconnects']} disconnects",
        row["established"] == row["n"]
        and row["delivered"] >= row["expected"] > 0
        and not row["disconnects"]
        and p99 is not None
        and p99 < TARGET_REPLICAS_P99_MS,
    )


def _replicas(report: Report) -> Verdict | None:
    if "replicas" not in report:
        return None
    row = next(
        (r for r in report["replicas"] if r["n"] == TARGET_REPLICAS_N and r["rate"] == 20),
        None,
    )
    if row and row["status"] == "ok":
        return _replicas_ok(row)
    if row:
        return verdict("g", _REPLICAS_WHAT, f"error: {row.get('error')}", None)
    if report.get("replicas_skipped"):
        return verdict("g", _REPLICAS_WHAT, f"skipped: {report['replicas_skipped']}", None)
    ran = ", ".join(r["scenario"] for r in report["replicas"]) or "nothing"
    return verdict("g", _REPLICAS_WHAT, f"not run at {TARGET_REPLICAS_N} x 20 (ran: {ran})", None)


_TARGETS: Final[tuple[Callable[[Report], Verdict | None], ...]] = (
    _keeps_up,
    _near_nchan,
    _kib_per_stream,
    _pipeline,
    _first_event,
    _replay,
    _replicas,
)


def verdicts(report: Report) -> list[Verdict]:
    """One row per target that the report can speak to, in the order a to g."""
    return [v for check in _TARGETS if (v := check(report)) is not None]
