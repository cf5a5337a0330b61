"""The shared SSE harness (``../shared/bench``): loaded once, only called, never copied.

``ssebench`` is stdlib-only and untyped; :class:`Harness` names the few parts the bench uses
(its loadgen binary, its work and result folders, its ``/proc`` samplers, its anchor servers
and its Markdown table) so that the rest of the package is typed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


class Harness:
    """The ``ssebench`` module, by the names the bench uses."""

    def __init__(self, module: Any) -> None:
        self._module = module

    @property
    def loadgen(self) -> Path:
        return Path(self._module.LOADGEN)

    @property
    def results(self) -> Path:
        """Where the harness writes its result files (``$SSEBENCH_WORK/results``)."""
        return Path(self._module.RESULTS)

    @property
    def work(self) -> Path:
        return Path(self._module.WORK)

    @property
    def venv_py(self) -> Path:
        """The Python of the harness's own venv, which runs its anchor servers."""
        return Path(self._module.VENV_PY)

    @property
    def clk_tck(self) -> int:
        return int(self._module.CLK_TCK)

    def proc_stat(self, pid: int) -> tuple[int, int, int, int, str] | None:
        """``(ppid, cpu_ticks, rss_bytes, starttime, state)``, or None once the pid is gone."""
        stat: tuple[int, int, int, int, str] | None = self._module.proc_stat(pid)
        return stat

    def rss(self, pid: int) -> int:
        stat = self.proc_stat(pid)
        assert stat is not None, f"process {pid} is gone"
        return stat[2]

    def ticks(self, pid: int) -> int:
        """CPU ticks of one process so far (0 once it is gone)."""
        stat = self.proc_stat(pid)
        return int(stat[1]) if stat else 0

    def sampler(self, pids: list[int]) -> Any:
        """A ``Sampler`` thread (not started) of these processes and their children."""
        return self._module.Sampler(pids)

    def server(self, target: dict[str, Any], logdir: Path, tag: str) -> Any:
        """A harness ``Server`` (not started) from one target description."""
        return self._module.Server(target, logdir, tag)

    def md_report(self, title: str, meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
        report: str = self._module.md_report(title, meta, rows)
        return report


def load_harness(shared: Path) -> Harness:
    """Import ``ssebench`` from the shared folder (it is stdlib only); build its loadgen."""
    if not (shared / "ssebench.py").is_file() or not (shared / "loadgen" / "sseload.c").is_file():
        sys.exit(
            f"bench: the shared SSE harness is missing at {shared} (expected ssebench.py and "
            "loadgen/sseload.c; the project expects it as ../shared/bench beside the repo)"
        )
    os.environ.setdefault("SSEBENCH_WORK", "/tmp/ssebench-work")
    sys.path.insert(0, str(shared))
    import ssebench  # type: ignore[import-not-found]

    if not ssebench.LOADGEN.exists():
        subprocess.run([str(shared / "loadgen" / "build.sh")], check=True, timeout=300)
    return Harness(ssebench)
