"""The shared harness's C load generator (``sseload``): what one instance does (a
:class:`LoadSpec`) and one synchronised run of several (:func:`run_loadgens`): every instance
connects its subscribers, then all get GO at once, publish on their schedule and report JSON."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import stop_process


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

    @property
    def seconds(self) -> float:
        """How long it is busy after GO: publishing, or holding its connections."""
        return self.events / self.rate if self.publishes else self.hold


@dataclass
class LoadRun:
    results: list[dict[str, Any]]
    t_ready: float
    t_go: float
    t_end: float
    stderr: list[list[str]]


def loadgen_cmd(loadgen: Path, spec: LoadSpec, connect_timeout: float, drain: float) -> list[str]:
    cmd = [str(loadgen), "--url", spec.sub_url, "-n", str(spec.n), "-E", str(spec.events)]
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


class _Loadgens:
    """The running instances, and what their stderr said: READY, or why they failed."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.ready: list[threading.Event] = []
        self.failed: list[str] = []
        self.stderr: list[list[str]] = []

    def start(self, cmd: list[str]) -> None:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        self.ready.append(threading.Event())
        self.stderr.append([])
        args = (proc, self.ready[-1], self.stderr[-1])
        threading.Thread(target=self._read_stderr, args=args, daemon=True).start()

    def _read_stderr(
        self, proc: subprocess.Popen[str], ready: threading.Event, lines: list[str]
    ) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("READY"):
                ready.set()
            elif line.startswith(("CONNECT_TIMEOUT", "sseload:")):
                self.failed.append(line.strip())
                ready.set()
        ready.set()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for event in self.ready:
            event.wait(max(0.0, deadline - time.monotonic()))
        if self.failed or not all(event.is_set() for event in self.ready):
            raise RuntimeError(f"loadgen did not connect: {(self.failed or ['timeout'])[0]}")

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()

    def results(self, timeout: float) -> list[dict[str, Any]]:
        """Each instance's last JSON line, once it has exited."""
        deadline = time.monotonic() + timeout
        results = []
        for proc in self.procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.stdout is not None
            out = proc.stdout.read()
            parsed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            if not parsed:
                raise RuntimeError("a loadgen printed no result")
            results.append(parsed[-1])
        return results

    def stop(self) -> None:
        for proc in self.procs:
            if proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            stop_process(proc, timeout=5)


def run_loadgens(
    loadgen: Path,
    specs: Sequence[LoadSpec],
    *,
    connect_timeout: float = 30.0,
    drain: float = 5.0,
    on_ready: Callable[[], None] | None = None,
    on_go: Callable[[], None] | None = None,
) -> LoadRun:
    """Start every loadgen, wait until all are connected, send GO to all at once, collect."""
    loadgens = _Loadgens()
    try:
        for spec in specs:
            loadgens.start(loadgen_cmd(loadgen, spec, connect_timeout, drain))
        loadgens.wait_ready(connect_timeout + 30)
        t_ready = time.monotonic()
        if on_ready:
            on_ready()
        t_go = time.monotonic()
        loadgens.go()
        if on_go:
            on_go()
        longest = max(spec.seconds for spec in specs)
        results = loadgens.results(longest + drain + 90)
        return LoadRun(results, t_ready, t_go, time.monotonic(), loadgens.stderr)
    finally:
        loadgens.stop()
