"""Build the gateway's image (``make image``): wheels built here, installed in the image.

The image's build needs no network: the gateway's wheel and every dependency's are built on
this machine (pinned to the versions of the Python running this script, so the image gets what
the tests ran with), then ``Containerfile`` installs them from its build context.

pip evaluates environment markers with the Python it runs on, and the base image's may differ
in a micro version (Debian bookworm's 3.11.2 needs ``async-timeout`` for redis, 3.11.3+ does
not). So the base image's Python is asked for its marker environment first, and whatever its
markers require that is not among the wheels yet is built too.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("gateway", "mock_scanner", "setup.cfg", "pyproject.toml", "README.md", "config.yaml")
DISTRIBUTION = "xployt-gateway"
EXTRAS = frozenset({"fast"})
DEFAULT_TAG = "localhost/xployt-gateway:dev"
MAX_ROUNDS = 5  # rounds of "build what the target's markers still need"

# The marker environment (PEP 508) of the Python it runs on, as JSON; run inside the base image.
PROBE = """
import json, os, platform, sys
v = sys.implementation.version
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": f"{v.major}.{v.minor}.{v.micro}",
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"""


class BuildError(Exception):
    """Something the user has to fix; its text says what."""


def run(argv: Sequence[str | Path], env: Mapping[str, str] | None = None) -> str:
    """Run a command; its stdout, or a BuildError with what it printed."""
    command = [str(arg) for arg in argv]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        raise BuildError(f"{' '.join(command)} failed ({result.returncode}):\n{output}")
    return result.stdout


def find_engine(wanted: str | None) -> str:
    """podman, else docker (or the one named)."""
    for name in [wanted] if wanted else ["podman", "docker"]:
        if shutil.which(name):
            return name
    raise BuildError(f"no container engine: install {wanted or 'podman or docker'}")


def target_environment(engine: str, base_image: str) -> dict[str, str]:
    """The base image's Python marker environment, asked without network."""
    out = run([engine, "run", "--rm", "--network", "none", base_image, "python3", "-c", PROBE])
    environment: dict[str, str] = json.loads(out)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    there = environment["python_version"]
    if there != here:
        raise BuildError(
            f"{base_image} has Python {there}, the wheels would be built with {here}: choose a "
            f"base image with Python {here}, or build with Python {there} "
            f"(make clean; PYTHON=python{there} make image)"
        )
    return environment


def copy_sources(into: Path) -> Path:
    """What the wheel is built from, copied (links kept), so the build's ``build/`` and
    ``*.egg-info`` stay out of the checkout."""
    source = into / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, source / name, follow_symlinks=False)
    return source


def pins(work: Path) -> Path:
    """The versions installed beside this Python, as pip constraints."""
    frozen = run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"])
    lines = [line for line in frozen.splitlines() if "==" in line and " @ " not in line]
    path = work / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def pip_wheel(wheels: Path, constraints: Path, requirements: Iterable[str]) -> None:
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--disable-pip-version-check",
            "--no-build-isolation",
            "--quiet",
            "--constraint",
            constraints,
            "--wheel-dir",
            wheels,
            *requirements,
        ],
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )


def wheel_requirements(wheels: Path) -> dict[str, list[Requirement]]:
    """Each wheel's distribution name and its Requires-Dist."""
    found: dict[str, list[Requirement]] = {}
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            headers = HeaderParser().parsestr(archive.read(metadata).decode())
        requires = [Requirement(line) for line in headers.get_all("Requires-Dist") or []]
        found[canonicalize_name(headers["Name"])] = requires
    return found


def missing(
    available: Mapping[str, list[Requirement]], environment: Mapping[str, str]
) -> list[str]:
    """Requirements the target's markers bring in that no wheel here satisfies by name."""
    wanted: list[tuple[str, frozenset[str]]] = [(DISTRIBUTION, EXTRAS)]
    seen: set[tuple[str, str]] = set()
    absent: dict[str, str] = {}
    while wanted:
        name, extras = wanted.pop()
        for extra in {"", *extras} - {e for n, e in seen if n == name}:
            seen.add((name, extra))
            for requirement in available.get(name, []):
                marker = requirement.marker
                if marker is not None and not marker.evaluate({**environment, "extra": extra}):
                    continue
                needed = canonicalize_name(requirement.name)
                if needed in available:
                    wanted.append((needed, frozenset(requirement.extras)))
                else:
                    requirement.marker = None
                    absent[needed] = str(requirement)
    return sorted(absent.values())


def strip_wheel(wheel: Path) -> int:
    """Strip the debug info from a wheel's extension modules (uvloop's 13.6 MB loop module is
    1.9 MB without it); RECORD gets their new hashes. The bytes saved."""
    with zipfile.ZipFile(wheel) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    saved, hashes = 0, {}
    with tempfile.TemporaryDirectory() as scratch:
        for index, (info, data) in enumerate(entries):
            if not info.filename.endswith(".so"):
                continue
            path = Path(scratch) / str(index)
            path.write_bytes(data)
            run(["strip", "--strip-debug", path])
            stripped = path.read_bytes()
            saved += len(data) - len(stripped)
            entries[index] = (info, stripped)
            digest = base64.urlsafe_b64encode(hashlib.sha256(stripped).digest()).rstrip(b"=")
            hashes[info.filename] = f"{info.filename},sha256={digest.decode()},{len(stripped)}"
    if not hashes:
        return 0
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                records = [hashes.get(line.rsplit(",", 2)[0], line) for line in lines]
                data = ("\n".join(records) + "\n").encode()
            archive.writestr(info, data)
    return saved


def build_wheels(work: Path, environment: Mapping[str, str]) -> Path:
    wheels = work / "context" / "wheels"
    constraints = pins(work)
    pip_wheel(wheels, constraints, [f"{copy_sources(work)}[{','.join(sorted(EXTRAS))}]"])
    for _ in range(MAX_ROUNDS):
        needed = missing(wheel_requirements(wheels), environment)
        if not needed:
            break
        print(f"the base image's Python also needs: {', '.join(needed)}", flush=True)
        pip_wheel(wheels, constraints, needed)
    else:
        raise BuildError(f"still missing after {MAX_ROUNDS} rounds: {', '.join(needed)}")
    if shutil.which("strip"):
        saved = sum(strip_wheel(wheel) for wheel in wheels.glob("*.whl"))
        print(f"debug info stripped from extension modules: {saved / 1e6:.0f} MB", flush=True)
    else:
        print("no strip (binutils): extension modules keep their debug info", flush=True)
    return wheels


def build(engine: str, base_image: str, tag: str, work: Path) -> int:
    """Build the image; its size in bytes."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    environment = target_environment(engine, base_image)
    wheels = build_wheels(work, environment)
    print(f"{len(list(wheels.glob('*.whl')))} wheels in {wheels}", flush=True)
    run(
        [
            engine,
            "build",
            # podman keeps each stage's image by default; only the final one is wanted
            *(["--layers=false"] if Path(engine).name == "podman" else []),
            "--file",
            REPO / "Containerfile",
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "--tag",
            tag,
            wheels.parent,
        ]
    )
    return int(run([engine, "image", "inspect", "--format", "{{.Size}}", tag]).strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-image", required=True, help="a Debian-based image with python3")
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"image name (default {DEFAULT_TAG})")
    parser.add_argument("--engine", help="podman or docker (default: podman if installed)")
    parser.add_argument(
        "--work", type=Path, default=REPO / "build" / "image", help="scratch folder (emptied)"
    )
    args = parser.parse_args(argv)
    try:
        engine = find_engine(args.engine)
        size = build(engine, args.base_image, args.tag, args.work)
    except BuildError as exc:
        print(f"make image: {exc}", file=sys.stderr)
        return 1
    print(f"built {args.tag} with {engine} from {args.base_image}: {size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
