"""The wheel: built from a copy of the checkout, installed into a fresh venv outside it, and
run from there: ``python -m mock_scanner`` and ``python -m gateway`` (on the defaults the wheel
ships, no config file) through one scan to its end, over HTTP with a token.

The venv has no pip and installs no dependencies: a ``.pth`` file lets it see this test run's
site-packages for them. Only paths are added that way (the editable install's own ``.pth``
hook is not run), so ``gateway`` and ``mock_scanner`` can only come from the wheel; the test
checks that they do.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from email.parser import HeaderParser
from pathlib import Path

import aiohttp
import pytest

from gateway.config import DEFAULT_CONFIG_PATH
from gateway.http.routes.demo import ASSETS
from tests.helpers import SECRET, read_events
from tests.processes import free_port

REPO = Path(__file__).resolve().parent.parent
# What a wheel is built from; everything else in the checkout (its venv, caches, the
# database of a local run, tests and docs) is left out of the copy.
SOURCES = ("gateway", "mock_scanner", "setup.cfg", "pyproject.toml", "README.md", "config.yaml")
STEP_TIMEOUT = 120  # seconds for any one build, install or start

pytestmark = pytest.mark.slow


def test_the_packaged_defaults_are_the_repository_config_yaml():
    """One source of truth: the package's defaults file is a link to the top-level one."""
    assert DEFAULT_CONFIG_PATH == REPO / "gateway" / "config.yaml"
    assert DEFAULT_CONFIG_PATH.is_symlink()
    assert DEFAULT_CONFIG_PATH.resolve() == (REPO / "config.yaml").resolve()


async def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command to its end; its stdout, or a failure with its output."""
    process = await asyncio.create_subprocess_exec(
        *map(str, argv),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"{argv} failed:\n{out.decode()}\n{err.decode()}"
    return out.decode()


def build_wheel_source(into: Path) -> Path:
    """A copy of what the wheel is built from (links kept as links), so the build's own
    ``build/`` and ``*.egg-info`` never land in the checkout."""
    source = into / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, source / name, follow_symlinks=False)
    return source


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point Python or the gateway elsewhere."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "XPLOYT_", "VIRTUAL_ENV", "PIP_"))
    }
    return {**env, **extra}


@pytest.fixture
async def installed(tmp_path: Path) -> Path:
    """The python of a fresh venv (outside the checkout) with the built wheel installed."""
    source = build_wheel_source(tmp_path)
    wheels = tmp_path / "wheels"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    await run(
        *pip,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        wheels,
        source,
        cwd=tmp_path,
        env=clean_env(),
    )
    [wheel] = wheels.glob("xployt_gateway-*.whl")
    check_wheel(wheel)

    venv = tmp_path / "venv"
    await run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=clean_env())
    python = venv / "bin" / "python"
    await run(
        *pip,
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        wheel,
        cwd=tmp_path,
        env=clean_env(),
    )
    site = Path((await run(python, "-I", "-c", PURELIB, cwd=tmp_path)).strip())
    ours = sysconfig.get_paths()
    (site / "test-dependencies.pth").write_text(
        "\n".join(dict.fromkeys([ours["purelib"], ours["platlib"]])) + "\n"
    )
    where = await run(python, "-I", "-c", WHERE, cwd=tmp_path, env=clean_env())
    for module, path in zip(("gateway", "mock_scanner"), where.split(), strict=True):
        assert Path(path).is_relative_to(site), f"{module} imported from {path}, not the wheel"
        assert not Path(path).is_relative_to(REPO)
    return python


PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
WHERE = "import gateway, mock_scanner; print(gateway.__file__); print(mock_scanner.__file__)"


def check_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("gateway/config.yaml")
        names = set(archive.namelist())
        [metadata] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        headers = HeaderParser().parsestr(archive.read(metadata).decode())
    assert shipped == (REPO / "config.yaml").read_bytes(), "the wheel ships the defaults' content"
    # The files the demo page and the API docs page load from gateway/static.
    pages = {f"gateway/static/{name}" for name in ASSETS | {"index.html"}}
    assert pages <= names, sorted(pages - names)
    requires = headers.get_all("Requires-Dist") or []
    # Without the extra, pyjwt has no RSA, EC or EdDSA, and every RS256 token is refused.
    assert any(line.replace(" ", "").startswith("pyjwt[crypto]") for line in requires), requires


@asynccontextmanager
async def process(
    argv: Sequence[str | Path], cwd: Path, env: dict[str, str], ready: str | None = None
) -> AsyncIterator[list[str]]:
    """A long-running process and its log lines; with ``ready``, entered once a log line
    contains it. Killed on the way out."""
    child = await asyncio.create_subprocess_exec(
        *map(str, argv), cwd=cwd, env=env, stderr=asyncio.subprocess.PIPE
    )
    lines: list[str] = []
    seen = asyncio.Event()
    assert child.stderr is not None
    stderr = child.stderr

    async def read_log() -> None:
        while line := await stderr.readline():
            lines.append(line.decode())
            if ready is not None and ready in lines[-1]:
                seen.set()

    reader = asyncio.create_task(read_log())
    try:
        if ready is not None:
            waiter = asyncio.create_task(seen.wait())
            await asyncio.wait(
                {waiter, reader}, timeout=STEP_TIMEOUT, return_when="FIRST_COMPLETED"
            )
            waiter.cancel()
            assert seen.is_set(), f"{argv} is not ready:\n{''.join(lines)}"
        yield lines
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
        await reader


async def wait_until_listening(session: aiohttp.ClientSession, url: str) -> None:
    """The mock scanner logs nothing once it listens: ask its health endpoint, a bounded
    number of times."""
    for _ in range(STEP_TIMEOUT * 10):
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing answers at {url}")


async def test_the_installed_wheel_runs_a_scan(installed: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"  # the working directory: no config.yaml, no checkout
    run_dir.mkdir()
    scanner_port, gateway_port = free_port(), free_port()
    scanner_url = f"http://127.0.0.1:{scanner_port}"
    env = clean_env(
        XPLOYT_JWT_SECRET=SECRET,
        XPLOYT_SCANNER_SECRET_SCANNER=f"{scanner_url}/scanners/secret_scanner/scan",
    )
    python = ("-I", "-m")  # isolated: neither the cwd nor PYTHON* variables on the path
    token = (
        await run(installed, *python, "gateway", "token", "--sub", "alice", cwd=run_dir, env=env)
    ).strip()
    headers = {"Authorization": f"Bearer {token}"}
    scanner = (
        installed,
        *python,
        "mock_scanner",
        "--port",
        str(scanner_port),
        "--step-delay",
        "0.01",
        "--steps",
        "3",
    )
    gateway = (installed, *python, "gateway", "--port", str(gateway_port))
    async with (
        process(scanner, run_dir, env),
        process(gateway, run_dir, env, ready="Running on") as gateway_log,
        aiohttp.ClientSession(f"http://127.0.0.1:{gateway_port}") as client,
    ):
        await wait_until_listening(client, f"{scanner_url}/healthz")
        started = await client.post(
            "/api/v1/scans/?use_sse=true",
            json={"repository_name": "acme/web", "scanner_name": "secret_scanner"},
            headers=headers,
        )
        assert started.status == 201, await started.text()
        scan_id = (await started.json())["data"]["scan_id"]
        async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=headers) as stream:
            events = await read_events(stream)
        assert events[-1][1]["status"] == "completed", events
        record = await client.get(f"/api/v1/scans/{scan_id}", headers=headers)
        assert (await record.json())["data"]["status"] == "completed"
    assert (run_dir / "var" / "gateway.db").exists(), "the shipped default database.path"
    assert any("Running on" in line for line in gateway_log)
