"""The drain on its own: it begins once, makes its workers refuse new work, tells its
listeners, and waits until nothing runs or its time is up."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.engine.drain import Drain


class Worker:
    """Work the test ends: ``running`` units until ``end`` has been called that often."""

    def __init__(self, running: int) -> None:
        self.running = running
        self.draining = False
        self._idle = asyncio.Event()
        if not running:
            self._idle.set()

    def drain(self) -> None:
        self.draining = True

    async def idle(self) -> None:
        await self._idle.wait()

    def end(self) -> None:
        self.running -= 1
        if not self.running:
            self._idle.set()


async def test_the_drain_begins_once_and_waits_for_every_worker():
    drain = Drain(30)
    scans, others = Worker(2), Worker(1)
    drain.track(scans)
    drain.track(others)
    told: list[str] = []
    drain.on_begin(lambda: told.append("begun"))
    assert not drain.draining and not scans.draining
    assert drain.remaining() == 30 and drain.running == 3

    assert drain.begin()
    assert not drain.begin(), "a second begin changes nothing"
    assert drain.draining and scans.draining and others.draining
    assert told == ["begun"]
    waiting = asyncio.ensure_future(drain.wait())
    scans.end()
    others.end()
    await asyncio.sleep(0)  # lets the wait run: it must not have returned yet
    assert not waiting.done() and drain.running == 1
    scans.end()
    assert await asyncio.wait_for(waiting, 5) == 0
    assert 0 < drain.remaining() <= 30


async def test_with_nothing_running_the_drain_is_over_at_once():
    drain = Drain(3600)
    drain.track(Worker(0))
    drain.begin()
    began = time.monotonic()
    assert await drain.wait() == 0
    assert time.monotonic() - began < 1


async def test_the_time_up_leaves_what_still_runs_to_the_caller():
    drain = Drain(0.2)
    worker = Worker(2)
    drain.track(worker)
    drain.begin()
    began = time.monotonic()
    assert await drain.wait() == 2
    assert 0.2 <= time.monotonic() - began < 5
    assert drain.remaining() == 0


async def test_a_worker_tracked_during_the_drain_refuses_new_work_at_once():
    drain = Drain(10)
    drain.begin()
    late = Worker(0)
    drain.track(late)
    assert late.draining


async def test_a_failing_listener_neither_stops_the_others_nor_the_drain(caplog):
    drain = Drain(10)
    told: list[int] = []

    def broken() -> None:
        raise RuntimeError("a bug")

    drain.on_begin(broken)
    drain.on_begin(lambda: told.append(1))
    drain.begin()
    assert told == [1]
    assert "a drain listener failed" in caplog.text
    assert await drain.wait() == 0


async def test_waiting_before_it_begins_and_a_negative_length_are_errors():
    with pytest.raises(ValueError, match="0 seconds or more"):
        Drain(-1)
    with pytest.raises(RuntimeError, match="has not begun"):
        await Drain(1).wait()
