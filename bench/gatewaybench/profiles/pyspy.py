"""Recording the gateway with py-spy while a scenario runs, and summarising the recording."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..common import PY
from ..procs import stop_process
from .folded import format_profile, summarize_folded


def pyspy_bin() -> str:
    found = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    if not found:
        sys.exit("bench: --profile needs py-spy (.venv/bin/pip install py-spy)")
    return found


def start_pyspy(pid: int, seconds: float, out: Path | None) -> subprocess.Popen[bytes]:
    assert out is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [pyspy_bin(), "record", "--pid", str(pid), "--duration", f"{seconds:g}"]
    # Blocking mode (py-spy pauses the process for each sample): non-blocking sampling of a
    # busy event loop gives torn stacks.
    cmd += ["--rate", "100", "--format", "raw", "--output", str(out)]
    cmd += ["--idle", "--threads"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_pyspy(proc: subprocess.Popen[bytes], out: Path | None) -> dict[str, Any]:
    """Wait for py-spy; summarise its recording beside it (``<out>.summary.txt``)."""
    assert out is not None
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        return {"error": "py-spy did not finish"}
    if proc.returncode != 0 or not out.exists():
        return {"error": (err or b"").decode(errors="replace")[-500:]}
    summary = summarize_folded(out)
    out.with_suffix(".summary.txt").write_text(format_profile(summary))
    return {"raw": str(out), "summary": str(out.with_suffix(".summary.txt")), **summary}
