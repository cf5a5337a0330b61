"""What every part of the bench shares: the project's paths, the scan API, the log line."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent.parent
RESULTS: Final = ROOT / "bench" / "results"
PY: Final = sys.executable
SCANNERS: Final = ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner")
SCANNER: Final = "secret_scanner"
API: Final = "/api/v1/scans"
COLLECTIONS_API: Final = "/api/v1/scan-collections"
MiB: Final = 1024 * 1024


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def short_path(path: str) -> str:
    """A file path as a profile shows it: below site-packages, the stdlib or the project."""
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
