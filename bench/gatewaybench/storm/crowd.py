"""The subscribers as the scenario sees them: a few ``bench/storm_subscribers.py`` processes
(one cannot hold thousands on a small machine), their progress read from stdout, and what they
saw summed up once they end."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..common import PY, ROOT, log
from ..procs import clean_env, raise_nofile, stop_process

PROGRESS_EVERY_S = 5.0


class Crowd:
    def __init__(
        self, urls: list[str], n: int, token: str, workers: int, seconds: float, tmp: Path
    ) -> None:
        self.n = n
        self.outs = [tmp / f"storm-{i}.json" for i in range(workers)]
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ready = 0
        self._caught_up = [0] * workers
        self.procs = []
        shares = [n // workers + (i < n % workers) for i in range(workers)]
        for i, share in enumerate(shares):
            cmd = [PY, str(ROOT / "bench" / "storm_subscribers.py"), "--urls", ",".join(urls)]
            cmd += ["--n", str(share), "--seconds", str(seconds), "--out", str(self.outs[i])]
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT / "bench",
                env={**clean_env(), "STORM_TOKEN": token},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=raise_nofile,
                start_new_session=True,
            )
            self.procs.append(proc)
            assert proc.stdout is not None
            threading.Thread(target=self._follow, args=(i, proc.stdout), daemon=True).start()

    def _follow(self, index: int, stdout: IO[str]) -> None:
        for line in stdout:
            with self._changed:
                if line.strip() == "ready":
                    self._ready += 1
                elif line.startswith("caught_up "):
                    self._caught_up[index] = int(line.split()[1])
                self._changed.notify_all()

    def _wait(self, done: Any, timeout: float) -> bool:
        """Until ``done()`` (True), the timeout or every process ended (False); the count of
        those caught up is logged every few seconds meanwhile."""
        deadline = time.monotonic() + timeout
        told = time.monotonic()
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or not any(p.poll() is None for p in self.procs):
                    return False
                self._changed.wait(min(left, 1.0))
                if time.monotonic() - told >= PROGRESS_EVERY_S:
                    told = time.monotonic()
                    log(f"  {self._ready} processes ready, {sum(self._caught_up)} caught up")
        return True

    def wait_ready(self, timeout: float) -> None:
        """Until every subscriber has its first event."""
        if not self._wait(lambda: self._ready == len(self.procs), timeout):
            raise RuntimeError(f"the subscribers were not all connected within {timeout:g} s")

    def wait_caught_up(self, timeout: float) -> tuple[float, bool]:
        """Until every subscriber is back and caught up after a reconnect: the monotonic time
        and whether all were."""
        done = self._wait(lambda: sum(self._caught_up) >= self.n, timeout)
        return time.monotonic(), done

    def results(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for the processes to end (at their terminal event); what each saw."""
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop_process(proc)
        return [json.loads(out.read_text()) for out in self.outs if out.exists()]

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)
