"""Settings of the mock scanner: plain values, no environment reading and no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mock_scanner.scenario import SCANNER_KINDS

__all__ = ["MockScannerConfig"]


@dataclass(frozen=True)
class MockScannerConfig:
    """Defaults and limits of the mock scanner.

    ``step_delay`` and ``steps`` are the defaults a scan request may override through its
    ``configurations``; the ``max_*`` values bound what a request may ask for.
    """

    step_delay: float = 0.5
    """Seconds between two progress events (and before the final event)."""
    steps: int = 8
    """Progress events sent before the final ``completed`` event."""
    max_steps: int = 1000
    max_step_delay: float = 30.0
    max_malformed: int = 100
    """Most malformed events one request may ask for."""
    max_recorded_requests: int = 10_000
    """``GET /requests`` keeps this many most recent entries."""
    default_kind: str = "secret_scanner"
    """The kind ``POST /scan`` serves when neither the body nor the query names one."""

    def __post_init__(self) -> None:
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be an integer >= 1, got {self.max_steps!r}")
        if not (isinstance(self.steps, int) and 1 <= self.steps <= self.max_steps):
            raise ValueError(f"steps must be an integer in 1..{self.max_steps}, got {self.steps!r}")
        if not (math.isfinite(self.max_step_delay) and self.max_step_delay >= 0):
            raise ValueError(f"max_step_delay must be >= 0, got {self.max_step_delay!r}")
        if not (math.isfinite(self.step_delay) and 0 <= self.step_delay <= self.max_step_delay):
            raise ValueError(
                f"step_delay must be in 0..{self.max_step_delay} seconds, got {self.step_delay!r}"
            )
        if not (isinstance(self.max_malformed, int) and self.max_malformed >= 0):
            raise ValueError(f"max_malformed must be an integer >= 0, got {self.max_malformed!r}")
        if not (isinstance(self.max_recorded_requests, int) and self.max_recorded_requests >= 1):
            raise ValueError(
                f"max_recorded_requests must be an integer >= 1, got {self.max_recorded_requests!r}"
            )
        if self.default_kind not in SCANNER_KINDS:
            raise ValueError(
                f"default_kind must be one of {', '.join(SCANNER_KINDS)}, got {self.default_kind!r}"
            )
