"""The single-scan commands: ``scan`` starts one, ``watch`` follows one to its end (and, with
``--sarif``, ``--fail-on`` or ``--baseline``, reports on it as the CI gate does)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp
from rich.console import Console

from gateway.cli.client import (
    API,
    EXIT_CANCELLED,
    EXIT_COMPLETED,
    EXIT_FAILED,
    CliError,
    Options,
    ScanCommand,
    open_session,
    post_scan,
    scan_data,
)
from gateway.cli.display import Bar, Display, JsonLines, clean, json_line, say
from gateway.cli.follow import Follower, Target, status_terminal
from gateway.cli.gate import Gate
from gateway.cli.outcome import conclude
from gateway.domain.models import Status


def scan_target(session: aiohttp.ClientSession, options: Options, scan_id: str) -> Target:
    async def final_state() -> dict[str, Any]:
        return await scan_data(session, options, scan_id)

    url = options.endpoint(f"/{quote(scan_id, safe='')}/stream")
    return Target("scan", scan_id, url, final_state, status_terminal)


async def watch(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    scan_id: str,
    *,
    last_event_id: str | None = None,
    errors: Console | None = None,
    gate: Gate | None = None,
) -> int:
    """Follow a scan to its end; print the summary (and, with a gate, the findings, the SARIF
    file and the verdict); return the exit code."""
    errors = errors or console
    gate = gate or Gate()
    display: Display = JsonLines(console, errors) if options.json else Bar(console)
    target = scan_target(session, options, scan_id)
    watcher = Follower(session, options, target, display, last_event_id)
    try:
        scan_info = await scan_data(session, options, scan_id)
        display.begin(scan_info)
        try:
            final = await watcher.follow()
        finally:
            display.stop()
        status = final.get("status")
        results = None
        if status == Status.COMPLETED:
            results = await scan_data(session, options, scan_id, "/results")
        ended = _ENDED.get(str(status), EXIT_COMPLETED)
        if not gate.asked:
            display.finish(final, results, ended)
            return ended
        outcome = await conclude(
            session,
            console,
            options,
            gate,
            api=API,
            ident=scan_id,
            ended=ended,
            has_results=results is not None,
            noun="scan",
        )
        display.finish(final, results, outcome.code, outcome.summary(gate))
        if not options.json:
            outcome.show(console, gate, collection=False)
        return outcome.code
    except CliError as exc:
        say(errors, f"error: {exc.message}")
        return exc.code
    except asyncio.CancelledError:  # Ctrl-C: say how to pick up where this left off
        say(errors, f"interrupted; resume with: {watcher.resume}")
        raise


_ENDED = {Status.FAILED.value: EXIT_FAILED, Status.CANCELLED.value: EXIT_CANCELLED}


async def scan(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    command: ScanCommand,
    *,
    errors: Console | None = None,
    gate: Gate | None = None,
) -> int:
    """Start a scan, print its id (or, with ``--json``, the created line), maybe watch it."""
    errors = errors or console
    try:
        created = await post_scan(session, options, command)
    except CliError as exc:
        say(errors, f"error: {exc.message}")
        return exc.code
    if options.json:
        json_line(console, None, "created", created)
    else:
        console.out(clean(created["scan_id"]), highlight=False)
    if not command.watch:
        return EXIT_COMPLETED
    return await watch(session, console, options, created["scan_id"], errors=errors, gate=gate)


# --- entry points for __main__ ----------------------------------------------------------------


async def run_scan(options: Options, command: ScanCommand, gate: Gate | None = None) -> int:
    async with open_session() as session:
        return await scan(
            session, Console(), options, command, errors=Console(stderr=True), gate=gate
        )


async def run_watch(
    options: Options, scan_id: str, last_event_id: str | None = None, gate: Gate | None = None
) -> int:
    async with open_session() as session:
        return await watch(
            session,
            Console(),
            options,
            scan_id,
            last_event_id=last_event_id,
            errors=Console(stderr=True),
            gate=gate,
        )
