"""The gateway under ``tracemalloc``, for the bench's memory profile (no gateway code changed).

``python bench/gateway_traced.py SNAPSHOT_DIR --config FILE`` runs ``python -m gateway --config
FILE`` with ``tracemalloc`` tracing 8 frames; each ``SIGUSR1`` writes the next snapshot,
``SNAPSHOT_DIR/snapshot-<n>.pickle`` (then ``snapshot-<n>.done``), which ``bench/run.py``
compares to see what an open stream allocates.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    taken = 0

    def snapshot(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        path = out / f"snapshot-{taken}.pickle"
        tracemalloc.take_snapshot().dump(str(path))
        path.with_suffix(".done").write_text(str(tracemalloc.get_traced_memory()))

    tracemalloc.start(8)
    signal.signal(signal.SIGUSR1, snapshot)
    from gateway.__main__ import main as gateway_main

    return gateway_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
