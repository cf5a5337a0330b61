"""Podman for the deployment tests: the engine set up for the machines this runs on, a Debian
base image built without a registry, the gateway's image, and the shipped manifest made safe to
play beside anything else on the machine.

What the machines here need (found by trying): podman's default runtime, crun, fails on cgroups
in hybrid mode, and its default rlimits exceed the machine's hard limits; runc and explicit
ulimits in a containers.conf of our own (``CONTAINERS_CONF``) work. No container registry is
reachable, so the base image is built with debootstrap from the Debian mirror apt uses and
imported (with a PATH, which an imported tarball lacks), then kept for later runs.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MANIFEST = REPO / "deploy" / "kubernetes" / "sidecar.yaml"

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
"""

# The base image's Debian release, chosen by this Python: the wheels are built with it, so the
# image's Python must have the same minor version.
DEBIAN_RELEASES = {(3, 11): "bookworm", (3, 13): "trixie"}
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
# Emptied in the base (their folders kept), as Debian's slim images do: package caches and
# lists, docs, man pages, locales.
SLIMMED = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
)
IMPORTED_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What podman makes for itself on a first `kube play`; removed again if a run made them.
KUBE_NETWORK = "podman-default-kube-network"
PAUSE_IMAGE_PREFIX = "localhost/podman-pause:"

STEP_TIMEOUT = 600  # seconds for one debootstrap, image build or podman command
READY_TIMEOUT = 60  # seconds for a played pod's gateway to answer /readyz with 200


class Podman:
    """podman with this machine's containers.conf."""

    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(
        self, *args: str | Path, check: bool = True, stdin: Any = None
    ) -> subprocess.CompletedProcess[str]:
        argv = ["podman", *map(str, args)]
        result = subprocess.run(
            argv,
            env=self.env,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed:\n{result.stdout}{result.stderr}")
        return result

    def exists(self, kind: str, name: str) -> bool:
        if kind == "secret":  # podman 4.3 has no `secret exists`
            return self("secret", "inspect", name, check=False).returncode == 0
        return self(kind, "exists", name, check=False).returncode == 0

    def pause_images(self) -> set[str]:
        listed = self("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        return {name for name in listed if name.startswith(PAUSE_IMAGE_PREFIX)}


def why_not_here() -> str | None:
    """Why the pod tests cannot run on this machine, or None."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (debootstrap, and podman kube play as tried here)"
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install podman runc debootstrap)"
    if (sys.version_info[0], sys.version_info[1]) not in DEBIAN_RELEASES:
        return f"no Debian release with this Python ({sys.version.split()[0]}) for the base image"
    return None


def debian_mirror(release: str) -> str:
    """The Debian mirror apt uses for ``release`` (as ``apt-cache policy`` lists it), or
    XPLOYT_DEBIAN_MIRROR."""
    if mirror := os.environ.get("XPLOYT_DEBIAN_MIRROR"):
        return mirror
    policy = subprocess.run(["apt-cache", "policy"], capture_output=True, text=True, check=False)
    for line in policy.stdout.splitlines():
        # " 500 http://deb.debian.org/debian bookworm/main amd64 Packages"
        match line.split():
            case [_, url, suite, _, "Packages"] if suite == f"{release}/main":
                return url
    raise AssertionError(f"no {release}/main mirror in `apt-cache policy` (apt-get update?)")


def base_image(podman: Podman, scratch: Path) -> str:
    """The local Debian base for this Python, built and imported unless a run already did."""
    release = DEBIAN_RELEASES[(sys.version_info[0], sys.version_info[1])]
    tag = f"localhost/debian-base:{release}"
    if podman.exists("image", tag):
        return tag
    if shutil.which("debootstrap") is None:
        pytest.skip(f"no {tag} image, and debootstrap to build it is not installed")
    rootfs = scratch / "rootfs"
    argv = ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", release]
    try:
        done = subprocess.run(
            [*argv, str(rootfs), debian_mirror(release)],
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"debootstrap failed:\n{done.stdout[-3000:]}{done.stderr}"
        for path in SLIMMED:
            for found in list((rootfs / path).rglob("*")):
                if not found.is_dir() or found.is_symlink():
                    found.unlink()
        with subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE) as tar:
            podman("import", "--change", f"ENV {IMPORTED_PATH}", "-", tag, stdin=tar.stdout)
        assert tar.returncode == 0, "tar of the base's root filesystem failed"
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return tag


def build_image(podman: Podman, base: str, tag: str, work: Path) -> int:
    """The gateway's image, built as ``make image`` builds it; its size in bytes."""
    script = REPO / "scripts" / "build_image.py"
    argv = [sys.executable, script, "--engine", "podman", "--base-image", base, "--tag", tag]
    result = subprocess.run(
        [*map(str, argv), "--work", str(work)],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"make image's script failed:\n{result.stdout}{result.stderr}"
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)


def shipped_manifest() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(SHIPPED_MANIFEST.read_text()))


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [document] = [doc for doc in documents if doc["kind"] == kind]
    return document


def for_this_run(
    documents: list[dict[str, Any]], suffix: str, image: str, host_port: int
) -> list[dict[str, Any]]:
    """The shipped manifest with only what one run must own changed: every name (pod, config
    map, volumes, the secret it reads) ends with ``suffix``, the image is this run's, and the
    gateway is published on ``host_port`` (of the loopback)."""
    documents = copy.deepcopy(documents)
    for document in documents:
        document["metadata"]["name"] += suffix
    spec = of_kind(documents, "Pod")["spec"]
    for volume in spec["volumes"]:
        volume["name"] += suffix
        if "configMap" in volume:
            volume["configMap"]["name"] += suffix
    for container in spec["containers"]:
        container["image"] = image
        for mount in container.get("volumeMounts", []):
            mount["name"] += suffix
        for variable in container.get("env", []):
            if "secretKeyRef" in variable.get("valueFrom", {}):
                variable["valueFrom"]["secretKeyRef"]["name"] += suffix
        for port in container.get("ports", []):
            if "hostPort" in port:
                port["hostPort"] = host_port
                assert port["hostIP"] == "127.0.0.1", "published on the loopback only"
    return documents


def as_deployment(pod: dict[str, Any]) -> dict[str, Any]:
    """The README's way to run the pod in a Deployment: its spec, as is, as the template."""
    labels = pod["metadata"]["labels"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": pod["metadata"]["name"], "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod["spec"]},
        },
    }


def pod_name(document: dict[str, Any]) -> str:
    """The pod podman makes of a Pod or a Deployment (podman 4.3 names the latter's so)."""
    name = str(document["metadata"]["name"])
    return name if document["kind"] == "Pod" else f"{name}-pod-0"


def secret_names(documents: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(secret, key) of every secretKeyRef in the pod."""
    spec = of_kind(documents, "Pod")["spec"]
    return [
        (ref["name"], ref["key"])
        for container in spec["containers"]
        for variable in container.get("env", [])
        if (ref := variable.get("valueFrom", {}).get("secretKeyRef"))
    ]


@contextmanager
def podman_secret(podman: Podman, name: str, key: str, value: str, scratch: Path) -> Iterator[None]:
    """A podman secret that a secretKeyRef reads. podman 4.3 (Debian 12) reads it as a JSON
    object of base64 values, and cannot play a Secret manifest."""
    path = scratch / f"{name}.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps({key: base64.b64encode(value.encode()).decode()}))
    try:
        podman("secret", "create", name, path)
    finally:
        path.unlink()
    try:
        yield
    finally:
        podman("secret", "rm", name)


def wait_ready(url: str) -> None:
    """Poll the gateway's /readyz until 200: nothing on the host can be awaited instead."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = "nothing answered"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"{exc.code}: {exc.read()[:500]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"{url}/readyz not 200 within {READY_TIMEOUT} s: {last}")


@contextmanager
def played(podman: Podman, documents: list[dict[str, Any]], path: Path) -> Iterator[None]:
    """``podman kube play`` the documents; ``podman kube down`` them and remove the config
    maps' volumes on the way out, and check that nothing of theirs is left."""
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    config_maps = [doc["metadata"]["name"] for doc in documents if doc["kind"] == "ConfigMap"]
    pods = [pod_name(doc) for doc in documents if doc["kind"] in ("Pod", "Deployment")]
    specs = [doc["spec"] for doc in documents if doc["kind"] == "Pod"]
    specs += [doc["spec"]["template"]["spec"] for doc in documents if doc["kind"] == "Deployment"]
    volumes = [v["name"] for spec in specs for v in spec["volumes"] if "emptyDir" in v]
    try:
        podman("kube", "play", path)
        yield
    finally:
        podman("kube", "down", path)
        for name in config_maps:  # podman keeps a config map's volume after kube down
            podman("volume", "rm", name, check=False)
    left = [name for name in pods if podman.exists("pod", name)]
    left += [name for name in config_maps + volumes if podman.exists("volume", name)]
    assert not left, f"left behind: {left}"
