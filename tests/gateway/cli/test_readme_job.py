"""The README's CI job is built from commands that exist: its scan step, as the workflow gives
it, against a real gateway and mock scanner (exit 6, a SARIF report that validates, which the
upload step then finds), and its "try it" steps that start the mock scanner and a gateway on the
embedded defaults (moved to free ports) before the same scan step."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from gateway import cli
from tests.helpers import assert_valid_sarif, token

README = Path(__file__).resolve().parents[3] / "README.md"
_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def yaml_blocks() -> list[str]:
    section = README.read_text().split("### A CI job", 1)[1].split("\n## ", 1)[0]
    return _BLOCK.findall(section)


def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(yaml_blocks()[0])
    return document


def step(name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = workflow()["jobs"]["scan"]["steps"]
    return next(item for item in steps if item.get("name") == name)


def scan_command() -> str:
    """The scan step's shell command, with the one expression GitHub would fill in."""
    command: str = step("Scan with every scanner")["run"]
    return command.replace("${{ github.repository }}", "acme/web")


async def shell(command: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """``command`` as the runner runs a step: bash, with this venv's python first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-e",
        "-c",
        command,
        env={**os.environ, **env, "PATH": path},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def test_the_workflow_asks_what_the_upload_needs():
    document = workflow()
    assert document["permissions"]["security-events"] == "write"
    upload = step("Upload the report to code scanning")
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert upload["with"]["sarif_file"] in scan_command()
    assert "hashFiles('xployt.sarif')" in upload["if"]
    env = step("Scan with every scanner")["env"]
    assert set(env) == {"XPLOYT_URL", "XPLOYT_TOKEN"}
    assert env["XPLOYT_TOKEN"].startswith("${{ secrets.")


async def test_the_scan_step_fails_on_high_and_writes_a_valid_report(client, tmp_path):
    env = {"XPLOYT_URL": str(client.server.make_url("")), "XPLOYT_TOKEN": token("ci")}
    code, stdout, stderr = await shell(scan_command(), env, tmp_path)
    assert code == cli.EXIT_FINDINGS, stderr + stdout
    assert "--fail-on high: " in stdout
    assert_valid_sarif(json.loads((tmp_path / "xployt.sarif").read_bytes()))
    assert token("ci") not in stdout + stderr


async def test_try_it_starts_a_gateway_the_scan_step_then_uses(tmp_path, unused_tcp_port_factory):
    start: str = yaml.safe_load(yaml_blocks()[1])[0]["run"]
    gateway_port, scanner_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    # The same commands on free ports: the gateway's from the environment, the mock scanner's
    # by its --port flag, and the scanners' URLs pointed at it.
    start = start.replace(
        "python -m mock_scanner &", f"python -m mock_scanner --port {scanner_port} &"
    )
    start = start.replace("127.0.0.1:8000", f"127.0.0.1:{gateway_port}")
    env = {"XPLOYT_PORT": str(gateway_port), "XPLOYT_DEV_MODE": "false"}
    for name in ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner"):
        url = f"http://127.0.0.1:{scanner_port}/scanners/{name}/scan"
        env[f"XPLOYT_SCANNER_{name.upper()}"] = url
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    started = await asyncio.create_subprocess_exec(
        "bash",
        "-e",
        "-c",
        start,
        env={**os.environ, **env, "PATH": path},
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its background processes are in this group, ended below
    )
    try:
        assert await asyncio.wait_for(started.wait(), 60) == 0  # curl saw /healthz answer
        code, stdout, stderr = await shell(scan_command(), env, tmp_path)
        assert code == cli.EXIT_FINDINGS, stderr + stdout
        assert_valid_sarif(json.loads((tmp_path / "xployt.sarif").read_bytes()))
    finally:
        await end_group(started.pid)


async def end_group(group: int) -> None:
    """SIGTERM to the process group the step started, then until none of it is left (10 s)."""
    try:
        os.killpg(group, signal.SIGTERM)
        for _ in range(200):
            await asyncio.sleep(0.05)  # they are not our children: nothing to await
            os.killpg(group, 0)
    except ProcessLookupError:
        return
    os.killpg(group, signal.SIGKILL)
