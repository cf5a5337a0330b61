"""Mock mode (``use_sse=false``): the gateway simulates a scanner itself.

The simulation yields the same raw messages the bundled mock scanner streams, so they pass
through the same normalisation, log and channels as a real scan.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from gateway.config import MockConfig
from gateway.domain.models import ScanRecord
from mock_scanner.scenario import SCANNER_KINDS, findings, progress_steps

__all__ = ["simulate"]

# A configured scanner the scenarios do not know still gets a believable run.
_FALLBACK_KIND = "sast_scanner"


async def simulate(scan: ScanRecord, config: MockConfig) -> AsyncGenerator[object, None]:
    kind = scan.scanner_name if scan.scanner_name in SCANNER_KINDS else _FALLBACK_KIND
    for status, percent, message in progress_steps(kind, config.steps, scan.repository_name):
        await asyncio.sleep(config.step_delay_seconds)
        yield {"status": status, "progress_percent": percent, "message": message}
    await asyncio.sleep(config.step_delay_seconds)
    yield {
        "status": "completed",
        "progress_percent": 100,
        "message": "Scan complete.",
        "vulnerabilities": findings(kind, scan.repository_name),
    }
