"""The command line: ``python -m gateway token`` and config errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import jwt
import pytest

from gateway.config import ConfigError, config_from_dict, load_config
from gateway.http.auth import TokenVerifier
from tests.processes import free_port, gateway_process, write_config


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_token_is_signed_with_the_configured_secret(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("jwt:\n  secret: " + "k" * 48 + "\n")
    done = run("token", "--sub", "alice", "--ttl", "120", "--config", str(path))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    principal = asyncio.run(TokenVerifier(load_config(path, {}).jwt).verify(token))
    assert principal.subject == "alice"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


def test_token_with_bad_arguments_or_config_fails_clearly(tmp_path):
    done = run("token", "--sub", "alice", "--ttl", "0")
    assert done.returncode == 2
    assert "ttl must be positive" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: nope\n")
    done = run("--config", str(bad), "token", "--sub", "a")
    assert done.returncode == 2
    assert "server.port" in done.stderr


def test_a_port_option_out_of_range_is_refused_before_binding():
    done = run("serve", "--port", "70000")
    assert done.returncode == 2, done.stderr
    assert "error: server.port: must be between 0 and 65535" in done.stderr
    assert "Traceback" not in done.stderr


def refused(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, done.stderr
    assert "dev_mode: refused on server.host" in done.stderr
    assert "dev_mode_allow_remote" in done.stderr
    assert "Traceback" not in done.stderr


def test_dev_mode_is_refused_on_an_address_other_than_loopback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dev_mode: true\nserver:\n  host: 0.0.0.0\n")
    refused(run("--config", str(path)))
    env = {**os.environ, "XPLOYT_DEV_MODE": "1"}
    refused(run("--host", "192.0.2.1", env=env))
    refused(run("serve", "--host", "", env=env))
    refused(run(env={**env, "XPLOYT_HOST": "example.com"}))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost"])
def test_dev_mode_on_loopback_needs_nothing_more(host):
    assert config_from_dict({"dev_mode": True, "server": {"host": host}}).dev_mode


def test_dev_mode_allow_remote_forces_it():
    config = config_from_dict(
        {"dev_mode": True, "dev_mode_allow_remote": True, "server": {"host": "0.0.0.0"}}
    )
    assert config.dev_mode
    with pytest.raises(ConfigError, match="dev_mode: refused"):
        config_from_dict({"dev_mode": True, "server": {"host": "0.0.0.0"}})


async def test_dev_mode_warns_at_startup_that_anyone_can_mint_tokens(tmp_path):
    port = free_port()
    log: list[str] = []
    config_path = write_config(tmp_path, {"dev_mode": True})
    async with gateway_process(config_path, port, log) as process:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    warnings = [line for line in log if "WARNING" in line and "dev_mode is on" in line]
    assert len(warnings) == 1, "".join(log)
    assert "anyone who can reach this gateway" in warnings[0]
    assert "can mint a token for any subject" in warnings[0]
    log.clear()
    async with gateway_process(write_config(tmp_path, {}), port, log) as process:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    assert not any("dev_mode" in line for line in log)
