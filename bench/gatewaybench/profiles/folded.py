"""What a py-spy recording (raw folded stacks, ``--idle --threads``) says: per thread how often
it was busy, and for the event-loop thread where its busy time went (self and inclusive per
function, per innermost gateway function, per innermost non-stdlib owner)."""

from __future__ import annotations

import contextlib
import re
import sysconfig
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

from ..common import short_path

_FRAME: Final = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# A thread whose innermost frame is one of these is waiting, not working.
_IDLE: Final = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("time.py", "sleep"),
}
_THIRD_PARTY: Final = Path(sysconfig.get_paths()["purelib"])
_NO_GATEWAY_FRAME: Final = "(no gateway frame: aiohttp/asyncio only)"


def _aiosqlite_wait_line() -> str:
    """aiosqlite's worker threads block in ``tx.get()`` (C code): that line is their idle leaf."""
    with contextlib.suppress(OSError):
        source = (_THIRD_PARTY / "aiosqlite" / "core.py").read_text().splitlines()
        for number, text in enumerate(source, 1):
            if "tx.get()" in text:
                return f"_connection_worker_thread (aiosqlite/core.py:{number})"
    return "?"


_AIOSQLITE_IDLE: Final = _aiosqlite_wait_line()


def _parse_frame(frame: str) -> tuple[str, str]:
    """(function, file as py-spy prints it: ``gateway/engine/hub.py``, ``asyncio/queues.py``)."""
    m = _FRAME.match(frame)
    if not m:
        return frame, "?"
    return m.group("func"), short_path(m.group("file"))


def _owner(path: str) -> str | None:
    """Who a frame's file belongs to: ``gateway/...``, a third-party package, or None (stdlib)."""
    if path.startswith("gateway/"):
        return path
    top = path.split("/", 1)[0]
    if "/" in path and (_THIRD_PARTY / top).is_dir():
        return top
    return None


class _Stack(NamedTuple):
    thread: str
    code: list[tuple[str, str]]  # (function, file), outermost first
    leaf: str
    samples: int

    @property
    def idle(self) -> bool:
        if not self.code:
            return True
        func, file = self.code[-1]
        return (Path(file).name, func.rsplit(".", 1)[-1]) in _IDLE or self.leaf.endswith(
            _AIOSQLITE_IDLE
        )


def _read_stacks(path: Path) -> list[_Stack]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        thread = frames[0] if frames and frames[0].startswith("thread ") else "?"
        code = [_parse_frame(f) for f in frames if not f.startswith("thread ")]
        stacks.append(_Stack(thread, code, frames[-1] if frames else "", int(count_text)))
    return stacks


def _main_thread(stacks: list[_Stack]) -> str | None:
    return next((s.thread for s in stacks if "MainThread" in s.thread), None)


@dataclass
class _Tally:
    """Sample counts: every thread's, and where the event-loop thread's busy samples went."""

    threads: Counter[str] = field(default_factory=Counter)
    busy_threads: Counter[str] = field(default_factory=Counter)
    selfs: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    gateway_fn: Counter[str] = field(default_factory=Counter)
    owners: Counter[str] = field(default_factory=Counter)

    def add_busy_main(self, code: list[tuple[str, str]], count: int) -> None:
        self.selfs[f"{code[-1][0]} ({code[-1][1]})"] += count
        for func, file in set(code):
            self.inclusive[f"{func} ({file})"] += count
        mine = [f"{func} ({file})" for func, file in code if file.startswith("gateway/")]
        # The innermost gateway function, below the server's own entry points.
        inner = [f for f in mine if "gateway/__main__.py" not in f]
        self.gateway_fn[inner[-1] if inner else _NO_GATEWAY_FRAME] += count
        owner = next((o for _, file in reversed(code) if (o := _owner(file))), "stdlib only")
        self.owners[owner] += count


def _shares(
    counter: Counter[str], busy: int, top: int, skip_above: float = 101.0
) -> list[tuple[str, float]]:
    if not busy:
        return []
    out = [(name, round(100 * n / busy, 1)) for name, n in counter.most_common()]
    return [(name, share) for name, share in out if share < skip_above][:top]


def summarize_folded(path: Path, top: int = 25) -> dict[str, Any]:
    """Shares of py-spy's folded stacks (recorded with --idle --threads): per thread, and for the
    event-loop thread per function (self and inclusive), per innermost gateway function and per
    innermost non-stdlib owner, over the samples in which that thread was busy."""
    stacks = _read_stacks(path)
    main_thread = _main_thread(stacks)
    tally = _Tally()
    for stack in stacks:
        tally.threads[stack.thread] += stack.samples
        if stack.idle:
            continue
        tally.busy_threads[stack.thread] += stack.samples
        if stack.thread == main_thread:
            tally.add_busy_main(stack.code, stack.samples)
    busy = tally.busy_threads.get(main_thread or "?", 0)
    total_main = tally.threads.get(main_thread or "?", 0)
    return {
        "samples": sum(tally.threads.values()),
        "main_thread": main_thread,
        "main_thread_busy_pct": round(100 * busy / total_main, 1) if total_main else None,
        "threads_busy_samples": {t: tally.busy_threads[t] for t in tally.threads},
        "threads_samples": dict(tally.threads),
        "self": _shares(tally.selfs, busy, top),
        # the entry-point frames (run_app, run_forever, ...) are on every stack: left out
        "inclusive": _shares(tally.inclusive, busy, top, skip_above=95.0),
        "innermost_gateway_function": _shares(tally.gateway_fn, busy, top),
        "innermost_owner": _shares(tally.owners, busy, top),
    }


def format_profile(summary: dict[str, Any]) -> str:
    lines = [
        f"samples: {summary['samples']}; event-loop thread {summary['main_thread']}: busy in "
        f"{summary['main_thread_busy_pct']} % of its samples (the rest waiting in select)",
        "threads (busy / all samples): "
        + ", ".join(
            f"{t}: {summary['threads_busy_samples'][t]}/{n}"
            for t, n in summary["threads_samples"].items()
        ),
        "",
        "event loop, self time (% of its busy samples):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["self"]),
        "",
        "event loop, inclusive time (function anywhere on the stack; % of busy samples):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["inclusive"]),
        "",
        "event loop, by innermost gateway function (% of busy samples):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["innermost_gateway_function"]),
        "",
        "event loop, by innermost non-stdlib owner (gateway module or package; % of busy):",
        *(f"  {share:5.1f}  {name}" for name, share in summary["innermost_owner"]),
    ]
    return "\n".join(lines) + "\n"
