#!/usr/bin/env python3
"""The gateway's memory while a hostile scanner floods it.

Run from the project root with the project's venv (``make bench-flood`` does):

    .venv/bin/python bench/flood.py [--shapes sse-long-event,sse-findings,...]
        [--gigabytes 1] [--seconds 120] [--max-rss-gb 8] [--out FILE]

For each shape, on free 127.0.0.1 ports and in a temp dir of its own: start the flood scanner
(``bench/flood_scanner.py``: it floods until ``--gigabytes`` of payload, ``--seconds`` or the
gateway hangs up), start the gateway (``python -m gateway --config``: its own SQLite file, the
flood scanner as ``flood_scanner``, idle and scan timeouts far beyond ``--seconds`` so that only
the gateway's limits end the scan), start one scan with ``use_sse=true``, poll it until it ends,
then read ``/results`` when it completed. The gateway's RSS is read from ``/proc/<pid>/status``
every 50 ms throughout; past ``--max-rss-gb`` the gateway is killed (a guard for a shared
machine; the row then says so). Sizes are decimal: 1 GB = 10^9 bytes, 1 MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flood_scanner import SHAPES

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
API = "/api/v1/scans"
SCANNER = "flood_scanner"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
GRACE_SECONDS = 300.0  # how long the scan may take to end once the scanner has stopped


@dataclass
class Row:
    shape: str
    sent_bytes: int = 0
    raw_bytes: int = 0
    stopped_by: str = ""
    status: str = ""
    error: str = ""
    events: int = 0
    rss_before: int = 0
    rss_scan_peak: int = 0  # until the scan ended, before /results was read
    rss_peak: int = 0
    rss_after: int = 0
    seconds: float = 0.0
    results_bytes: int | None = None
    db_bytes: int = 0


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPLOYT_")}
    with log.open("wb") as out:
        return subprocess.Popen([PY, *args], cwd=ROOT, env=env, stdout=out, stderr=out)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started, SIGKILL it if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_config(directory: Path, gateway_port: int, scanner_port: int, seconds: float) -> Path:
    config = {
        # No drain: the flood is stopped with SIGTERM and its scan should not outlive it.
        "server": {"host": "127.0.0.1", "port": gateway_port, "drain_seconds": 0},
        "database": {"path": str(directory / "gateway.db")},
        "jwt": {"secret": secrets.token_hex(32)},
        "scanners": {SCANNER: f"http://127.0.0.1:{scanner_port}/scan"},
        "upstream": {
            "idle_timeout_seconds": seconds + GRACE_SECONDS,
            "scan_timeout_seconds": 2 * (seconds + GRACE_SECONDS),
        },
        "readiness": {"check_scanners": False},
        "logging": {"level": "WARNING"},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def mint_token(config: Path) -> str:
    command = [PY, "-m", "gateway", "token", "--sub", "bench", "--config", str(config)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, check=True, timeout=60)
    return done.stdout.decode().strip()


# ----------------------------------------------------------------------------- memory


def proc_status_bytes(pid: int, field: str) -> int:
    """``VmRSS``/``VmHWM`` of a process in bytes; 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class RssSampler(threading.Thread):
    """Reads a process's RSS every ``interval`` seconds; kills it past ``cap`` bytes."""

    def __init__(self, pid: int, cap: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.cap, self.interval = pid, cap, interval
        self.peak = 0
        self.capped = False
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            rss = proc_status_bytes(self.pid, "VmRSS")
            self.peak = max(self.peak, rss, proc_status_bytes(self.pid, "VmHWM"))
            if rss > self.cap and not self.capped:
                self.capped = True
                os.kill(self.pid, signal.SIGKILL)

    def finish(self) -> int:
        self.halt.set()
        self.join()
        return max(self.peak, proc_status_bytes(self.pid, "VmHWM"))


# ----------------------------------------------------------------------------- one shape


async def wait_ok(
    session: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes]
) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 in 30 s")


async def start_scan(session: aiohttp.ClientSession, base: str) -> str:
    body = {"repository_name": "acme/flood", "scanner_name": SCANNER, "configurations": {}}
    async with session.post(f"{base}{API}/?use_sse=true", json=body) as response:
        answer = await response.json()
        if response.status != 201:
            raise RuntimeError(f"POST {API}/ answered {response.status}: {answer}")
        return str(answer["data"]["scan_id"])


async def follow(
    session: aiohttp.ClientSession, url: str, gateway: subprocess.Popen[bytes], deadline: float
) -> dict[str, Any]:
    """Poll the scan until it ends, the gateway dies or the deadline passes."""
    scan: dict[str, Any] = {"status": "no terminal status", "error": "bench deadline passed"}
    while time.monotonic() < deadline:
        if gateway.poll() is not None:
            return {**scan, "status": "gateway died", "error": f"exit {gateway.returncode}"}
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
                scan = (await response.json())["data"]
        except (aiohttp.ClientError, TimeoutError):
            pass
        if scan["status"] in TERMINAL:
            return scan
        await asyncio.sleep(0.2)
    return scan


async def results_size(session: aiohttp.ClientSession, url: str) -> int:
    """Bytes of ``/results``, read and counted without keeping them."""
    size = 0
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=GRACE_SECONDS)) as response:
        async for chunk in response.content.iter_chunked(1 << 20):
            size += len(chunk)
    return size


def db_size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("gateway.db*"))


async def scan_once(
    session: aiohttp.ClientSession,
    base: str,
    gateway: subprocess.Popen[bytes],
    row: Row,
    sampler: RssSampler,
    wait: float,
) -> None:
    """One scan from its POST to its end (or ``wait`` s), then its results' size if completed."""
    began = time.monotonic()
    scan_id = await start_scan(session, base)
    deadline = began + wait
    scan = await follow(session, f"{base}{API}/{scan_id}", gateway, deadline)
    row.seconds = time.monotonic() - began
    row.status, row.error = scan["status"], scan.get("error") or ""
    row.events = int(scan.get("last_event_id") or 0)
    row.rss_scan_peak = max(sampler.peak, proc_status_bytes(gateway.pid, "VmHWM"))
    if row.status == "completed":
        row.results_bytes = await results_size(session, f"{base}{API}/{scan_id}/results")


async def measure(row: Row, tmp: Path, ports: tuple[int, int], args: argparse.Namespace) -> None:
    """Start the gateway, run the scan under the RSS sampler, read the scanner's stats."""
    max_rss = int(args.max_rss_gb * 1e9)
    config = tmp / "config.yaml"
    gateway = start(["-m", "gateway", "--config", str(config)], tmp / "gateway.log")
    base, scanner = (f"http://127.0.0.1:{port}" for port in ports)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ok(session, f"{base}/healthz", gateway)
            session.headers["Authorization"] = f"Bearer {mint_token(config)}"
            sampler = RssSampler(gateway.pid, max_rss)
            row.rss_before = proc_status_bytes(gateway.pid, "VmRSS")
            sampler.start()
            await scan_once(session, base, gateway, row, sampler, args.seconds + GRACE_SECONDS)
            row.rss_after = proc_status_bytes(gateway.pid, "VmRSS")
            row.rss_peak = sampler.finish()
            if sampler.capped:
                row.status, row.error = "killed", f"gateway RSS over {size(max_rss)}"
            async with session.get(f"{scanner}/stats") as response:
                stats = await response.json()
            row.sent_bytes, row.raw_bytes = stats["sent_bytes"], stats["raw_bytes"]
            row.stopped_by = stats["stopped_by"] or "(still sending)"
            row.db_bytes = db_size(tmp)
    finally:
        stop(gateway)


async def run_shape(shape: str, args: argparse.Namespace) -> Row:
    row = Row(shape)
    with tempfile.TemporaryDirectory(prefix=f"flood-{shape}-") as name:
        tmp = Path(name)
        ports = free_port(), free_port()
        write_config(tmp, *ports, args.seconds)
        flood = [
            *("bench/flood_scanner.py", "--port", str(ports[1]), "--shape", shape),
            *("--bytes", str(int(args.gigabytes * 1e9)), "--seconds", str(args.seconds)),
        ]
        scanner = start(flood, tmp / "scanner.log")
        try:
            async with aiohttp.ClientSession() as session:
                await wait_ok(session, f"http://127.0.0.1:{ports[1]}/stats", scanner)
            await measure(row, tmp, ports, args)
        finally:
            stop(scanner)
    return row


# ----------------------------------------------------------------------------- report


def size(value: int | None) -> str:
    """Bytes in decimal units: ``1.02 GB``, ``674 MB``, ``12.3 kB``."""
    if value is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value} B"


def cells(row: Row) -> list[str]:
    sent = size(row.sent_bytes)
    if row.raw_bytes != row.sent_bytes:
        sent += f" ({size(row.raw_bytes)} unzipped)"
    error = row.error.replace("|", "\\|").replace("\n", " ")
    error = error if len(error) <= 90 else error[:87] + "..."
    return [
        *(row.shape, sent, row.stopped_by, row.status, error or "-", f"{row.events:,}"),
        *(size(row.rss_before), size(row.rss_scan_peak), size(row.rss_peak)),
        "+" + size(row.rss_peak - row.rss_before),
        *(size(row.rss_after), f"{row.seconds:.1f}", size(row.results_bytes), size(row.db_bytes)),
    ]


HEADER = [
    *("shape", "scanner sent", "scanner stopped by", "scan status", "error", "events"),
    *("RSS before", "peak to scan end", "peak with /results", "peak - before", "RSS after"),
    "seconds",
    *("/results", "database"),
]


def commit() -> str:
    """The checked-out commit, ``+dirty`` when the worktree has changes."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def table(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"Flood of {args.gigabytes:g} GB or {args.seconds:g} s per shape; commit {commit()}, "
        f"{dt.datetime.now().isoformat(timespec='seconds')}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument("--gigabytes", type=float, default=1.0, help="flood size per shape")
    parser.add_argument("--seconds", type=float, default=120.0, help="flood time per shape")
    parser.add_argument("--max-rss-gb", type=float, default=8.0, help="kill the gateway past it")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    unknown = set(args.shapes.split(",")) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes {sorted(unknown)}; known: {', '.join(SHAPES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rows = []
    for shape in args.shapes.split(","):
        print(f"[flood {time.strftime('%H:%M:%S')}] {shape} ...", flush=True)
        rows.append(asyncio.run(run_shape(shape, args)))
        print("| " + " | ".join(cells(rows[-1])) + " |", flush=True)
    report = table(rows, args)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
