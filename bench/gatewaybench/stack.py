"""What a scenario runs against: one mock scanner (bench mode) and one or more gateways, each
with its own config and SQLite file in a temp dir, on free 127.0.0.1 ports; with ``redis``, a
``redis-server`` of its own that the gateways share. Started together, stopped together."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from .common import API, COLLECTIONS_API, PY, ROOT, SCANNER, SCANNERS
from .procs import (
    clean_env,
    free_port,
    http,
    raise_nofile,
    redis_server_cmd,
    stop_process,
    wait_http,
    wait_redis,
)


def gateway_config(
    port: int,
    db: Path,
    secret: str,
    mock_url: str,
    redis_url: str | None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One gateway's config: its own port and SQLite file, raised limits, warnings only; the
    sections of ``extra`` laid over it key by key."""
    config: dict[str, Any] = {
        # No drain: a scenario stops its gateway with SIGTERM and wants it gone at once.
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "shutdown_grace_seconds": 3,
            "drain_seconds": 0,
        },
        "database": {"path": str(db)},
        "jwt": {"secret": secret},
        "scanners": {name: f"{mock_url}/scanners/{name}/scan" for name in SCANNERS},
        "limits": {
            "max_running_scans": 2000,
            "max_running_scans_per_subject": 2000,
            "max_streams": 100_000,
            "max_streams_per_subject": 50_000,
            "scan_starts_per_second": 1000,
            "scan_start_burst": 2000,
        },
        # A scenario may take a while to connect its subscribers before publishing.
        "upstream": {"idle_timeout_seconds": 3600, "scan_timeout_seconds": 7200},
        "logging": {"level": "WARNING"},
        "readiness": {"check_scanners": False},
    }
    if redis_url:
        config["backend"] = "redis"
        config["redis"] = {"url": redis_url, "key_prefix": "xployt-bench:"}
    for section, keys in (extra or {}).items():
        config[section] = {**config.get(section, {}), **keys}
    return config


def scanning(scan: dict[str, Any]) -> bool:
    """Whether a scan is running; raises if it already ended."""
    if scan["status"] in ("failed", "cancelled", "completed"):
        raise RuntimeError(f"scan ended {scan['status']}: {scan.get('error')}")
    return bool(scan["status"] == "scanning")


class Stack:
    """One mock scanner and one gateway, on free ports, with a fresh SQLite file.

    ``replicas`` > 1 with ``redis``: that many gateways sharing one JWT secret and one
    ``redis-server`` of their own (``backend: redis``); replica 0 is the one ``gw`` names.
    ``config``: sections laid over every gateway's config (``gateway_config``).
    """

    def __init__(
        self,
        tag: str,
        logdir: Path,
        *,
        snapshots: Path | None = None,
        replicas: int = 1,
        redis: bool = False,
        config: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.tag = tag
        self.logdir = logdir
        self.snapshots = snapshots
        self.tmp = Path(tempfile.mkdtemp(prefix="xployt-bench-"))
        self.mock: subprocess.Popen[bytes] | None = None
        self.gateways: list[subprocess.Popen[bytes]] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.logs: list[IO[bytes]] = []
        self.token = ""
        self.secret = secrets.token_hex(32)
        ports: set[int] = set()
        self.mock_port = free_port(ports)
        self.gw_ports = [free_port(ports) for _ in range(replicas)]
        self.redis_port = free_port(ports) if redis else None
        self.config_paths: list[Path] = []
        self.extra_config = config

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
    def auth_header(self) -> str:
        """The same, as a loadgen's ``-H`` line."""
        return f"Authorization: Bearer {self.token}"

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

    def collection_stream_url(self, collection_id: str) -> str:
        return f"{self.gw}{COLLECTIONS_API}/{collection_id}/stream"

    def spread_url(self, scan_ids: Sequence[str]) -> str:
        """One publisher over several bench scans: each payload to the one its seq picks."""
        return f"{self.mock_url}/bench/{','.join(scan_ids)}/publish"

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
            preexec_fn=raise_nofile,
            start_new_session=True,
        )

    def _write_configs(self) -> None:
        for replica, port in enumerate(self.gw_ports):
            path = self.tmp / f"gateway-{replica}.yaml"  # JSON is YAML
            db = self.tmp / f"gateway-{replica}.db"
            config = gateway_config(
                port, db, self.secret, self.mock_url, self.redis_url, self.extra_config
            )
            path.write_text(json.dumps(config, indent=1))
            self.config_paths.append(path)

    def _gateway_cmd(self, replica: int) -> list[str]:
        if self.snapshots is not None:
            cmd = [PY, str(ROOT / "bench" / "gateway_traced.py"), str(self.snapshots)]
        else:
            cmd = [PY, "-m", "gateway"]
        return [*cmd, "--config", str(self.config_paths[replica])]

    def _start_gateways(self) -> None:
        for replica in range(len(self.config_paths)):
            name = "gateway" if len(self.config_paths) == 1 else f"gateway-{replica}"
            self.gateways.append(self._spawn(name, self._gateway_cmd(replica)))
        for replica, proc in enumerate(self.gateways):
            wait_http(f"{self.gw_url(replica)}/healthz", proc)

    def sigterm(self, replica: int = 0) -> None:
        """Begin a replica's drain (it exits on its own once the drain is over)."""
        self.gateways[replica].send_signal(signal.SIGTERM)

    def restart(self, replica: int = 0) -> None:
        """SIGTERM a gateway, wait for it to exit, start it again on its port and config."""
        stop_process(self.gateways[replica], timeout=60)
        proc = self._spawn(f"gateway-{replica}-restarted", self._gateway_cmd(replica))
        self.gateways[replica] = proc
        wait_http(f"{self.gw_url(replica)}/healthz", proc)

    def _mint_token(self) -> str:
        cmd = [PY, "-m", "gateway", "token", "--sub", "bench", "--ttl", "7200"]
        cmd += ["--config", str(self.config_paths[0])]
        minted = subprocess.run(
            cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, check=True, timeout=60
        )
        return minted.stdout.strip()

    def start(self) -> Stack:
        if self.redis_port is not None:
            self.redis = self._spawn("redis", redis_server_cmd(self.redis_port, self.tmp))
            wait_redis(self.redis_port, self.redis)
        self._write_configs()
        self.mock = self._spawn(
            "mock", [PY, str(ROOT / "bench" / "mock_server.py"), "--port", str(self.mock_port)]
        )
        wait_http(f"{self.mock_url}/healthz", self.mock)
        self._start_gateways()
        self.token = self._mint_token()
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

    def create_collection(self, scanners: Sequence[str], **knobs: Any) -> tuple[str, list[str]]:
        """A collection of bench scans, one per scanner: (its id, its scans' ids)."""
        body = {
            "repository_name": "bench/repo",
            "scanners": list(scanners),
            "configurations": {"bench": True, **knobs},
        }
        url = f"{self.gw}{COLLECTIONS_API}/?use_sse=true"
        status, answer = http("POST", url, body, self.auth)
        if status != 201:
            raise RuntimeError(f"POST collection answered {status}: {answer!r}")
        return answer["data"]["collection_id"], answer["data"]["scan_ids"]

    def collection(self, collection_id: str) -> dict[str, Any]:
        url = f"{self.gw}{COLLECTIONS_API}/{collection_id}"
        status, answer = http("GET", url, headers=self.auth)
        if status != 200:
            raise RuntimeError(f"GET collection answered {status}: {answer!r}")
        data: dict[str, Any] = answer["data"]
        return data

    def scan(self, scan_id: str) -> dict[str, Any]:
        status, answer = http("GET", f"{self.gw}{API}/{scan_id}", headers=self.auth)
        if status != 200:
            raise RuntimeError(f"GET scan answered {status}: {answer!r}")
        data: dict[str, Any] = answer["data"]
        return data

    def start_bench_scan(self) -> str:
        """One bench scan, once the gateway reports it scanning."""
        scan_id = self.create_scan()
        self.wait_scans([scan_id], scanning, 30)
        return scan_id

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
