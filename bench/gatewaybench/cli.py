"""The command line of ``bench/run.py``: its options, the parts in their order (each scenario's
failure is logged and the run goes on), and the result files, rewritten after every scenario."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Final

from .common import PY, RESULTS, ROOT, log
from .harness import Harness, load_harness
from .meters import load_average, machine, steal_jiffies, steal_pct
from .procs import redis_missing, shell_quote
from .profiling import profile_path, run_profile
from .report.markdown import markdown
from .report.verdicts import verdicts
from .scenarios.collections import SERVER as COLLECTIONS_SERVER
from .scenarios.collections import collections
from .scenarios.fanout import fanout
from .scenarios.first_event import first_event
from .scenarios.pipeline import pipeline
from .scenarios.replay import replay
from .scenarios.replicas import SERVER as REPLICAS_SERVER
from .scenarios.replicas import replicas
from .scenarios.spec import failed_row, split_list
from .scenarios.storm import Storm, storm_replicas, storm_restart

DEFAULT_FANOUT: Final = "100x20x10,1000x20x10,5000x20x10,10000x20x10,1000x500x5"
DEFAULT_PARTS: Final = "fanout,first,replay,pipeline,collections,replicas"
DEFAULT_REPLICAS: Final = "5000x20x10"
STORMS: Final = {"replicas": storm_replicas, "restart": storm_restart}


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--shared",
        default=str(ROOT.parent / "shared" / "bench"),
        help="the shared SSE harness (default: ../shared/bench)",
    )
    p.add_argument("--parts", default=DEFAULT_PARTS)
    p.add_argument("--fanout", default=DEFAULT_FANOUT, help="NxRATExSECONDS list")
    p.add_argument("--first-scans", type=int, default=200)
    p.add_argument("--replay-events", type=int, default=10_000)
    p.add_argument("--replay-reads", type=int, default=5)
    p.add_argument("--pipeline", default="10,100,500", help="scan counts")
    p.add_argument("--pipeline-rate", type=float, default=10.0)
    p.add_argument("--pipeline-seconds", type=float, default=10.0)
    p.add_argument(
        "--no-baseline", action="store_true", help="skip the aiohttp-sse pipeline baseline"
    )
    p.add_argument("--collections", default="100", help="collection counts")
    p.add_argument("--collection-scanners", type=int, default=4, help="scanners per collection")
    p.add_argument(
        "--collection-rate", type=float, default=10.0, help="ev/s per collection (all scanners)"
    )
    p.add_argument("--collection-seconds", type=float, default=10.0)
    p.add_argument(
        "--replicas",
        default=DEFAULT_REPLICAS,
        help="NxRATExSECONDS list of the replicas part: two gateways on one Redis, N/2 "
        f"subscribers on each (default {DEFAULT_REPLICAS})",
    )
    p.add_argument(
        "--backend",
        choices=("sqlite", "redis"),
        default="sqlite",
        help="the gateway's backend in the fan-out part and the memory profile (redis: a "
        "redis-server of the scenario's own)",
    )
    p.add_argument(
        "--storm",
        default="5000x2",
        help="NxRATE of the storm part: N subscribers of one scan, R events/s (default 5000x2)",
    )
    p.add_argument("--storm-kinds", default="replicas,restart", help="replicas (Redis), restart")
    p.add_argument(
        "--storm-spreads", default="10000,0", help="stream.reconnect_spread_ms values, in ms"
    )
    p.add_argument("--storm-runs", type=int, default=1, help="runs of each kind and spread")
    p.add_argument("--storm-workers", type=int, default=4, help="subscriber processes")
    p.add_argument(
        "--storm-backlog", type=int, help="server.backlog (default: the gateway's own, 4096)"
    )
    p.add_argument("--anchors-json", help="the anchors' JSON of this session")
    p.add_argument("--anchors-prefix", help="find $SSEBENCH_WORK/results/<prefix>-*.json")
    p.add_argument("--anchors-since", type=float, help="...written after this epoch time")
    p.add_argument(
        "--profile",
        default="",
        help="comma list: fanout:N, memory:N, pipeline:K, collections:C, first, replay",
    )
    p.add_argument("--out", default=str(RESULTS))
    return p


def find_anchors(args: argparse.Namespace, harness: Harness) -> Path | None:
    """The anchors' JSON of this session: named, or the newest with the prefix since then."""
    if args.anchors_json:
        return Path(args.anchors_json)
    if not args.anchors_prefix:
        return None
    found = [
        p
        for p in harness.results.glob(f"{args.anchors_prefix}-*.json")
        if p.stat().st_mtime >= (args.anchors_since or 0)
    ]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


class Session:
    """One run: the options, the report so far, and where it is written."""

    def __init__(self, args: argparse.Namespace, harness: Harness) -> None:
        self.args = args
        self.harness = harness
        self.shared = Path(args.shared).resolve()
        self.out_dir = Path(args.out)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stamp = dt.date.today().isoformat()
        self.logdir = self.out_dir / f"logs-{self.stamp}"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.parts = set(split_list(args.parts))
        self.report: dict[str, Any] = {"meta": self._meta()}
        self._add_anchors()
        suffix = "-profile" if args.profile and self.parts == {"none"} else ""
        self.json_path = self.out_dir / f"{self.stamp}-gateway{suffix}.json"
        self.md_path = self.out_dir / f"{self.stamp}-gateway{suffix}.md"
        self.steal0 = steal_jiffies()

    def _meta(self) -> dict[str, Any]:
        return {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine(),
            "command": " ".join(shell_quote(a) for a in [Path(PY).name, *sys.argv]),
            "shared": str(self.shared),
            "ssebench_work": str(self.harness.work),
            "fanout_specs": split_list(self.args.fanout),
        }

    def _add_anchors(self) -> None:
        anchors_path = find_anchors(self.args, self.harness)
        if anchors_path and anchors_path.exists():
            data = json.loads(anchors_path.read_text())
            self.report["anchors"] = data["rows"]
            self.report["anchors_meta"] = data["meta"]
            self.report["meta"]["anchors_json"] = str(anchors_path)

    def save(self) -> None:
        """Write both result files with the verdicts as they stand."""
        self.report["meta"]["steal_pct"] = steal_pct(self.steal0)
        self.report["verdicts"] = verdicts(self.report)
        self.json_path.write_text(json.dumps(self.report, indent=1, default=str))
        self.md_path.write_text(markdown(self.harness, self.report))

    # -- the parts, in their order
    def run_fanout(self) -> None:
        self.report["fanout"] = []
        for spec in self.report["meta"]["fanout_specs"]:
            log(f"fan-out {spec}")
            try:
                row = fanout(
                    self.harness,
                    self.shared,
                    spec,
                    self.logdir,
                    redis=self.args.backend == "redis",
                )
            except Exception as exc:  # keep going with the next scenario
                log(f"fan-out {spec} failed: {exc}")
                row = failed_row("xployt-gateway", spec, str(exc))
            self.report["fanout"].append(row)
            self.save()

    def run_first(self) -> None:
        log(f"first event over {self.args.first_scans} scans")
        self.report["first_event"] = first_event(self.harness, self.logdir, self.args.first_scans)
        self.save()

    def run_replay(self) -> None:
        args = self.args
        log(f"replay of {args.replay_events} events")
        self.report["replay"] = replay(
            self.harness, self.logdir, args.replay_events, args.replay_reads
        )
        self.save()

    def run_pipeline(self) -> None:
        args = self.args
        self.report["pipeline"] = []
        baseline_ok = not args.no_baseline and self.harness.venv_py.exists()
        for scans in [int(x) for x in args.pipeline.split(",") if x.strip()]:
            for base in [False, True] if baseline_ok else [False]:
                log(
                    f"pipeline {scans} scans x {args.pipeline_rate:g} ev/s"
                    + (" (aiohttp-sse baseline)" if base else "")
                )
                try:
                    self.report["pipeline"].append(
                        pipeline(
                            self.harness,
                            self.logdir,
                            scans,
                            args.pipeline_rate,
                            args.pipeline_seconds,
                            baseline=base,
                        )
                    )
                except Exception as exc:
                    log(f"pipeline {scans} failed: {exc}")
                self.save()

    def run_collections(self) -> None:
        args = self.args
        self.report["collections"] = []
        for count in [int(x) for x in split_list(args.collections)]:
            spec = f"{count}x{args.collection_rate:g}x{args.collection_seconds:g}"
            log(
                f"collections {count} x {args.collection_scanners} scanners, "
                f"{args.collection_rate:g} ev/s each"
            )
            try:
                row = collections(
                    self.harness,
                    self.logdir,
                    count,
                    args.collection_scanners,
                    args.collection_rate,
                    args.collection_seconds,
                )
            except Exception as exc:
                log(f"collections {count} failed: {exc}")
                row = failed_row(COLLECTIONS_SERVER, spec, str(exc))
            self.report["collections"].append(row)
            self.save()

    def run_replicas(self) -> None:
        self.report["replicas"] = []
        skipped = redis_missing()
        if skipped:
            log(f"two replicas on Redis skipped: {skipped}")
            self.report["replicas_skipped"] = skipped
        for spec in [] if skipped else split_list(self.args.replicas):
            log(f"two replicas on Redis {spec}")
            try:
                row = replicas(self.harness, self.logdir, spec)
            except Exception as exc:
                log(f"two replicas on Redis {spec} failed: {exc}")
                row = failed_row(REPLICAS_SERVER, spec, str(exc))
            self.report["replicas"].append(row)
            self.save()

    def run_storm(self) -> None:
        args = self.args
        n, rate = (float(x) for x in args.storm.lower().split("x"))
        self.report["storm"] = []
        kinds = split_list(args.storm_kinds)
        if "replicas" in kinds and redis_missing():
            log(f"storm on two replicas skipped: {redis_missing()}")
            kinds.remove("replicas")
        for kind in kinds:
            for spread in [int(x) for x in split_list(args.storm_spreads)]:
                for run in range(1, args.storm_runs + 1):
                    log(f"storm {kind}, {int(n)} streams, spread {spread} ms, run {run}")
                    storm = Storm(int(n), rate, spread, args.storm_workers, args.storm_backlog)
                    try:
                        row = STORMS[kind](self.harness, self.logdir, storm)
                    except Exception as exc:
                        log(f"storm {kind} failed: {exc}")
                        row = {"kind": kind, "spread_ms": spread, "status": "error"}
                        row["error"] = str(exc)
                    row["run"], row["uptime"] = run, load_average()
                    self.report["storm"].append(row)
                    self.save()

    def run_profiles(self) -> None:
        args = self.args
        self.report["profiles"] = {}
        for item in split_list(args.profile):
            log(f"profile {item}")
            try:
                prof = run_profile(
                    self.harness,
                    self.logdir,
                    item,
                    profile_path(self.out_dir, self.stamp, item),
                    first_scans=args.first_scans,
                    replay_events=args.replay_events,
                    pipeline_rate=args.pipeline_rate,
                    pipeline_seconds=args.pipeline_seconds,
                    redis=args.backend == "redis",
                )
            except Exception as exc:
                log(f"profile {item} failed: {exc}")
                prof = {"error": str(exc)}
            self.report["profiles"][item] = prof
            self.save()

    def run(self) -> None:
        """Every part asked for, in the documented order; then the profiles."""
        for part, step in (
            ("fanout", self.run_fanout),
            ("first", self.run_first),
            ("replay", self.run_replay),
            ("pipeline", self.run_pipeline),
            ("collections", self.run_collections),
            ("replicas", self.run_replicas),
            ("storm", self.run_storm),
        ):
            if part in self.parts:
                step()
        if self.args.profile:
            self.run_profiles()
        self.save()

    def print_summary(self) -> None:
        print(f"results: {self.md_path}\n         {self.json_path}")
        for v in self.report["verdicts"]:
            print(f"  ({v['target']}) {v['verdict']:<6} {v['what']}: {v['measured']}")


def main(description: str | None = None, argv: list[str] | None = None) -> int:
    args = parser(description).parse_args(argv)
    session = Session(args, load_harness(Path(args.shared).resolve()))
    started = time.monotonic()
    session.run()
    log(f"done in {time.monotonic() - started:.0f} s")
    session.print_summary()
    return 0
