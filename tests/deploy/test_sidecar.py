"""The sidecar deployment for real: the image built as ``make image`` builds it (on a Debian
base made here, without a registry), ``deploy/kubernetes/sidecar.yaml`` played by podman, a
scan run through the pod's published port to its end, the lock-down checked from inside, SIGTERM
handled as on bare metal, and everything the run made removed again (the base image is kept for
later runs, as a cache).

Only ``python -m gateway`` / ``python -m mock_scanner``, the config file and the HTTP API are
used: nothing of the gateway's modules. Skipped, with the reason, without root, podman or runc.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
import pytest
import yaml

from tests.deploy.podman import (
    CONTAINERS_CONF,
    KUBE_NETWORK,
    REPO,
    Podman,
    as_deployment,
    base_image,
    build_image,
    for_this_run,
    of_kind,
    played,
    pod_name,
    podman_secret,
    secret_names,
    shipped_manifest,
    wait_ready,
    why_not_here,
)
from tests.helpers import auth, read_events
from tests.keys import SECRET
from tests.processes import free_port

pytestmark = pytest.mark.slow

IMAGE_SIZE_AIM = 200_000_000  # bytes (the README states the measured size)
STOP_SECONDS = 60  # podman stop's grace here: a killed gateway would take all of it
# Run in the image: what of pip, setuptools, compilers, the wheels and caches it finds.
LEFT_BEHIND = """
import glob, importlib.util, shutil
print(*[m for m in ("pip", "setuptools", "wheel") if importlib.util.find_spec(m)])
print(*filter(None, map(shutil.which, ("pip", "gcc", "cc", "make"))))
print(*glob.glob("/tmp/*"), *glob.glob("/root/.cache"), *glob.glob("/opt/venv/**/*.whl"))
"""


def gateway_config() -> dict[str, Any]:
    """The gateway's config file as the manifest's ConfigMap holds it."""
    config_map = of_kind(shipped_manifest(), "ConfigMap")
    return dict(yaml.safe_load(config_map["data"]["config.yaml"]))


def clean_environ() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("XPLOYT_")}


def containers(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in of_kind(documents, "Pod")["spec"]["containers"]}


# --- The manifest as shipped (no podman needed) ----------------------------------------------


def test_the_manifest_locks_the_pod_down() -> None:
    documents = shipped_manifest()
    spec = of_kind(documents, "Pod")["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    pod_containers = containers(documents)
    assert set(pod_containers) == {"scanner", "gateway"}
    for container in pod_containers.values():
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, container["name"]


def test_the_gateway_reads_its_config_and_secret_from_the_pod_and_its_scanner_on_loopback() -> None:
    documents = shipped_manifest()
    config = gateway_config()
    gateway, scanner = containers(documents)["gateway"], containers(documents)["scanner"]
    mounts = {mount["name"]: mount for mount in gateway["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in of_kind(documents, "Pod")["spec"]["volumes"]}

    # --config names the ConfigMap's key where it is mounted, read-only.
    config_path = Path(gateway["command"][gateway["command"].index("--config") + 1])
    [config_volume] = [name for name, v in volumes.items() if "configMap" in v]
    assert config_path == Path(mounts[config_volume]["mountPath"]) / "config.yaml"
    assert mounts[config_volume]["readOnly"] is True
    assert (
        volumes[config_volume]["configMap"]["name"]
        == of_kind(documents, "ConfigMap")["metadata"]["name"]
    )
    # The SQLite file is on a writable volume, the root filesystem being read-only.
    database = Path(config["database"]["path"])
    [data] = [m for m in mounts.values() if database.parent == Path(m["mountPath"])]
    assert not data.get("readOnly", False)
    assert "emptyDir" in volumes[data["name"]]
    # The JWT secret comes from a Secret.
    [variable] = [v for v in gateway["env"] if v["name"] == "XPLOYT_JWT_SECRET"]
    assert variable["valueFrom"]["secretKeyRef"]["key"] == "jwt-secret"
    assert "secret" not in config.get("jwt", {})
    # Every scanner URL is the scanner container, on the pod's loopback.
    scanner_port = int(scanner["command"][scanner["command"].index("--port") + 1])
    assert scanner["command"][scanner["command"].index("--host") + 1] == "127.0.0.1"
    origins = {urlsplit(url).netloc for url in config["scanners"].values()}
    assert origins == {f"127.0.0.1:{scanner_port}"}


def test_the_probes_and_the_grace_period_match_the_gateway() -> None:
    documents = shipped_manifest()
    config = gateway_config()
    gateway = containers(documents)["gateway"]
    port = config["server"]["port"]
    assert [p["containerPort"] for p in gateway["ports"]] == [port]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert config["server"]["host"] == "0.0.0.0", "probes and Services reach the pod's address"
    # SIGTERM, then the gateway's drain and its own shutdown, then some room before the kill.
    grace = of_kind(documents, "Pod")["spec"]["terminationGracePeriodSeconds"]
    server = config["server"]
    assert server["drain_seconds"] >= 600, "long enough for real scans to end"
    assert grace > server["drain_seconds"] + server["shutdown_grace_seconds"]


def test_the_config_map_is_a_config_the_gateway_accepts(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(of_kind(shipped_manifest(), "ConfigMap")["data"]["config.yaml"])
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "token", "--sub", "probe", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**clean_environ(), "XPLOYT_JWT_SECRET": SECRET},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "probe"


# --- Under podman ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """A played copy of the shipped manifest."""

    name: str
    url: str
    documents: list[dict[str, Any]]

    def container(self, name: str) -> str:
        return f"{self.name}-{name}"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman set up for this machine; on the way out, what podman made for itself on a first
    ``kube play`` (its kube network and pause image) is removed if this run made it."""
    if reason := why_not_here():
        pytest.skip(reason)
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    engine = Podman(conf)
    had_network = engine.exists("network", KUBE_NETWORK)
    had_pause = engine.pause_images()
    yield engine
    if not had_network:
        engine("network", "rm", KUBE_NETWORK, check=False)  # not with -f: another run may use it
    for image in engine.pause_images() - had_pause:
        engine("rmi", image, check=False)


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """This run's gateway image and its size in bytes, removed at the end."""
    scratch = tmp_path_factory.mktemp("image")
    base = base_image(podman, scratch)
    tag = f"localhost/xployt-gateway:test-{secrets.token_hex(4)}"
    size = build_image(podman, base, tag, scratch / "work")
    shutil.rmtree(scratch / "work")  # the wheels and the sources' copy
    try:
        yield tag, size
    finally:
        podman("rmi", tag)
    assert not podman.exists("image", tag)


@pytest.fixture(scope="module")
def run_manifest(
    podman: Podman, image: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[dict[str, Any]]]:
    """The shipped manifest for this run (names of its own, its image, a free loopback port),
    with the podman secret it reads."""
    scratch = tmp_path_factory.mktemp("manifest")
    documents = for_this_run(shipped_manifest(), f"-t{secrets.token_hex(3)}", image[0], free_port())
    [(secret, key)] = secret_names(documents)
    with podman_secret(podman, secret, key, SECRET, scratch):
        yield documents
    assert not podman.exists("secret", secret)


def host_port(documents: list[dict[str, Any]]) -> int:
    [port] = [p["hostPort"] for c in containers(documents).values() for p in c.get("ports", [])]
    return int(port)


@pytest.fixture(scope="module")
def pod(
    podman: Podman, run_manifest: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pod]:
    """The manifest played, its gateway ready."""
    path = tmp_path_factory.mktemp("pod") / "sidecar.yaml"
    url = f"http://127.0.0.1:{host_port(run_manifest)}"
    with played(podman, run_manifest, path):
        wait_ready(url)
        yield Pod(pod_name(of_kind(run_manifest, "Pod")), url, run_manifest)


def test_the_image_is_small_and_runs_as_a_user(podman: Podman, image: tuple[str, int]) -> None:
    tag, size = image
    assert size < IMAGE_SIZE_AIM, f"{size / 1e6:.0f} MB"
    user = podman("image", "inspect", "--format", "{{.Config.User}}", tag).stdout.strip()
    assert user == "10001:10001"
    # Nothing that installs or builds, and no cache, is left for the running gateway.
    found = podman("run", "--rm", "--network", "none", tag, "python", "-c", LEFT_BEHIND).stdout
    assert found.split() == [], found


async def test_a_scan_runs_through_the_pod_to_completion(pod: Pod) -> None:
    async with aiohttp.ClientSession(pod.url) as http:
        async with http.get("/healthz") as health:
            assert health.status == 200
        async with http.get("/readyz") as ready:
            checks = (await ready.json())["data"]["checks"]
        assert checks.pop("store") == "ok"
        assert checks and set(checks.values()) == {"ok"}, "the scanner answers on 127.0.0.1"
        # The secret in use is the pod's Secret, not the shipped development one.
        shipped = yaml.safe_load((REPO / "config.yaml").read_text())["jwt"]["secret"]
        dev_token = jwt.encode({"sub": "alice", "exp": time.time() + 60}, shipped, "HS256")
        async with http.get(
            "/api/v1/scans/", headers={"Authorization": f"Bearer {dev_token}"}
        ) as r:
            assert r.status == 401

        body = {
            "repository_name": "acme/web",
            "scanner_name": "secret_scanner",
            "configurations": {"step_delay": 0.05, "steps": 5},
        }
        async with http.post("/api/v1/scans/?use_sse=true", json=body, headers=auth()) as started:
            assert started.status == 201, await started.text()
            scan_id = (await started.json())["data"]["scan_id"]
        async with http.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as stream:
            events = await asyncio.wait_for(read_events(stream), 60)
        assert [event_id for event_id, _ in events] == list(range(1, len(events) + 1))
        statuses = [data["status"] for _, data in events]
        assert statuses[0] == "pending" and statuses[-1] == "completed", statuses
        assert "scanning" in statuses, "progress came from the scanner container"
        async with http.get(f"/api/v1/scans/{scan_id}/results", headers=auth()) as results:
            assert results.status == 200
            assert (await results.json())["data"]["total_findings"] > 0


def test_processes_run_as_non_root_on_a_read_only_root(podman: Podman, pod: Pod) -> None:
    user = of_kind(pod.documents, "Pod")["spec"]["securityContext"]["runAsUser"]
    database = Path(gateway_config()["database"]["path"])
    for name in ("scanner", "gateway"):
        container = pod.container(name)
        [_, *processes] = podman("top", container, "huser", "args").stdout.splitlines()
        assert processes and all(line.split()[0] == str(user) for line in processes), processes
        status = dict(
            line.split(":\t", 1)
            for line in podman("exec", container, "cat", "/proc/1/status").stdout.splitlines()
        )
        assert status["Uid"].split() == [str(user)] * 4
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        for path in ("/probe", "/opt/venv/probe", "/tmp/probe"):
            written = podman("exec", container, "touch", path, check=False)
            assert written.returncode != 0 and "Read-only file system" in written.stderr, path
    # The one writable place: the data volume, with the gateway's SQLite file.
    found = podman("exec", pod.container("gateway"), "ls", database.parent).stdout.split()
    assert database.name in found


async def status_of(http: aiohttp.ClientSession, path: str) -> int:
    async with http.get(path) as response:
        return response.status


async def test_sigterm_drains_as_on_bare_metal(podman: Podman, pod: Pod) -> None:
    """``podman stop`` sends the gateway SIGTERM: it is not ready any more and starts no new
    scan, while the running one goes on to completion on its open stream; then the process
    exits 0, long before its grace period. Started again, it serves the scan from the SQLite
    file on the pod's volume."""
    gateway = pod.container("gateway")
    body = {
        "repository_name": "acme/web",
        "scanner_name": "secret_scanner",
        "configurations": {"step_delay": 0.5, "steps": 16},  # about 8 s
    }
    async with aiohttp.ClientSession(pod.url) as http:
        async with http.post("/api/v1/scans/?use_sse=true", json=body, headers=auth()) as started:
            scan_id = (await started.json())["data"]["scan_id"]
        async with http.get(f"/api/v1/scans/{scan_id}/stream", headers=auth()) as stream:
            await asyncio.wait_for(stream.content.readuntil(b"\n\nid: 3\n"), 60)  # live
            stop = await asyncio.create_subprocess_exec(
                "podman", "stop", "--time", str(STOP_SECONDS), gateway, env=podman.env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            began = time.monotonic()
            while await status_of(http, "/readyz") != 503:  # until SIGTERM has reached it
                assert time.monotonic() - began < STOP_SECONDS, "never drained"
                await asyncio.sleep(0.1)
            async with http.post("/api/v1/scans/", json=body, headers=auth()) as refused:
                assert refused.status == 503
                assert (await refused.json())["error"] == "draining"
            tail = await asyncio.wait_for(stream.content.read(), STOP_SECONDS)
            assert await asyncio.wait_for(stop.wait(), STOP_SECONDS) == 0
            took = time.monotonic() - began
    assert b'"status":"completed"' in tail.rsplit(b"id: ", 1)[-1], tail[-300:]
    assert b"reconnect" not in tail, "served to its end, never told to go"
    assert took < STOP_SECONDS / 2, f"stopped in {took:.1f} s: killed, not drained?"
    state = podman("inspect", "--format", "{{.State.ExitCode}}", gateway).stdout.strip()
    assert state == "0"

    podman("start", gateway)
    wait_ready(pod.url)
    async with (
        aiohttp.ClientSession(pod.url) as http,
        http.get(f"/api/v1/scans/{scan_id}", headers=auth()) as record,
    ):
        scan = (await record.json())["data"]
    assert (scan["status"], scan["error"]) == ("completed", None)


def test_the_pod_spec_runs_in_a_deployment(
    podman: Podman, image: tuple[str, int], tmp_path: Path
) -> None:
    """The README's way: the same pod spec as a Deployment's template."""
    port = free_port()
    documents = for_this_run(shipped_manifest(), f"-d{secrets.token_hex(3)}", image[0], port)
    deployment = as_deployment(of_kind(documents, "Pod"))
    [(secret, key)] = secret_names(documents)
    with (
        podman_secret(podman, secret, key, SECRET, tmp_path),
        played(podman, [of_kind(documents, "ConfigMap"), deployment], tmp_path / "d.yaml"),
    ):
        wait_ready(f"http://127.0.0.1:{port}")
        top = podman("pod", "top", pod_name(deployment), "huser", "args").stdout
        assert "python -m gateway" in top and "python -m mock_scanner" in top
