"""A rolling restart behind nginx, for real: Debian's nginx with the README's config
(``deploy/nginx/xployt-gateway.conf``, with this test's addresses, port and certificate) in front
of two ``python -m gateway`` replicas on Redis and the mock scanner. 20 scans that run longer
than a restart and 200 streams, all through nginx; each replica in turn gets SIGTERM, is waited
for and started again. Every scan completes (none interrupted), every stream's ids are exactly
1..n, no client ever sees an error status. Skipped, saying why, without nginx."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.asyncio import Redis

from gateway.scanners.sse_parser import SSEParser
from tests.gateway.test_replicas import (
    Log,
    gap_free,
    messages,
    statuses,
    stored_log,
    terminal_count,
)
from tests.helpers import auth
from tests.processes import ProcessLog, free_port, gateway_process, write_config
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "xployt-gateway.conf"
DEADLINE = 60.0  # seconds: the bound on anything the test waits for
SCANS, STREAMS_PER_SCAN = 20, 10
# Mock scans: one event every STEP seconds. The first ten run through the first replica's
# restart; the next ten start while it drains (so all run on the second replica) and run past
# its restart, through the second one's drain.
STEP = 0.1
FIRST_STEPS, SECOND_STEPS = 80, 150
ENDS = ("completed", "failed", "cancelled")


def nginx_executable() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip("nginx is not installed: apt-get install nginx")
    return found


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xployt test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key_file


def site_config(ports: list[int], listen: int, cert: Path, key: Path) -> str:
    """The README's config with this test's replicas, port and certificate."""
    text = NGINX_CONF.read_text()
    swaps = {
        "server 10.0.0.11:8000 ": f"server 127.0.0.1:{ports[0]} ",
        "server 10.0.0.12:8000 ": f"server 127.0.0.1:{ports[1]} ",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{listen} ssl http2;",
        "/etc/nginx/tls/scans.example.com.crt": str(cert),
        "/etc/nginx/tls/scans.example.com.key": str(key),
    }
    for old, new in swaps.items():
        assert text.count(old) == 1, f"{NGINX_CONF} no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def main_config(directory: Path, site: Path) -> str:
    """nginx's main file around the site: everything it writes in ``directory``."""
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may then read the test's files
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n    access_log off;\n{temp}\n    include {site};\n}}\n"
    )


def prepare(directory: Path, ports: list[int]) -> tuple[list[str], int, Path]:
    """nginx's files in ``directory``: its command, the port it listens on, its certificate."""
    directory.mkdir()
    cert, key = self_signed(directory)
    listen = free_port()
    site = directory / "xployt-gateway.conf"
    site.write_text(site_config(ports, listen, cert, key))
    conf = directory / "nginx.conf"
    conf.write_text(main_config(directory, site))
    command = [nginx_executable(), "-p", str(directory), "-c", str(conf)]
    return [*command, "-e", str(directory / "error.log")], listen, cert


@asynccontextmanager
async def nginx(directory: Path, ports: list[int]) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """nginx in front of the replicas' ports; its base URL and a TLS context that trusts it."""
    command, listen, cert = prepare(directory, ports)
    checked = await asyncio.create_subprocess_exec(*command, "-t", stderr=asyncio.subprocess.PIPE)
    _, said = await checked.communicate()
    assert checked.returncode == 0, said.decode()
    process = await asyncio.create_subprocess_exec(*command)
    try:
        await listening(listen, process)
        yield f"https://127.0.0.1:{listen}", ssl.create_default_context(cafile=cert)
    finally:
        process.send_signal(signal.SIGQUIT)  # nginx's graceful stop
        try:
            await asyncio.wait_for(process.wait(), DEADLINE)
        except TimeoutError:
            process.kill()
            await process.wait()


async def listening(port: int, process: asyncio.subprocess.Process) -> None:
    """Until ``port`` accepts connections (another process's state: polled)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        assert process.returncode is None, "nginx exited while starting"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, "nginx did not listen"
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


@dataclass
class Replica:
    """A gateway replica on a fixed port, restarted as a deploy does."""

    config: Path
    port: int = field(default_factory=free_port)
    logs: list[ProcessLog] = field(default_factory=list)  # one per run
    process: asyncio.subprocess.Process | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def start(self) -> None:
        self.logs.append(ProcessLog())
        self.process = await self._stack.enter_async_context(
            gateway_process(self.config, self.port, self.logs[-1])
        )

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def exited(self) -> int:
        """Once it has exited (after ``terminate``): its exit code."""
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), DEADLINE)
        await self._stack.aclose()
        return code

    async def close(self) -> None:
        await self._stack.aclose()  # kills it if it still runs


@dataclass
class Watcher:
    """A browser's EventSource through nginx: it reconnects with ``Last-Event-ID`` after the
    ``retry:`` delay the server asked for, until the scan's terminal event."""

    http: aiohttp.ClientSession
    url: str
    events: Log = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)  # of every response it got
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.events or json.loads(self.events[-1][1])["status"] not in ENDS:
            headers = {**auth(), "Accept": "text/event-stream"}
            if self.events:
                headers["Last-Event-ID"] = str(self.events[-1][0])
            parser = SSEParser()
            async with self.http.get(self.url, headers=headers) as response:
                self.statuses[response.status] += 1
                if response.status != 200:
                    return  # an EventSource stops for good here: the test fails on it
                async for chunk in response.content.iter_any():
                    self.events += messages(parser.feed(chunk))
                    self.started.set()
            if parser.retry is not None:
                await asyncio.sleep(parser.retry / 1000)  # EventSource's reconnection delay


async def start_scans(http: aiohttp.ClientSession, base: str, steps: int) -> list[str]:
    body = {
        "repository_name": "acme/web",
        "scanner_name": "secret_scanner",
        "configurations": {"step_delay": STEP, "steps": steps},
    }
    scan_ids = []
    for _ in range(SCANS // 2):
        async with http.post(f"{base}/api/v1/scans/?use_sse=true", json=body, headers=auth()) as r:
            assert r.status == 201, await r.text()  # never refused: nginx found a replica
            scan_ids.append((await r.json())["data"]["scan_id"])
    return scan_ids


def watchers_of(http: aiohttp.ClientSession, base: str, scan_ids: list[str]) -> list[Watcher]:
    return [
        Watcher(http, f"{base}/api/v1/scans/{scan_id}/stream")
        for scan_id in scan_ids
        for _ in range(STREAMS_PER_SCAN)
    ]


async def test_a_rolling_restart_behind_nginx_loses_nothing(
    tmp_path: Path, scanner: TestServer, redis_server: RedisServer
) -> None:
    nginx_executable()
    config = write_config(
        tmp_path,
        {
            "backend": "redis",
            "redis": {"url": redis_server.url},
            "scanners": {"secret_scanner": str(scanner.make_url("/scanners/secret_scanner/scan"))},
            "stream": {"retry_ms": 100, "reconnect_spread_ms": 1000},
            "limits": {"max_streams_per_subject": 400, "max_running_scans_per_subject": 40},
        },
    )
    a, b = Replica(config), Replica(config)
    following: list[asyncio.Task[None]] = []
    async with AsyncExitStack() as stack:
        await asyncio.gather(a.start(), b.start())
        stack.push_async_callback(a.close)
        stack.push_async_callback(b.close)
        base, tls = await stack.enter_async_context(nginx(tmp_path / "nginx", [a.port, b.port]))
        http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=tls))
        )
        try:
            first = await start_scans(http, base, FIRST_STEPS)
            watchers = watchers_of(http, base, first)
            following += [asyncio.create_task(w.run()) for w in watchers]
            for watcher in watchers:
                await asyncio.wait_for(watcher.started.wait(), DEADLINE)

            a.terminate()
            await a.logs[-1].line("draining:")
            second = await start_scans(http, base, SECOND_STEPS)  # A refuses them: all on B
            more = watchers_of(http, base, second)
            watchers += more
            following += [asyncio.create_task(w.run()) for w in more]
            assert await a.exited() == 0
            await a.start()

            b.terminate()
            assert await b.exited() == 0
            await b.start()
            await asyncio.wait_for(asyncio.gather(*following), DEADLINE)
        finally:
            for task in following:
                task.cancel()

        client = Redis.from_url(redis_server.url)
        try:
            stored = {scan_id: await stored_log(client, scan_id) for scan_id in first + second}
        finally:
            await client.aclose()

    for scan_id, log in stored.items():
        assert statuses(log)[-1] == "completed", (scan_id, log[-1])
        assert gap_free(log) and terminal_count(log) == 1
    for index, watcher in enumerate(watchers):
        scan_id = (first + second)[index // STREAMS_PER_SCAN]
        assert watcher.events == stored[scan_id], f"stream {index} lost or repeated an event"
        assert set(watcher.statuses) == {200}, watcher.statuses
    # Each replica drained scans of its own, ran them to their end, and exited 0.
    for replica in (a, b):
        drained = replica.logs[0]
        running = int(drained[drained.index_of("draining:")].split("draining: ")[1].split()[0])
        assert running > 0, "".join(drained)
        assert drained.index_of("drained in") > drained.index_of("draining:")
        assert not any("Traceback" in line for log in replica.logs for line in log)
    reconnects = sum(watcher.statuses.total() for watcher in watchers) - len(watchers)
    print(f"rolling restart: {len(watchers)} streams, {reconnects} reconnects through nginx")


def test_the_readme_shows_the_config_the_test_runs() -> None:
    readme = (REPO / "README.md").read_text()
    assert f"```nginx\n{NGINX_CONF.read_text()}```\n" in readme
