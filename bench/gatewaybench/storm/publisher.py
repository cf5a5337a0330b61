"""Events into the bench scan at a steady rate through the mock scanner, in a thread, until told
to stop (or its bound on count is reached). The mock stamps each with its emit time."""

from __future__ import annotations

import threading
import time

from ..procs import http


class Publisher(threading.Thread):
    def __init__(self, url: str, rate: float, max_events: int) -> None:
        super().__init__(daemon=True)
        self.url, self.interval, self.max_events = url, 1.0 / rate, max_events
        self.stop_ev = threading.Event()
        self.published = 0
        self.errors = 0

    def run(self) -> None:
        start = time.monotonic()
        for seq in range(self.max_events):
            if self.stop_ev.wait(max(0.0, start + seq * self.interval - time.monotonic())):
                return
            try:
                status, _ = http("POST", self.url, {"seq": seq}, timeout=5)
            except OSError:
                status = 0
            if status == 204:
                self.published += 1
            else:
                self.errors += 1

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(timeout=10)
