#!/usr/bin/env python3
"""Benchmarks of the Xployt gateway: SSE fan-out, first event, replay, the scan pipeline and
two replicas on Redis.

Run from the project root with the project's venv (``make bench`` does, after the anchors):

    .venv/bin/python bench/run.py [--shared ../shared/bench]
        [--parts fanout,first,replay,pipeline,replicas]
        [--fanout 100x20x10,1000x20x10,5000x20x10,10000x20x10,1000x500x5] [--replicas 5000x20x10]
        [--anchors-prefix anchors-xployt --anchors-since EPOCH | --anchors-json FILE]
        [--profile fanout:5000,fanout:1000,memory:10000,pipeline:100,first,replay]

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
* replicas: two gateways with ``backend: redis`` sharing a ``redis-server`` the scenario starts
  (free port, no persistence; skipped when redis-server is not installed). One bench scan POSTed
  on replica A, N/2 subscribers on A's stream and N/2 on B's, one loadgen per replica, GO to
  both at once: A's publishes at R/s through the mock scanner, B's keeps the same schedule
  into a sink (``--pub-pipe``), so it still expects every event and measures latency from the
  stamp ``t`` A's publisher wrote. Both replicas', Redis's and the mock's CPU and RSS are
  sampled from /proc.

Results: ``bench/results/<date>-gateway.md`` and ``.json`` (profiles beside them). The shared
harness (``../shared/bench``) is only called, never copied; its outputs go to
``$SSEBENCH_WORK`` (default /tmp/ssebench-work).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
SCANNERS = ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner")
SCANNER = "secret_scanner"
API = "/api/v1/scans"
NOT_STARTED = frozenset({"pending", "connecting"})
DEFAULT_FANOUT = "100x20x10,1000x20x10,5000x20x10,10000x20x10,1000x500x5"
DEFAULT_PARTS = "fanout,first,replay,pipeline,replicas"
DEFAULT_REPLICAS = "5000x20x10"
MiB = 1024 * 1024
# Events the gateway stores before the first published one: pending, connecting, the mock's
# initial "bench" event.
EVENTS_BEFORE_PUBLISH = 3

# Targets (docs/BENCHMARKS.md): the thresholds the verdicts use.
TARGET_KEEPUP_N = 5000
TARGET_NCHAN_N = 1000
TARGET_NCHAN_RATIO = 2.0
TARGET_KIB_PER_STREAM = 12.0
TARGET_PIPELINE_SCANS = 100
TARGET_PIPELINE_P99_MS = 10.0
TARGET_FIRST_EVENT_P99_MS = 50.0
TARGET_REPLAY_EVENTS_PER_S = 50_000.0
TARGET_REPLICAS_N = 5000
TARGET_REPLICAS_P99_MS = 100.0

H: Any = None  # the shared harness module (ssebench), loaded by load_harness()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_harness(shared: Path) -> Any:
    """Import ``ssebench`` from the shared folder (it is stdlib only); build its loadgen."""
    if not (shared / "ssebench.py").is_file() or not (shared / "loadgen" / "sseload.c").is_file():
        sys.exit(
            f"bench: the shared SSE harness is missing at {shared} (expected ssebench.py and "
            "loadgen/sseload.c; the project expects it as ../shared/bench beside the repo)"
        )
    os.environ.setdefault("SSEBENCH_WORK", "/tmp/ssebench-work")
    sys.path.insert(0, str(shared))
    import ssebench  # type: ignore[import-not-found]

    if not ssebench.LOADGEN.exists():
        subprocess.run([str(shared / "loadgen" / "build.sh")], check=True, timeout=300)
    return ssebench


# --------------------------------------------------------------------------- statistics


def pct(sorted_values: Sequence[float], p: float) -> float | None:
    """The loadgen's percentile: nearest rank on a sorted list."""
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(p / 100.0 * (len(sorted_values) - 1) + 0.5))
    return sorted_values[i]


def summary_ms(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    return {
        "samples": len(v),
        "p50": _r(pct(v, 50)),
        "p90": _r(pct(v, 90)),
        "p99": _r(pct(v, 99)),
        "max": _r(v[-1] if v else None),
        "mean": _r(sum(v) / len(v) if v else None),
    }


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# --------------------------------------------------------------------------- processes


def free_port(taken: set[int]) -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def _raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def clean_env() -> dict[str, str]:
    """This environment without XPLOYT_* overrides (the bench's config file decides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPLOYT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process we started, then SIGKILL it if it lingers (by its pid only)."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> tuple[int, Any]:
    data = b"" if body is None else json.dumps(body).encode()
    all_headers = dict(headers or {})
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    if method == "GET":
        request.data = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} during startup")
        with contextlib.suppress(OSError):
            if http("GET", url, timeout=2)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g} s")


def steal_jiffies() -> tuple[int, int]:
    """(steal, total) jiffies of the whole machine: time the hypervisor gave to others."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0), sum(v[:8])


def steal_pct(since: tuple[int, int]) -> float | None:
    """Steal since ``since``, in % of the machine's time (all CPUs)."""
    now = steal_jiffies()
    total = now[1] - since[1]
    return round(100 * (now[0] - since[0]) / total, 1) if total > 0 else None


def proc_ticks(pid: int) -> int:
    st = H.proc_stat(pid)
    return int(st[1]) if st else 0


def redis_server_cmd(port: int, workdir: Path) -> list[str]:
    """A throwaway ``redis-server``: loopback only, no persistence, its files in ``workdir``."""
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]


def wait_redis(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Until the Redis on ``port`` answers PING (asked over a plain socket: no redis-cli)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} during startup")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
        ):
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"redis-server on :{port} did not answer PING within {timeout:g} s")


def redis_missing() -> str | None:
    """Why the replicas part cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    return None


class Stack:
    """One mock scanner and one gateway, on free ports, with a fresh SQLite file.

    ``replicas`` > 1 with ``redis``: that many gateways sharing one JWT secret and one
    ``redis-server`` of their own (``backend: redis``); replica 0 is the one ``gw`` names.
    """

    def __init__(
        self,
        tag: str,
        logdir: Path,
        *,
        snapshots: Path | None = None,
        replicas: int = 1,
        redis: bool = False,
    ) -> None:
        self.tag = tag
        self.logdir = logdir
        self.snapshots = snapshots
        self.tmp = Path(tempfile.mkdtemp(prefix="xployt-bench-"))
        self.mock: subprocess.Popen[bytes] | None = None
        self.gateways: list[subprocess.Popen[bytes]] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.logs: list[Any] = []
        self.token = ""
        self.secret = secrets.token_hex(32)
        ports: set[int] = set()
        self.mock_port = free_port(ports)
        self.gw_ports = [free_port(ports) for _ in range(replicas)]
        self.redis_port = free_port(ports) if redis else None

    # -- URLs and credentials
    def gw_url(self, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.gw_ports[replica]}"

    @property
    def gw(self) -> str:
        return self.gw_url(0)

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"

    @property
    def redis_url(self) -> str | None:
        return None if self.redis_port is None else f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def gw_pids(self) -> list[int]:
        return [proc.pid for proc in self.gateways]

    @property
    def gw_pid(self) -> int:
        assert self.gateways
        return self.gateways[0].pid

    @property
    def mock_pid(self) -> int:
        assert self.mock is not None
        return self.mock.pid

    @property
    def redis_pid(self) -> int:
        assert self.redis is not None
        return self.redis.pid

    def stream_url(self, scan_id: str, replica: int = 0) -> str:
        return f"{self.gw_url(replica)}{API}/{scan_id}/stream"

    def publish_url(self, scan_id: str) -> str:
        return f"{self.mock_url}/bench/{scan_id}/publish"

    def finish_url(self, scan_id: str) -> str:
        return f"{self.mock_url}/bench/{scan_id}/finish"

    # -- lifecycle
    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log_file = open(self.logdir / f"{self.tag}-{name}.log", "wb")  # noqa: SIM115
        self.logs.append(log_file)
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_raise_nofile,
            start_new_session=True,
        )

    def _config(self, replica: int) -> dict[str, Any]:
        config: dict[str, Any] = {
            "server": {
                "host": "127.0.0.1",
                "port": self.gw_ports[replica],
                "shutdown_grace_seconds": 3,
            },
            "database": {"path": str(self.tmp / f"gateway-{replica}.db")},
            "jwt": {"secret": self.secret},
            "scanners": {name: f"{self.mock_url}/scanners/{name}/scan" for name in SCANNERS},
            "limits": {
                "max_running_scans": 2000,
                "max_running_scans_per_subject": 2000,
                "max_streams_per_subject": 50_000,
            },
            # A scenario may take a while to connect its subscribers before publishing.
            "upstream": {"idle_timeout_seconds": 3600, "scan_timeout_seconds": 7200},
            "logging": {"level": "WARNING"},
            "readiness": {"check_scanners": False},
        }
        if self.redis_url:
            config["backend"] = "redis"
            config["redis"] = {"url": self.redis_url, "key_prefix": "xployt-bench:"}
        return config

    def start(self) -> Stack:
        if self.redis_port is not None:
            self.redis = self._spawn("redis", redis_server_cmd(self.redis_port, self.tmp))
            wait_redis(self.redis_port, self.redis)
        self.config_paths = []
        for replica in range(len(self.gw_ports)):
            path = self.tmp / f"gateway-{replica}.yaml"  # JSON is YAML
            path.write_text(json.dumps(self._config(replica), indent=1))
            self.config_paths.append(path)
        self.config_path = self.config_paths[0]
        self.mock = self._spawn(
            "mock", [PY, str(ROOT / "bench" / "mock_server.py"), "--port", str(self.mock_port)]
        )
        wait_http(f"{self.mock_url}/healthz", self.mock)
        if self.snapshots is not None:
            cmd = [PY, str(ROOT / "bench" / "gateway_traced.py"), str(self.snapshots)]
        else:
            cmd = [PY, "-m", "gateway"]
        for replica, path in enumerate(self.config_paths):
            name = "gateway" if len(self.config_paths) == 1 else f"gateway-{replica}"
            self.gateways.append(self._spawn(name, [*cmd, "--config", str(path)]))
        for replica, proc in enumerate(self.gateways):
            wait_http(f"{self.gw_url(replica)}/healthz", proc)
        minted = subprocess.run(
            [
                PY,
                "-m",
                "gateway",
                "token",
                "--sub",
                "bench",
                "--ttl",
                "7200",
                "--config",
                str(self.config_path),
            ],
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        self.token = minted.stdout.strip()
        return self

    def stop(self) -> None:
        # Every step runs even if one before it fails; in this order: the gateways (on shutdown
        # they write their scans' last events), the mock, Redis, then the logs and files.
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, self.tmp, ignore_errors=True)
            for log_file in self.logs:
                cleanup.callback(log_file.close)
            cleanup.callback(stop_process, self.redis)
            cleanup.callback(stop_process, self.mock)
            for proc in reversed(self.gateways):
                cleanup.callback(stop_process, proc)

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- scans
    def create_scan(self, **knobs: Any) -> str:
        body = {
            "repository_name": "bench/repo",
            "scanner_name": SCANNER,
            "configurations": {"bench": True, **knobs},
        }
        status, answer = http("POST", f"{self.gw}{API}/?use_sse=true", body, self.auth)
        if status != 201:
            raise RuntimeError(f"POST scan answered {status}: {answer!r}")
        scan_id: str = answer["data"]["scan_id"]
        return scan_id

    def scan(self, scan_id: str) -> dict[str, Any]:
        status, answer = http("GET", f"{self.gw}{API}/{scan_id}", headers=self.auth)
        if status != 200:
            raise RuntimeError(f"GET scan answered {status}: {answer!r}")
        data: dict[str, Any] = answer["data"]
        return data

    def wait_scans(
        self, scan_ids: Sequence[str], done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> float:
        """Poll until ``done`` holds for every scan; returns the seconds it took."""
        start = time.monotonic()
        waiting = list(scan_ids)
        while waiting:
            waiting = [sid for sid in waiting if not done(self.scan(sid))]
            if not waiting:
                break
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"{len(waiting)} scan(s) not ready after {timeout:g} s")
            time.sleep(0.05)
        return time.monotonic() - start

    def finish(self, scan_id: str) -> None:
        with contextlib.suppress(OSError):
            http("POST", self.finish_url(scan_id))


def scanning(scan: dict[str, Any]) -> bool:
    if scan["status"] in ("failed", "cancelled", "completed"):
        raise RuntimeError(f"scan ended {scan['status']}: {scan.get('error')}")
    return bool(scan["status"] == "scanning")


# --------------------------------------------------------------------------- loadgen runs


@dataclass
class LoadSpec:
    label: str
    sub_url: str
    n: int
    events: int
    rate: float
    headers: list[str] = field(default_factory=list)
    pub_url: str | None = None
    # instead of pub_url: a command fed one payload per line, on the same schedule (e.g. a
    # sink, for subscribers whose events another loadgen publishes)
    pub_pipe: str | None = None
    raw_out: Path | None = None
    hold: float = 0.0  # with no publisher: hold the connections this long after GO

    @property
    def publishes(self) -> bool:
        return bool(self.pub_url or self.pub_pipe)


@dataclass
class LoadRun:
    results: list[dict[str, Any]]
    t_ready: float
    t_go: float
    t_end: float
    stderr: list[list[str]]


def _loadgen_cmd(spec: LoadSpec, connect_timeout: float, drain: float) -> list[str]:
    cmd = [str(H.LOADGEN), "--url", spec.sub_url, "-n", str(spec.n), "-E", str(spec.events)]
    cmd += ["-R", f"{spec.rate:g}", "--size", "150", "--connect-timeout", f"{connect_timeout:g}"]
    cmd += ["--drain", f"{drain:g}", "--wait-go", "--go-timeout", "120", "--label", spec.label]
    cmd += ["--max-time", f"{connect_timeout + 120 + spec.events / spec.rate + drain + 30:g}"]
    for header in spec.headers:
        cmd += ["-H", header]
    if spec.pub_url:
        cmd += ["--pub-url", spec.pub_url, "--pub-body", "{{DATA}}", "--pub-concurrency", "64"]
    elif spec.pub_pipe:
        cmd += ["--pub-pipe", spec.pub_pipe]
    else:
        cmd += ["--no-pub", "--hold", f"{spec.hold:g}"]
    if spec.raw_out:
        cmd += ["--raw-out", str(spec.raw_out)]
    return cmd


def run_loadgens(
    specs: Sequence[LoadSpec],
    *,
    connect_timeout: float = 30.0,
    drain: float = 5.0,
    on_ready: Callable[[], None] | None = None,
    on_go: Callable[[], None] | None = None,
) -> LoadRun:
    """Start every loadgen, wait until all are connected, send GO to all at once, collect."""
    procs: list[subprocess.Popen[str]] = []
    ready = [threading.Event() for _ in specs]
    failed: list[str] = []
    errs: list[list[str]] = [[] for _ in specs]

    def reader(i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            errs[i].append(line)
            if line.startswith("READY"):
                ready[i].set()
            elif line.startswith(("CONNECT_TIMEOUT", "sseload:")):
                failed.append(line.strip())
                ready[i].set()
        ready[i].set()

    try:
        for i, spec in enumerate(specs):
            proc = subprocess.Popen(
                _loadgen_cmd(spec, connect_timeout, drain),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
            threading.Thread(target=reader, args=(i, proc), daemon=True).start()
        deadline = time.monotonic() + connect_timeout + 30
        for event in ready:
            event.wait(max(0.0, deadline - time.monotonic()))
        if failed or not all(event.is_set() for event in ready):
            raise RuntimeError(f"loadgen did not connect: {(failed or ['timeout'])[0]}")
        t_ready = time.monotonic()
        if on_ready:
            on_ready()
        t_go = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        if on_go:
            on_go()
        longest = max(s.events / s.rate if s.publishes else s.hold for s in specs)
        deadline = time.monotonic() + longest + drain + 90
        results = []
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.stdout is not None
            out = proc.stdout.read()
            parsed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            if not parsed:
                raise RuntimeError("a loadgen printed no result")
            results.append(parsed[-1])
        return LoadRun(results, t_ready, t_go, time.monotonic(), errs)
    finally:
        for proc in procs:
            if proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            stop_process(proc, timeout=5)


def raw_events(path: Path) -> list[tuple[int, int, int]]:
    """A loadgen --raw-out file: per event (by seq), its deliveries and their min and max
    latency (µs)."""
    out: list[tuple[int, int, int]] = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        _, count, low, high = (int(x) for x in line.split("\t"))
        out.append((count, low, high))
    return out


def raw_latencies(path: Path) -> list[float]:
    """Every delivery's latency (ms) from a loadgen --raw-out file with at most 2 subscribers:
    per event it holds the count and the min and max latency, i.e. each sample."""
    out: list[float] = []
    for count, low, high in raw_events(path):
        if count >= 1:
            out.append(low / 1000)
        if count >= 2:
            out.append(high / 1000)
        if count > 2:
            raise ValueError("raw files give every sample only for at most 2 subscribers")
    return out


class Meters:
    """CPU and RSS of named processes (each with its children), sampled every 0.2 s by the
    harness's Sampler around one loadgen run: RSS at start (base), after all subscribers
    connected (idle, by ``at_ready``) and its peak; CPU over the active window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.samplers = {name: H.Sampler([pid]) for name, pid in pids.items()}
        self.base = {name: s.sample() for name, s in self.samplers.items()}
        self.idle: dict[str, Any] = {}
        for sampler in self.samplers.values():
            sampler.start()

    def __enter__(self) -> Meters:
        return self

    def __exit__(self, *_exc: object) -> None:
        for sampler in self.samplers.values():
            sampler.stop_ev.set()

    def at_ready(self) -> None:
        time.sleep(1.0)
        self.idle.update({name: s.sample() for name, s in self.samplers.items()})

    def figures(self, t_go: float, t_act: float, t_end: float) -> dict[str, Any]:
        """``<name>_cpu_pct`` over [t_go, t_act], ``<name>_rss_{base,idle,peak}_mib`` and the
        machine's ``box_cpu_pct``."""
        out: dict[str, Any] = {}
        for name, sampler in self.samplers.items():
            out[f"{name}_cpu_pct"] = _r(sampler.cpu_pct(t_go, t_act), 1)
            out[f"{name}_rss_base_mib"] = round(self.base[name][2] / MiB, 1)
            if name in self.idle:
                out[f"{name}_rss_idle_mib"] = round(self.idle[name][2] / MiB, 1)
            out[f"{name}_rss_peak_mib"] = round(sampler.peak(t_go, t_end)[0] / MiB, 1)
        first = next(iter(self.samplers.values()))
        out["box_cpu_pct"] = _r(first.box_pct(t_go, t_act), 1)
        return out


def active_window(results: Sequence[dict[str, Any]]) -> float:
    """Seconds from GO to the last delivery or the end of publishing, whichever is later."""
    active = max(max(r.get("last_delivery_s") or 0, r.get("pub_total_s") or 0) for r in results)
    return max(active, 0.5)


def lg_cpu_s(result: dict[str, Any]) -> float:
    """A loadgen's CPU over its publishing window: subscriber process plus publisher."""
    return float(result.get("lg_cpu_window_s", 0) + result.get("pub_cpu_s", 0))


def load_totals(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The subscriber side of several loadgens together."""
    expected = sum(r["expected"] for r in results)
    delivered = sum(r["delivered"] for r in results)
    return {
        "established": sum(r["established"] for r in results),
        "expected": expected,
        "delivered": delivered,
        "loss_pct": round(100 * (expected - min(delivered, expected)) / expected, 4)
        if expected
        else None,
        "disconnects": sum(r.get("disconnects", 0) for r in results),
    }


# --------------------------------------------------------------------------- fan-out


def parse_scenario(spec: str) -> tuple[int, float, float]:
    n, r, s = spec.lower().split("x")
    return int(n), float(r), float(s)


def failed_row(server: str, spec: str, error: str) -> dict[str, Any]:
    """The result row of a scenario that produced no figures."""
    n, rate, seconds = parse_scenario(spec)
    return {
        "server": server,
        "scenario": spec,
        "n": n,
        "rate": rate,
        "seconds": seconds,
        "events": int(rate * seconds),
        "status": "error",
        "error": error,
    }


def fanout(shared: Path, spec: str, logdir: Path) -> dict[str, Any]:
    """One harness scenario against a fresh gateway, one bench scan."""
    seconds = parse_scenario(spec)[2]
    tag = f"fanout-{spec}"
    with Stack(tag, logdir) as stack:
        scan_id = stack.create_scan()
        stack.wait_scans([scan_id], scanning, 30)
        prefix = f"xployt-gateway-{spec}"
        cmd = [PY, str(shared / "ssebench.py"), "run", "--no-start"]
        cmd += ["--pid", str(stack.gw_pid), "--name", "xployt-gateway"]
        cmd += [
            "--sub-url",
            stack.stream_url(scan_id),
            "-H",
            f"Authorization: Bearer {stack.token}",
        ]
        cmd += ["--pub-url", stack.publish_url(scan_id), "--pub-body", "{{DATA}}"]
        cmd += ["--scenarios", spec, "--prefix", prefix]
        (logdir / f"{tag}-harness.cmd").write_text(
            " ".join(_quote(c) for c in cmd).replace(stack.token, "$TOKEN") + "\n"
        )
        started = time.time()
        mock0, t0 = proc_ticks(stack.mock_pid), time.monotonic()
        steal0 = steal_jiffies()
        subprocess.run(cmd, check=False, timeout=seconds + 400)
        steal = steal_pct(steal0)
        mock_cpu_s = (proc_ticks(stack.mock_pid) - mock0) / H.CLK_TCK
        wall = time.monotonic() - t0
        stack.finish(scan_id)
        found = sorted(
            (p for p in H.RESULTS.glob(f"{prefix}-*.json") if p.stat().st_mtime >= started),
            key=lambda p: p.stat().st_mtime,
        )
        if not found:
            return failed_row("xployt-gateway", spec, "the harness wrote no result")
        data = json.loads(found[-1].read_text())
        row: dict[str, Any] = data["rows"][-1]
        row["harness_json"] = str(found[-1])
        row["harness_meta"] = data["meta"]
        row["mock_cpu_s"] = round(mock_cpu_s, 2)
        row["steal_pct"] = steal
        row["harness_wall_s"] = round(wall, 1)
        active = row.get("active_window_s")
        if active:
            # The mock works only while events are published: its CPU over the active window.
            row["mock_cpu_pct_est"] = round(100 * mock_cpu_s / active, 1)
        return row


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


# --------------------------------------------------------------------------- first event


async def _first_events(stack: Stack, count: int, limit: float) -> dict[str, Any]:
    body = {
        "repository_name": "bench/repo",
        "scanner_name": SCANNER,
        "configurations": {"bench": True},
    }
    post_ms: list[float] = []
    headers_ms: list[float] = []
    first_ms: list[float] = []
    errors: Counter[str] = Counter()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    client_timeout = aiohttp.ClientTimeout(total=limit)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        for _ in range(count):
            t_send = time.perf_counter()
            async with session.post(
                f"{stack.gw}{API}/?use_sse=true", json=body, headers=stack.auth
            ) as response:
                answer = await response.json()
            t_back = time.perf_counter()
            if response.status != 201:
                errors[f"POST {response.status}"] += 1
                continue
            scan_id = answer["data"]["scan_id"]
            post_ms.append((t_back - t_send) * 1000)
            try:
                async with (
                    asyncio.timeout(limit),
                    session.get(stack.stream_url(scan_id), headers=stack.auth) as stream,
                ):
                    headers_ms.append((time.perf_counter() - t_back) * 1000)
                    async for line in stream.content:
                        if line.startswith(b"data:"):
                            event = json.loads(line[5:])
                            if event["status"] not in NOT_STARTED:
                                first_ms.append((time.perf_counter() - t_back) * 1000)
                                if event["status"] != "scanning":
                                    errors[f"first status {event['status']}"] += 1
                                break
            except TimeoutError:
                errors["timeout"] += 1
            async with session.post(stack.finish_url(scan_id)) as done:
                await done.read()
    wall = time.perf_counter() - wall0
    return {
        "scans": count,
        "measured": len(first_ms),
        "errors": dict(errors),
        "first_event_ms": summary_ms(first_ms),
        "post_rtt_ms": summary_ms(post_ms),
        "stream_headers_ms": summary_ms(headers_ms),
        "client_cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
        "wall_s": round(wall, 2),
    }


def first_event(logdir: Path, count: int, profile: Path | None = None) -> dict[str, Any]:
    with Stack("first-event", logdir) as stack:
        sampler = H.Sampler([stack.gw_pid])
        sampler.sample()
        sampler.start()
        spy = start_pyspy(stack.gw_pid, 10, profile) if profile else None
        t0 = time.monotonic()
        try:
            result = asyncio.run(_first_events(stack, count, 10.0))
        finally:
            sampler.stop_ev.set()
        t1 = time.monotonic()
        result["srv_cpu_pct"] = _r(sampler.cpu_pct(t0, t1), 1)
        if spy:
            result["profile"] = finish_pyspy(spy, profile)
        return result


# --------------------------------------------------------------------------- replay


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


def replay(logdir: Path, events: int, readers: int, profile: Path | None = None) -> dict[str, Any]:
    with Stack("replay", logdir) as stack:
        scan_id = stack.create_scan()
        stack.wait_scans([scan_id], scanning, 30)
        gw0 = proc_ticks(stack.gw_pid)
        t0 = time.monotonic()
        published = asyncio.run(_publish_many(stack.publish_url(scan_id), events))
        total = EVENTS_BEFORE_PUBLISH + events
        stack.wait_scans([scan_id], lambda s: s["last_event_id"] >= total, 300)
        ingest_s = time.monotonic() - t0
        ingest_cpu = (proc_ticks(stack.gw_pid) - gw0) / H.CLK_TCK
        stack.finish(scan_id)
        stack.wait_scans([scan_id], lambda s: s["status"] == "completed", 60)
        stored = stack.scan(scan_id)["last_event_id"]
        spy = start_pyspy(stack.gw_pid, 10, profile) if profile else None
        reads: list[dict[str, Any]] = []
        deadline = time.monotonic() + (10 if profile else 0)
        while len(reads) < readers or time.monotonic() < deadline:
            ticks0, t_read = proc_ticks(stack.gw_pid), time.monotonic()
            read = asyncio.run(_read_stream(stack.stream_url(scan_id), stack.auth))
            elapsed = time.monotonic() - t_read
            read["srv_cpu_pct"] = round(
                100 * (proc_ticks(stack.gw_pid) - ticks0) / H.CLK_TCK / elapsed, 1
            )
            reads.append(read)
            if len(reads) >= 200:
                break
        rates = sorted(r["events_per_s"] for r in reads if r["events_per_s"])
        result = {
            "events_published": events,
            "events_stored": stored,
            "publish": {**published, "seconds": round(published["seconds"], 2)},
            "ingest_s": round(ingest_s, 2),
            "ingest_events_per_s": round(events / ingest_s, 0),
            "ingest_srv_cpu_pct": round(100 * ingest_cpu / ingest_s, 1),
            "reads": reads[:readers] if not profile else reads,
            "events_per_s_median": pct(rates, 50),
            "events_per_s_best": rates[-1] if rates else None,
            "complete": all(r["events"] == stored for r in reads),
        }
        if spy:
            result["profile"] = finish_pyspy(spy, profile)
        return result


# --------------------------------------------------------------------------- pipeline


def pipeline(
    logdir: Path,
    scans: int,
    rate: float,
    seconds: float,
    *,
    baseline: bool = False,
    profile: Path | None = None,
) -> dict[str, Any]:
    """K scans x R ev/s, subscribers alternating 2, 1, 2, ... per scan; one loadgen per scan.

    ``baseline``: the same load on the harness's aiohttp-sse server (one channel per scan).
    """
    rawdir = logdir / f"pipeline-{'baseline-' if baseline else ''}{scans}"
    shutil.rmtree(rawdir, ignore_errors=True)
    rawdir.mkdir(parents=True)
    subs = [2 if i % 2 == 0 else 1 for i in range(scans)]
    events = round(rate * seconds)
    server: Any = None
    stack: Stack | None = None
    try:
        if baseline:
            port = free_port(set())
            target = {
                "name": "aiohttp-sse",
                "procs": [
                    {
                        "name": "aiohttp",
                        "cwd": "{bench}/servers",
                        "cmd": f"exec {{venv_py}} py_aiohttp.py --port {port}",
                    }
                ],
                "wait_ports": [port],
            }
            server = H.Server(target, logdir, f"pipeline-baseline-{scans}")
            server.start()
            pids = {"server": server.procs[0].pid}
            specs = [
                LoadSpec(
                    f"baseline/{i}",
                    f"http://127.0.0.1:{port}/sub/scan{i}",
                    subs[i],
                    events,
                    rate,
                    pub_url=f"http://127.0.0.1:{port}/pub/scan{i}",
                    raw_out=rawdir / f"{i}.raw",
                )
                for i in range(scans)
            ]
        else:
            stack = Stack(f"pipeline-{scans}", logdir).start()
            # The mock stamps `t` as it writes each event upstream: latency is then the
            # gateway's own, from the scanner's emit to the subscriber (target d).
            scan_ids = [stack.create_scan(stamp_emit=True) for _ in range(scans)]
            stack.wait_scans(scan_ids, scanning, 60)
            pids = {"server": stack.gw_pid, "mock": stack.mock_pid}
            specs = [
                LoadSpec(
                    f"gateway/{i}",
                    stack.stream_url(sid),
                    subs[i],
                    events,
                    rate,
                    headers=[f"Authorization: Bearer {stack.token}"],
                    pub_url=stack.publish_url(sid),
                    raw_out=rawdir / f"{i}.raw",
                )
                for i, sid in enumerate(scan_ids)
            ]
        spy: list[Any] = []

        def at_go() -> None:
            if profile:
                spy.append(start_pyspy(pids["server"], 10, profile))

        with Meters(pids) as meters:
            run = run_loadgens(specs, on_ready=meters.at_ready, on_go=at_go)
        if stack is not None:
            for sid in scan_ids:
                stack.finish(sid)
        latencies = sorted(lat for i in range(scans) for lat in raw_latencies(rawdir / f"{i}.raw"))
        res = run.results
        active = active_window(res)
        out: dict[str, Any] = {
            "server": "aiohttp-sse (baseline)" if baseline else "xployt-gateway",
            "scans": scans,
            "subscribers": sum(subs),
            "rate_per_scan": rate,
            "seconds": seconds,
            **load_totals(res),
            "published": sum(r.get("published", 0) for r in res),
            "pub_errors": sum(r.get("pub_errors", 0) for r in res),
            "latency_ms": summary_ms(latencies),
            "worst_scan_sched_p99_ms": max(
                (r.get("latency_from_schedule_ms") or {}).get("p99") or 0 for r in res
            ),
            "pub_rtt_p99_ms_worst": max((r.get("pub_rtt_ms") or {}).get("p99") or 0 for r in res),
            "active_window_s": round(active, 2),
            "lg_processes": len(res) * 2,
            "lg_cpu_pct": round(100 * sum(lg_cpu_s(r) for r in res) / active, 1),
            **meters.figures(run.t_go, run.t_go + active, run.t_end),
        }
        if spy and profile:
            out["profile"] = finish_pyspy(spy[0], profile)
        return out
    finally:
        if stack is not None:
            stack.stop()
        if server is not None:
            server.stop()


# --------------------------------------------------------------------------- replicas

# The loadgen on replica B: its subscribers get the events replica A's loadgen publishes, so its
# own publisher only keeps the same schedule (E events at R/s, into a sink): the loadgen still
# expects E events per subscriber and measures latency from the stamp ``t`` in each event (its
# "sched" latency counts from its own schedule, which starts with A's: GO goes to both at once).
SINK_PUBLISHER = "exec cat >/dev/null"
REPLICA_NAMES = ("a", "b")


def merged_latency(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Latency over the deliveries of several loadgens, from their JSON.

    The loadgen reports percentiles, not samples (its ``--raw-out`` keeps per event only the
    min and max), so samples, mean and max are exact, and each percentile of the union is given
    as the range between the loadgens' own: the union's lies within it (to one rank)."""
    parts = [r["latency_ms"] for r in results if (r.get("latency_ms") or {}).get("samples")]
    samples = sum(int(p["samples"]) for p in parts)
    out: dict[str, Any] = {
        "samples": samples,
        "exact": len(parts) <= 1,
        "mean": _r(sum(p["mean"] * p["samples"] for p in parts) / samples) if samples else None,
        "max": max((p["max"] for p in parts), default=None),
    }
    for key in ("p50", "p90", "p99"):
        values = [p[key] for p in parts]
        out[f"{key}_range"] = [min(values), max(values)] if values else None
        out[key] = max(values, default=None)  # the upper bound: what a verdict may rely on
    return out


def merged_all_n(raw_files: Sequence[Path], established: int) -> dict[str, Any]:
    """Per event, the time until the last of all subscribers (over every loadgen) had it:
    exact, from the loadgens' --raw-out files (per event: deliveries, min and max latency)."""
    per_file = [raw_events(path) for path in raw_files]
    full: list[float] = []
    for rows in zip(*per_file, strict=True):
        if established and sum(count for count, _, _ in rows) >= established:
            full.append(max(high for _, _, high in rows) / 1000)
    v = sorted(full)
    return {
        "events": len(v),
        "p50": _r(pct(v, 50)),
        "p99": _r(pct(v, 99)),
        "max": _r(v[-1] if v else None),
    }


def redis_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        found = re.search(r"v=(\S+)", out)
        return found.group(1) if found else out.strip()
    return None


def replicas(logdir: Path, spec: str) -> dict[str, Any]:
    """Two gateway replicas sharing one Redis: one bench scan POSTed on replica A, N/2
    subscribers on A's stream and N/2 on B's; one loadgen per replica, GO to both at once. A's
    loadgen publishes through the mock scanner; B's keeps the same schedule into a sink."""
    n, rate, seconds = parse_scenario(spec)
    events = round(rate * seconds)
    tag = f"replicas-{spec}"
    rawdir = logdir / tag
    shutil.rmtree(rawdir, ignore_errors=True)
    rawdir.mkdir(parents=True)
    halves = (n - n // 2, n // 2)
    with Stack(tag, logdir, replicas=2, redis=True) as stack:
        scan_id = stack.create_scan()
        stack.wait_scans([scan_id], scanning, 30)
        specs = [
            LoadSpec(
                f"replicas/{name}",
                stack.stream_url(scan_id, i),
                halves[i],
                events,
                rate,
                headers=[f"Authorization: Bearer {stack.token}"],
                pub_url=stack.publish_url(scan_id) if i == 0 else None,
                pub_pipe=None if i == 0 else SINK_PUBLISHER,
                raw_out=rawdir / f"{name}.raw",
            )
            for i, name in enumerate(REPLICA_NAMES)
        ]
        pids = dict(zip([f"gateway_{name}" for name in REPLICA_NAMES], stack.gw_pids, strict=True))
        pids |= {"redis": stack.redis_pid, "mock": stack.mock_pid}
        steal0: list[tuple[int, int]] = []
        with Meters(pids) as meters:
            run = run_loadgens(
                specs, on_ready=meters.at_ready, on_go=lambda: steal0.append(steal_jiffies())
            )
        steal = steal_pct(steal0[0])
        stack.finish(scan_id)
    res = run.results
    active = active_window(res)
    totals = load_totals(res)
    figures = meters.figures(run.t_go, run.t_go + active, run.t_end)
    per_replica = []
    for name, load, r in zip(REPLICA_NAMES, specs, res, strict=True):
        per_replica.append(
            {
                "replica": name.upper(),
                "publishes": load.pub_url is not None,
                "n": load.n,
                **load_totals([r]),
                "dups": r.get("dups"),
                "out_of_order": r.get("out_of_order"),
                "stray": r.get("stray"),
                "latency_ms": r.get("latency_ms"),
                "sched_p99_ms": (r.get("latency_from_schedule_ms") or {}).get("p99"),
                "connect_s": r.get("connect_s"),
                "lg_cpu_pct": round(100 * lg_cpu_s(r) / active, 1),
                "srv_cpu_pct": figures[f"gateway_{name}_cpu_pct"],
                "srv_rss_base_mib": figures[f"gateway_{name}_rss_base_mib"],
                "srv_rss_idle_mib": figures.get(f"gateway_{name}_rss_idle_mib"),
                "srv_rss_peak_mib": figures[f"gateway_{name}_rss_peak_mib"],
            }
        )
    publisher = res[0]
    return {
        "server": "xployt-gateway x2 (backend redis)",
        "scenario": spec,
        "n": n,
        "rate": rate,
        "seconds": seconds,
        "events": events,
        "status": "ok",
        "redis_version": redis_version(),
        **totals,
        "published": publisher.get("published"),
        "pub_errors": publisher.get("pub_errors"),
        "pub_rate_achieved": publisher.get("pub_rate_achieved"),
        "latency_ms": merged_latency(res),
        "sched_p99_ms_worst": max(
            (r.get("latency_from_schedule_ms") or {}).get("p99") or 0 for r in res
        ),
        "fanout_all_ms": merged_all_n(
            [s.raw_out for s in specs if s.raw_out], totals["established"]
        ),
        "active_window_s": round(active, 2),
        "steal_pct": steal,
        "per_replica": per_replica,
        **figures,
        "loadgens": res,
    }


# --------------------------------------------------------------------------- profiles


def pyspy_bin() -> str:
    found = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    if not found:
        sys.exit("bench: --profile needs py-spy (.venv/bin/pip install py-spy)")
    return found


def start_pyspy(pid: int, seconds: float, out: Path | None) -> subprocess.Popen[bytes]:
    assert out is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [pyspy_bin(), "record", "--pid", str(pid), "--duration", f"{seconds:g}"]
    # Blocking mode (py-spy pauses the process for each sample): non-blocking sampling of a
    # busy event loop gives torn stacks.
    cmd += ["--rate", "100", "--format", "raw", "--output", str(out)]
    cmd += ["--idle", "--threads"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_pyspy(proc: subprocess.Popen[bytes], out: Path | None) -> dict[str, Any]:
    assert out is not None
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        return {"error": "py-spy did not finish"}
    if proc.returncode != 0 or not out.exists():
        return {"error": (err or b"").decode(errors="replace")[-500:]}
    summary = summarize_folded(out)
    out.with_suffix(".summary.txt").write_text(format_profile(summary))
    return {"raw": str(out), "summary": str(out.with_suffix(".summary.txt")), **summary}


_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# A thread whose innermost frame is one of these is waiting, not working.
_IDLE = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("time.py", "sleep"),
}
_THIRD_PARTY = Path(sysconfig.get_paths()["purelib"])


def _aiosqlite_wait_line() -> str:
    """aiosqlite's worker threads block in ``tx.get()`` (C code): that line is their idle leaf."""
    with contextlib.suppress(OSError):
        source = (_THIRD_PARTY / "aiosqlite" / "core.py").read_text().splitlines()
        for number, text in enumerate(source, 1):
            if "tx.get()" in text:
                return f"_connection_worker_thread (aiosqlite/core.py:{number})"
    return "?"


_AIOSQLITE_IDLE = _aiosqlite_wait_line()


def _parse_frame(frame: str) -> tuple[str, str]:
    """(function, file as py-spy prints it, e.g. ``gateway/hub.py`` or ``asyncio/queues.py``)."""
    m = _FRAME.match(frame)
    if not m:
        return frame, "?"
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return m.group("func"), path


def _owner(path: str) -> str | None:
    """Who a frame's file belongs to: ``gateway/...``, a third-party package, or None (stdlib)."""
    if path.startswith("gateway/"):
        return path
    top = path.split("/", 1)[0]
    if "/" in path and (_THIRD_PARTY / top).is_dir():
        return top
    return None


def summarize_folded(path: Path, top: int = 25) -> dict[str, Any]:
    """Shares of py-spy's folded stacks (recorded with --idle --threads): per thread, and for the
    event-loop thread per function (self and inclusive), per innermost gateway function and per
    innermost non-stdlib owner, over the samples in which that thread was busy."""
    threads: Counter[str] = Counter()
    busy_threads: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    gateway_fn: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    main_thread: str | None = None
    rows: list[tuple[str, list[tuple[str, str]], str, int]] = []
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        thread = frames[0] if frames and frames[0].startswith("thread ") else "?"
        code = [_parse_frame(f) for f in frames if not f.startswith("thread ")]
        rows.append((thread, code, frames[-1] if frames else "", int(count_text)))
        if main_thread is None and "MainThread" in thread:
            main_thread = thread
    for thread, code, leaf, count in rows:
        threads[thread] += count
        if (
            not code
            or (Path(code[-1][1]).name, code[-1][0].rsplit(".", 1)[-1]) in _IDLE
            or leaf.endswith(_AIOSQLITE_IDLE)
        ):
            continue
        busy_threads[thread] += count
        if thread != main_thread:
            continue
        selfs[f"{code[-1][0]} ({code[-1][1]})"] += count
        for func, file in set(code):
            inclusive[f"{func} ({file})"] += count
        mine = [f"{func} ({file})" for func, file in code if file.startswith("gateway/")]
        # The innermost gateway function, below the server's own entry points.
        inner = [f for f in mine if "gateway/__main__.py" not in f]
        gateway_fn[inner[-1] if inner else "(no gateway frame: aiohttp/asyncio only)"] += count
        owner = next((o for _, file in reversed(code) if (o := _owner(file))), "stdlib only")
        owners[owner] += count
    busy = busy_threads.get(main_thread or "?", 0)
    total_main = threads.get(main_thread or "?", 0)

    def shares(counter: Counter[str], skip_above: float = 101.0) -> list[tuple[str, float]]:
        if not busy:
            return []
        out = [(name, round(100 * n / busy, 1)) for name, n in counter.most_common()]
        return [(name, share) for name, share in out if share < skip_above][:top]

    return {
        "samples": sum(threads.values()),
        "main_thread": main_thread,
        "main_thread_busy_pct": round(100 * busy / total_main, 1) if total_main else None,
        "threads_busy_samples": {t: busy_threads[t] for t in threads},
        "threads_samples": dict(threads),
        "self": shares(selfs),
        # the entry-point frames (run_app, run_forever, ...) are on every stack: left out
        "inclusive": shares(inclusive, skip_above=95.0),
        "innermost_gateway_function": shares(gateway_fn),
        "innermost_owner": shares(owners),
    }


def format_profile(summary: dict[str, Any]) -> str:
    lines = [
        f"samples: {summary['samples']}; event-loop thread {summary['main_thread']}: busy in "
        f"{summary['main_thread_busy_pct']} % of its samples (the rest waiting in select)",
        "threads (busy / all samples): "
        + ", ".join(
            f"{t}: {summary['threads_busy_samples'][t]}/{n}"
            for t, n in summary["threads_samples"].items()
        ),
        "",
        "event loop, self time (% of its busy samples):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["self"]),
        "",
        "event loop, inclusive time (function anywhere on the stack; % of busy samples):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["inclusive"]),
        "",
        "event loop, by innermost gateway function (% of busy samples):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["innermost_gateway_function"]),
        "",
        "event loop, by innermost non-stdlib owner (gateway module or package; % of busy):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["innermost_owner"]),
    ]
    return "\n".join(lines) + "\n"


def profile_fanout(logdir: Path, n: int, rate: float, seconds: float, out: Path) -> dict[str, Any]:
    with Stack(f"profile-fanout-{n}", logdir) as stack:
        scan_id = stack.create_scan()
        stack.wait_scans([scan_id], scanning, 30)
        spy: list[Any] = []
        spec = LoadSpec(
            f"profile/{n}",
            stack.stream_url(scan_id),
            n,
            int(rate * seconds),
            rate,
            headers=[f"Authorization: Bearer {stack.token}"],
            pub_url=stack.publish_url(scan_id),
        )
        run = run_loadgens(
            [spec], on_go=lambda: spy.append(start_pyspy(stack.gw_pid, min(seconds, 10), out))
        )
        stack.finish(scan_id)
        result = finish_pyspy(spy[0], out)
        g = run.results[0]
        result["load"] = {
            k: g.get(k)
            for k in (
                "established",
                "delivered",
                "expected",
                "loss_pct",
                "latency_ms",
                "disconnects",
            )
        }
        return result


def profile_memory(logdir: Path, n: int, out: Path) -> dict[str, Any]:
    """tracemalloc snapshots of the gateway with no stream and with N idle streams."""
    snapdir = out.parent / f"{out.stem}-snapshots"
    shutil.rmtree(snapdir, ignore_errors=True)
    import tracemalloc

    def snap(stack: Stack, k: int) -> tracemalloc.Snapshot:
        os.kill(stack.gw_pid, signal.SIGUSR1)
        done = snapdir / f"snapshot-{k}.done"
        deadline = time.monotonic() + 120
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return tracemalloc.Snapshot.load(str(snapdir / f"snapshot-{k}.pickle"))

    with Stack(f"profile-memory-{n}", logdir, snapshots=snapdir) as stack:
        scan_id = stack.create_scan()
        stack.wait_scans([scan_id], scanning, 30)
        snaps: list[Any] = []
        rss: list[int] = []

        def at_ready() -> None:
            time.sleep(1.0)
            rss.append(H.proc_stat(stack.gw_pid)[2])
            snaps.append(snap(stack, 2))

        rss.append(H.proc_stat(stack.gw_pid)[2])
        snaps.append(snap(stack, 1))
        spec = LoadSpec(
            f"memory/{n}",
            stack.stream_url(scan_id),
            n,
            0,
            1.0,
            headers=[f"Authorization: Bearer {stack.token}"],
            hold=0.5,
        )
        run = run_loadgens([spec], on_ready=at_ready)
        stack.finish(scan_id)
    est = run.results[0]["established"]
    before, after = snaps
    stats = after.compare_to(before, "traceback")
    by_line = after.compare_to(before, "lineno")
    grown = sum(s.size_diff for s in by_line)
    lines = [
        f"gateway RSS: {rss[0] / MiB:.1f} MiB with no stream, {rss[1] / MiB:.1f} MiB with "
        f"{est} idle streams (tracemalloc on, which adds its own overhead): "
        f"{(rss[1] - rss[0]) / 1024 / max(est, 1):.1f} KiB per stream",
        f"Python heap growth traced by tracemalloc: {grown / MiB:.1f} MiB = "
        f"{grown / 1024 / max(est, 1):.2f} KiB per stream",
        "",
        "top allocation sites by growth (KiB per stream, count per stream):",
    ]
    for stat in by_line[:25]:
        frame = stat.traceback[0]
        lines.append(
            f"  {stat.size_diff / 1024 / max(est, 1):7.2f} KiB  "
            f"{stat.count_diff / max(est, 1):6.1f}  {_shorten_path(frame.filename)}:{frame.lineno}"
        )
    by_file = after.compare_to(before, "filename")
    lines += ["", "growth by file (KiB per stream):"]
    lines += [
        f"  {st.size_diff / 1024 / max(est, 1):7.2f} KiB  {_shorten_path(st.traceback[0].filename)}"
        for st in by_file[:20]
    ]
    owners: Counter[str] = Counter()
    for st in stats:
        inner = [f for f in st.traceback if "/gateway/" in f.filename]
        owners[
            f"{_shorten_path(inner[-1].filename)}:{inner[-1].lineno}"
            if inner
            else "(no gateway frame in the 8 traced: aiohttp/asyncio)"
        ] += st.size_diff
    lines += ["", "growth by innermost gateway frame of the allocation (KiB per stream):"]
    lines += [
        f"  {size / 1024 / max(est, 1):7.2f} KiB  {site}" for site, size in owners.most_common(15)
    ]
    lines += ["", "top tracebacks (innermost last):"]
    for stat in stats[:8]:
        lines.append(f"  {stat.size_diff / 1024 / max(est, 1):.2f} KiB per stream:")
        lines += [f"      {_shorten_path(f.filename)}:{f.lineno}" for f in stat.traceback]
    text = "\n".join(lines) + "\n"
    out.with_suffix(".summary.txt").write_text(text)
    shutil.rmtree(snapdir, ignore_errors=True)
    return {
        "summary": str(out.with_suffix(".summary.txt")),
        "streams": est,
        "rss_base_mib": round(rss[0] / MiB, 1),
        "rss_idle_mib": round(rss[1] / MiB, 1),
        "traced_growth_kib_per_stream": round(grown / 1024 / max(est, 1), 2),
        "top_sites": [
            {
                "site": f"{_shorten_path(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                "kib_per_stream": round(s.size_diff / 1024 / max(est, 1), 2),
                "count_per_stream": round(s.count_diff / max(est, 1), 1),
            }
            for s in by_line[:15]
        ],
    }


def _shorten_path(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "host": platform.node(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_total_mib"] = int(line.split()[1]) // 1024
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    return info


def find_anchors(args: argparse.Namespace) -> Path | None:
    if args.anchors_json:
        return Path(args.anchors_json)
    if not args.anchors_prefix:
        return None
    found = [
        p
        for p in H.RESULTS.glob(f"{args.anchors_prefix}-*.json")
        if p.stat().st_mtime >= (args.anchors_since or 0)
    ]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def anchor_row(
    anchors: list[dict[str, Any]], server: str, n: int, rate: float
) -> dict[str, Any] | None:
    for row in anchors:
        if row["server"] == server and row["n"] == n and row["rate"] == rate:
            return row
    return None


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [r for r in report.get("fanout", []) if r.get("loadgen")]
    anchors = report.get("anchors", [])
    out: list[dict[str, Any]] = []

    def add(key: str, target: str, value: str, ok: bool | None) -> None:
        out.append(
            {
                "target": key,
                "what": target,
                "measured": value,
                "verdict": "n/a" if ok is None else ("met" if ok else "MISSED"),
            }
        )

    row = next((r for r in rows if r["n"] == TARGET_KEEPUP_N and r["rate"] == 20), None)
    if row:
        g = row["loadgen"]
        sched = (g.get("latency_from_schedule_ms") or {}).get("p99")
        ok = (
            g["established"] == row["n"]
            and g["delivered"] >= g["expected"] > 0
            and sched is not None
            and sched < 1000
            and not g.get("disconnects")
        )
        add(
            "a",
            f"keeps up at {TARGET_KEEPUP_N} subscribers x 20 ev/s (no loss, sched p99 < 1 s)",
            f"loss {fmt(g.get('loss_pct'), 2)} %, sched p99 {fmt(sched, 1)} ms, "
            f"{g.get('disconnects', 0)} disconnects",
            ok,
        )
    else:
        add("a", f"keeps up at {TARGET_KEEPUP_N} x 20", "not run", None)
    row = next((r for r in rows if r["n"] == TARGET_NCHAN_N and r["rate"] == 20), None)
    nchan = anchor_row(anchors, "nchan-w1", TARGET_NCHAN_N, 20)
    if row and nchan and nchan.get("loadgen"):
        mine = row["loadgen"]["latency_ms"]["p99"]
        theirs = nchan["loadgen"]["latency_ms"]["p99"]
        ratio = mine / theirs if theirs else None
        add(
            "b",
            f"p99 at {TARGET_NCHAN_N} subscribers within {TARGET_NCHAN_RATIO:g}x nchan-w1",
            f"{fmt(mine, 1)} ms vs {fmt(theirs, 1)} ms = {fmt(ratio, 2)}x",
            ratio is not None and ratio <= TARGET_NCHAN_RATIO and row["loadgen"]["loss_pct"] == 0,
        )
    else:
        add("b", f"p99 within {TARGET_NCHAN_RATIO:g}x nchan-w1", "no anchor run", None)
    full = [r for r in rows if r["loadgen"]["established"] == r["n"] and r.get("srv_kib_per_conn")]
    if full:
        biggest = max(full, key=lambda r: r["n"])
        kib = biggest["srv_kib_per_conn"]
        add(
            "c",
            f"<= {TARGET_KIB_PER_STREAM:g} KiB RSS per idle open stream",
            f"{fmt(kib, 1)} KiB at N={biggest['n']} ("
            + ", ".join(
                f"N={r['n']}: {fmt(r['srv_kib_per_conn'], 1)}" for r in full if r["rate"] == 20
            )
            + ")",
            kib <= TARGET_KIB_PER_STREAM,
        )
    pipe = next(
        (
            p
            for p in report.get("pipeline", [])
            if p["server"] == "xployt-gateway" and p["scans"] == TARGET_PIPELINE_SCANS
        ),
        None,
    )
    if pipe:
        p99 = pipe["latency_ms"]["p99"]
        base = next(
            (
                p
                for p in report.get("pipeline", [])
                if p["server"] != "xployt-gateway" and p["scans"] == TARGET_PIPELINE_SCANS
            ),
            None,
        )
        extra = ""
        if base and base["latency_ms"]["p99"] is not None and p99 is not None:
            extra = (
                f"; {fmt(p99 - base['latency_ms']['p99'], 1)} ms over the aiohttp-sse "
                f"baseline's {fmt(base['latency_ms']['p99'], 1)} ms"
            )
        add(
            "d",
            f"pipeline adds < {TARGET_PIPELINE_P99_MS:g} ms p99 at {TARGET_PIPELINE_SCANS} "
            "scans x 10 ev/s",
            f"p99 {fmt(p99, 1)} ms scanner emit->subscriber, loss {fmt(pipe['loss_pct'], 2)} %"
            f"{extra}",
            p99 is not None and p99 < TARGET_PIPELINE_P99_MS and pipe["loss_pct"] == 0,
        )
    first = report.get("first_event")
    if first:
        p99 = first["first_event_ms"]["p99"]
        add(
            "e",
            f"first event < {TARGET_FIRST_EVENT_P99_MS:g} ms p99 after the POST returns",
            f"p99 {fmt(p99, 1)} ms (p50 {fmt(first['first_event_ms']['p50'], 1)}) over "
            f"{first['measured']} scans",
            p99 is not None
            and p99 < TARGET_FIRST_EVENT_P99_MS
            and first["measured"] == first["scans"],
        )
    rep = report.get("replay")
    if rep:
        rate = rep["events_per_s_median"]
        add(
            "f",
            f"replay > {TARGET_REPLAY_EVENTS_PER_S:,.0f} events/s",
            f"{fmt(rate, 0)} events/s median of {len(rep['reads'])} reads of "
            f"{rep['events_stored']} events",
            rate is not None and rate > TARGET_REPLAY_EVENTS_PER_S and rep["complete"],
        )
    if "replicas" in report:
        what = (
            f"two replicas on Redis keep up at {TARGET_REPLICAS_N} subscribers x 20 ev/s "
            f"(no loss, p99 < {TARGET_REPLICAS_P99_MS:g} ms)"
        )
        row = next(
            (r for r in report["replicas"] if r["n"] == TARGET_REPLICAS_N and r["rate"] == 20),
            None,
        )
        if row and row["status"] == "ok":
            p99 = row["latency_ms"]["p99"]  # the upper bound of the merged p99
            each = ", ".join(
                f"{r['replica']} {fmt((r['latency_ms'] or {}).get('p99'), 1)}"
                for r in row["per_replica"]
            )
            add(
                "g",
                what,
                f"loss {fmt(row['loss_pct'], 2)} %, p99 <= {fmt(p99, 1)} ms over both ({each}), "
                f"{row['established']}/{row['n']} connected, {row['disconnects']} disconnects",
                row["established"] == row["n"]
                and row["delivered"] >= row["expected"] > 0
                and not row["disconnects"]
                and p99 is not None
                and p99 < TARGET_REPLICAS_P99_MS,
            )
        elif row:
            add("g", what, f"error: {row.get('error')}", None)
        elif report.get("replicas_skipped"):
            add("g", what, f"skipped: {report['replicas_skipped']}", None)
        else:
            ran = ", ".join(r["scenario"] for r in report["replicas"]) or "nothing"
            add("g", what, f"not run at {TARGET_REPLICAS_N} x 20 (ran: {ran})", None)
    return out


def fmt_range(values: Sequence[float] | None, digits: int = 1) -> str:
    """``lo–hi``, or one value when both are equal."""
    if not values:
        return "-"
    lo, hi = fmt(values[0], digits), fmt(values[1], digits)
    return lo if lo == hi else f"{lo}–{hi}"


def markdown(report: dict[str, Any]) -> str:
    m = report["meta"]
    mc = m["machine"]
    lines = [
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
    if report.get("verdicts"):
        lines += ["## Targets", "", "| target | what | measured | verdict |", "|---|---|---|---|"]
        lines += [
            f"| {v['target']} | {v['what']} | {v['measured']} | {v['verdict']} |"
            for v in report["verdicts"]
        ]
        lines.append("")
    rows = [r for r in report.get("fanout", [])]
    if rows:
        order = {spec: i for i, spec in enumerate(report["meta"]["fanout_specs"])}

        def key(r: dict[str, Any]) -> tuple[int, int]:
            spec = f"{r['n']}x{r['rate']:g}x{r['seconds']:g}"
            return (order.get(spec, 99), 0 if r["server"] == "xployt-gateway" else 1)

        combined = sorted(
            rows
            + [
                a
                for a in report.get("anchors", [])
                if f"{a['n']}x{a['rate']:g}x{a['seconds']:g}" in order
            ],
            key=key,
        )
        meta = dict(rows[0].get("harness_meta") or {})
        meta.setdefault("date", m["date"])
        if meta.get("targets") is not None:
            meta["targets"] = [
                {
                    "name": "xployt-gateway",
                    "desc": "the gateway, python -m gateway "
                    "(aiohttp, 1 process), bench scan fed by the mock scanner",
                }
            ]
            meta["targets"] += (report.get("anchors_meta") or {}).get("targets", [])
        lines += ["## Fan-out (the shared harness's table, gateway and anchors of this run)", ""]
        lines.append(
            H.md_report("SSE fan-out: xployt-gateway beside the anchors", meta, combined).replace(
                "# SSE fan-out", "### SSE fan-out", 1
            )
        )
        lines += ["", "Mock scanner CPU during the gateway's scenarios:", ""]
        lines += [
            "| N | R×s | mock CPU % (est.) | CPU steal % | harness wall s |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['n']} | {r['rate']:g}×{r['seconds']:g} | {fmt(r.get('mock_cpu_pct_est'))} "
            f"| {fmt(r.get('steal_pct'))} | {fmt(r.get('harness_wall_s'))} |"
            for r in rows
        ]
        lines.append("")
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
    if "replicas" in report:
        lines += replicas_markdown(report)
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
    return "\n".join(lines) + "\n"


def replicas_markdown(report: dict[str, Any]) -> list[str]:
    rows = report["replicas"]
    lines = ["## Two replicas on Redis", ""]
    if report.get("replicas_skipped"):
        return [*lines, f"Skipped: {report['replicas_skipped']}.", ""]
    version = next((r.get("redis_version") for r in rows if r.get("redis_version")), None)
    lines += [
        "Two gateways (`python -m gateway`, `backend: redis`, the same JWT secret) sharing one "
        f"`redis-server` {version or ''} started for the scenario (127.0.0.1, no persistence). "
        "One bench scan is POSTed on replica A, which reads the mock scanner's stream and "
        "appends its events to Redis; half the subscribers are on A's stream, half on B's. One "
        "loadgen per replica, GO to both at once: A's publishes E = R×s events through the mock "
        "scanner, B's keeps the same schedule into a sink, so both expect every event and "
        "measure latency from the publisher's stamp `t`. The loadgens report percentiles, not "
        "samples: the percentiles of the A+B row are the range the union's lies in (the "
        "verdict uses its upper end); its max, mean and all-N (per event, until the last of "
        "all N subscribers had it, from the raw files) are exact. CPU over the active window "
        "in % of one core; RSS base (no stream) / idle (N connected) / peak.",
        "",
        "| N | R×s | replica | subs | delivered / expected | loss % | p50 ms | p90 ms | p99 ms | "
        "max ms | sched p99 ms | disconnects | gateway CPU % | gateway RSS base/idle/peak MiB | "
        "lg CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        scenario = f"| {row['n']} | {row['rate']:g}×{row['seconds']:g} |"
        if row["status"] != "ok":
            lines.append(f"{scenario} A+B | - | error: {row.get('error')} |" + " |" * 10)
            continue
        lat = row["latency_ms"]
        per = row["per_replica"]
        lines.append(
            f"{scenario} **A+B** | {row['established']}/{row['n']} | "
            f"{row['delivered']} / {row['expected']} | {fmt(row['loss_pct'], 2)} | "
            f"{fmt_range(lat['p50_range'], 2)} | {fmt_range(lat['p90_range'], 2)} | "
            f"{fmt_range(lat['p99_range'], 2)} | {fmt(lat['max'], 1)} | "
            f"{fmt(row['sched_p99_ms_worst'], 1)} | {row['disconnects']} | "
            f"{fmt(sum(r['srv_cpu_pct'] or 0 for r in per))} | - | "
            f"{fmt(sum(r['lg_cpu_pct'] for r in per))} |"
        )
        for r in per:
            rl = r["latency_ms"] or {}
            lines.append(
                f"| | | {r['replica']}{' (publishes)' if r['publishes'] else ''} | "
                f"{r['established']}/{r['n']} | {r['delivered']} / {r['expected']} | "
                f"{fmt(r['loss_pct'], 2)} | {fmt(rl.get('p50'), 2)} | {fmt(rl.get('p90'), 2)} | "
                f"{fmt(rl.get('p99'), 2)} | {fmt(rl.get('max'), 1)} | "
                f"{fmt(r['sched_p99_ms'], 1)} | {r['disconnects']} | {fmt(r['srv_cpu_pct'])} | "
                f"{fmt(r['srv_rss_base_mib'])}/{fmt(r['srv_rss_idle_mib'])}/"
                f"{fmt(r['srv_rss_peak_mib'])} | {fmt(r['lg_cpu_pct'])} |"
            )
    lines += [
        "",
        "| N | R×s | Redis CPU % | Redis RSS base/idle/peak MiB | mock CPU % | box CPU % | "
        "CPU steal % | all-N p50/p99/max ms | pub ok/E (ev/s) | active window s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["status"] != "ok":
            continue
        all_n = row["fanout_all_ms"]
        lines.append(
            f"| {row['n']} | {row['rate']:g}×{row['seconds']:g} | {fmt(row['redis_cpu_pct'])} | "
            f"{fmt(row['redis_rss_base_mib'])}/{fmt(row.get('redis_rss_idle_mib'))}/"
            f"{fmt(row['redis_rss_peak_mib'])} | {fmt(row['mock_cpu_pct'])} | "
            f"{fmt(row['box_cpu_pct'])} | {fmt(row['steal_pct'])} | "
            f"{fmt(all_n['p50'], 1)}/{fmt(all_n['p99'], 1)}/{fmt(all_n['max'], 1)} | "
            f"{row['published']}/{row['events']} ({fmt(row['pub_rate_achieved'])}) | "
            f"{fmt(row['active_window_s'])} |"
        )
    lines.append("")
    return lines


# --------------------------------------------------------------------------- main


def main() -> int:
    global H
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shared",
        default=str(ROOT.parent / "shared" / "bench"),
        help="the shared SSE harness (default: ../shared/bench)",
    )
    parser.add_argument("--parts", default=DEFAULT_PARTS)
    parser.add_argument("--fanout", default=DEFAULT_FANOUT, help="NxRATExSECONDS list")
    parser.add_argument("--first-scans", type=int, default=200)
    parser.add_argument("--replay-events", type=int, default=10_000)
    parser.add_argument("--replay-reads", type=int, default=5)
    parser.add_argument("--pipeline", default="10,100,500", help="scan counts")
    parser.add_argument("--pipeline-rate", type=float, default=10.0)
    parser.add_argument("--pipeline-seconds", type=float, default=10.0)
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the aiohttp-sse pipeline baseline"
    )
    parser.add_argument(
        "--replicas",
        default=DEFAULT_REPLICAS,
        help="NxRATExSECONDS list of the replicas part: two gateways on one Redis, N/2 "
        f"subscribers on each (default {DEFAULT_REPLICAS})",
    )
    parser.add_argument("--anchors-json", help="the anchors' JSON of this session")
    parser.add_argument("--anchors-prefix", help="find $SSEBENCH_WORK/results/<prefix>-*.json")
    parser.add_argument("--anchors-since", type=float, help="...written after this epoch time")
    parser.add_argument(
        "--profile", default="", help="comma list: fanout:N, memory:N, pipeline:K, first, replay"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    H = load_harness(Path(args.shared).resolve())
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.date.today().isoformat()
    logdir = out_dir / f"logs-{stamp}"
    logdir.mkdir(parents=True, exist_ok=True)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    fanout_specs = [s.strip() for s in args.fanout.split(",") if s.strip()]
    report: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine(),
            "command": " ".join(_quote(a) for a in [Path(PY).name, *sys.argv]),
            "shared": str(Path(args.shared).resolve()),
            "ssebench_work": str(H.WORK),
            "fanout_specs": fanout_specs,
        }
    }
    anchors_path = find_anchors(args)
    if anchors_path and anchors_path.exists():
        data = json.loads(anchors_path.read_text())
        report["anchors"] = data["rows"]
        report["anchors_meta"] = data["meta"]
        report["meta"]["anchors_json"] = str(anchors_path)
    suffix = "-profile" if args.profile and parts == {"none"} else ""
    json_path = out_dir / f"{stamp}-gateway{suffix}.json"
    md_path = out_dir / f"{stamp}-gateway{suffix}.md"

    steal0 = steal_jiffies()

    def save() -> None:
        report["meta"]["steal_pct"] = steal_pct(steal0)
        report["verdicts"] = verdicts(report)
        json_path.write_text(json.dumps(report, indent=1, default=str))
        md_path.write_text(markdown(report))

    started = time.monotonic()
    if "fanout" in parts:
        report["fanout"] = []
        for spec in fanout_specs:
            log(f"fan-out {spec}")
            try:
                report["fanout"].append(fanout(Path(args.shared).resolve(), spec, logdir))
            except Exception as exc:  # keep going with the next scenario
                log(f"fan-out {spec} failed: {exc}")
                report["fanout"].append(failed_row("xployt-gateway", spec, str(exc)))
            save()
    if "first" in parts:
        log(f"first event over {args.first_scans} scans")
        report["first_event"] = first_event(logdir, args.first_scans)
        save()
    if "replay" in parts:
        log(f"replay of {args.replay_events} events")
        report["replay"] = replay(logdir, args.replay_events, args.replay_reads)
        save()
    if "pipeline" in parts:
        report["pipeline"] = []
        baseline_ok = not args.no_baseline and H.VENV_PY.exists()
        for scans in [int(x) for x in args.pipeline.split(",") if x.strip()]:
            for base in [False, True] if baseline_ok else [False]:
                log(
                    f"pipeline {scans} scans x {args.pipeline_rate:g} ev/s"
                    + (" (aiohttp-sse baseline)" if base else "")
                )
                try:
                    report["pipeline"].append(
                        pipeline(
                            logdir, scans, args.pipeline_rate, args.pipeline_seconds, baseline=base
                        )
                    )
                except Exception as exc:
                    log(f"pipeline {scans} failed: {exc}")
                save()
    if "replicas" in parts:
        report["replicas"] = []
        skipped = redis_missing()
        if skipped:
            log(f"two replicas on Redis skipped: {skipped}")
            report["replicas_skipped"] = skipped
        for spec in [] if skipped else [s.strip() for s in args.replicas.split(",") if s.strip()]:
            log(f"two replicas on Redis {spec}")
            try:
                report["replicas"].append(replicas(logdir, spec))
            except Exception as exc:
                log(f"two replicas on Redis {spec} failed: {exc}")
                report["replicas"].append(
                    failed_row("xployt-gateway x2 (backend redis)", spec, str(exc))
                )
            save()
    if args.profile:
        report["profiles"] = {}
        for item in [p.strip() for p in args.profile.split(",") if p.strip()]:
            kind, _, arg = item.partition(":")
            out = out_dir / f"{stamp}-profile-{kind}{('-' + arg) if arg else ''}.folded"
            log(f"profile {item}")
            try:
                if kind == "fanout":
                    prof = profile_fanout(logdir, int(arg), 20, 10, out)
                elif kind == "memory":
                    prof = profile_memory(logdir, int(arg), out)
                elif kind == "pipeline":
                    prof = pipeline(
                        logdir, int(arg), args.pipeline_rate, args.pipeline_seconds, profile=out
                    )["profile"]
                elif kind == "first":
                    prof = first_event(logdir, args.first_scans * 3, profile=out)["profile"]
                elif kind == "replay":
                    prof = replay(logdir, args.replay_events, 1, profile=out)["profile"]
                else:
                    raise ValueError(f"unknown profile {item!r}")
            except Exception as exc:
                log(f"profile {item} failed: {exc}")
                prof = {"error": str(exc)}
            report["profiles"][item] = prof
            save()
    save()
    log(f"done in {time.monotonic() - started:.0f} s")
    print(f"results: {md_path}\n         {json_path}")
    for v in report["verdicts"]:
        print(f"  ({v['target']}) {v['verdict']:<6} {v['what']}: {v['measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
