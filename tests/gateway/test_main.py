"""The command line: ``python -m gateway token`` and config errors."""

from __future__ import annotations

import subprocess
import sys

import jwt

from gateway.auth import TokenVerifier
from gateway.config import load_config


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
    principal = TokenVerifier(load_config(path, {}).jwt).verify(token)
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
