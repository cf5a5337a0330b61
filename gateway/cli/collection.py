"""The collection commands: ``scan --scanners a,b | --all`` starts a scan collection (several
scanners on one repository) and, with ``--watch``, follows its stream to the end; ``watch
--collection ID`` follows one that runs. Then the merged findings, the SARIF report and the
``--fail-on`` verdict, as for a scan (``outcome``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from rich.console import Console

from gateway.cli.client import (
    COLLECTIONS_API,
    EXIT_CANCELLED,
    EXIT_COMPLETED,
    EXIT_FAILED,
    TERMINAL_STATUS_VALUES,
    CliError,
    Options,
    fetch_json,
    open_session,
    request_data,
    scan_data,
)
from gateway.cli.collection_display import (
    CollectionBars,
    CollectionDisplay,
    CollectionJson,
    CollectionLines,
)
from gateway.cli.display import clean, json_line, say
from gateway.cli.follow import Follower, Target
from gateway.cli.gate import Gate
from gateway.cli.outcome import conclude

__all__ = [
    "MAX_SCANNERS",
    "OPENAPI_PATH",
    "CollectionCommand",
    "configured_scanners",
    "parse_scanners",
    "post_collection",
    "run_scan_collection",
    "run_watch_collection",
    "scan_collection",
    "watch_collection",
]

OPENAPI_PATH = "/api/v1/openapi.json"
MAX_SCANNERS = 64  # names on the command line; the gateway allows as many as it has scanners
_MAX_NAME = 200
_ENDED = {"completed": EXIT_COMPLETED, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}


@dataclass(frozen=True, slots=True)
class CollectionCommand:
    """What ``scan --scanners``/``--all`` was asked: the body of ``POST
    /api/v1/scan-collections/`` (``scanners`` empty: every configured one), ``use_sse``, and
    whether to watch it."""

    repository: str
    scanners: tuple[str, ...] = ()
    use_sse: bool = False
    configurations: Mapping[str, Any] = field(default_factory=dict)
    watch: bool = False


def parse_scanners(raw: str) -> tuple[str, ...]:
    """``--scanners a,b``: names separated by commas (blanks around them ignored)."""
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise CliError(
            "--scanners needs at least one scanner name, e.g. secret_scanner,sast_scanner"
        )
    if len(names) > MAX_SCANNERS:
        raise CliError(f"--scanners names at most {MAX_SCANNERS} scanners")
    if any(len(name) > _MAX_NAME for name in names):
        raise CliError(f"--scanners: a scanner name is at most {_MAX_NAME} characters")
    return names


async def configured_scanners(session: aiohttp.ClientSession, options: Options) -> list[str]:
    """``--all``: the scanners the gateway has, as its OpenAPI document lists them (the values
    a scan's ``scanner_name`` may take)."""
    document = await fetch_json(session, options, "GET", OPENAPI_PATH, api="")
    try:
        names = document["components"]["schemas"]["ScanCreate"]["properties"]["scanner_name"]
        listed = names["enum"]
    except (KeyError, TypeError):
        raise CliError(
            f"--all: the gateway's {OPENAPI_PATH} lists no scanners; name them with --scanners"
        ) from None
    if not isinstance(listed, list) or not listed or not all(isinstance(n, str) for n in listed):
        raise CliError(f"--all: the gateway's {OPENAPI_PATH} lists no scanners")
    return listed[:MAX_SCANNERS]


async def post_collection(
    session: aiohttp.ClientSession, options: Options, command: CollectionCommand
) -> dict[str, Any]:
    """``POST /api/v1/scan-collections/``: the 201's data (``collection_id``, ``scan_ids``,
    links)."""
    scanners = list(command.scanners) or await configured_scanners(session, options)
    body = {
        "repository_name": command.repository,
        "scanners": scanners,
        "configurations": dict(command.configurations),
    }
    params = {"use_sse": "true" if command.use_sse else "false"}
    data = await request_data(
        session, options, "POST", "/", body=body, params=params, api=COLLECTIONS_API
    )
    if not isinstance(data, dict) or not isinstance(data.get("collection_id"), str):
        raise CliError(f"unexpected answer to POST {COLLECTIONS_API}/: no collection_id")
    return data


def _terminal(data: dict[str, Any]) -> bool:
    """A collection event carries ``collection: {status}``; a reset the view (``status``)."""
    whole = data.get("collection")
    return (whole if isinstance(whole, dict) else data).get("status") in TERMINAL_STATUS_VALUES


def collection_target(
    session: aiohttp.ClientSession, options: Options, collection_id: str
) -> Target:
    async def final_state() -> dict[str, Any]:
        return await scan_data(session, options, collection_id, api=COLLECTIONS_API)

    url = options.endpoint(f"/{quote(collection_id, safe='')}/stream", COLLECTIONS_API)
    return Target("collection", collection_id, url, final_state, _terminal, "--collection ")


def _display(console: Console, errors: Console, options: Options) -> CollectionDisplay:
    if options.json:
        return CollectionJson(console, errors)
    return CollectionBars(console) if console.is_terminal else CollectionLines(console)


async def watch_collection(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    collection_id: str,
    *,
    last_event_id: str | None = None,
    errors: Console | None = None,
    gate: Gate | None = None,
) -> int:
    """Follow a collection to its end; then its merged findings, the SARIF report and the
    verdict; return the exit code."""
    errors = errors or console
    gate = gate or Gate()
    display = _display(console, errors, options)
    target = collection_target(session, options, collection_id)
    follower = Follower(session, options, target, display, last_event_id)
    try:
        display.begin(await scan_data(session, options, collection_id, api=COLLECTIONS_API))
        try:
            final = await follower.follow()
        finally:
            display.stop()
        whole = final.get("collection")
        status = str((whole if isinstance(whole, dict) else final).get("status"))
        outcome = await conclude(
            session,
            console,
            options,
            gate,
            api=COLLECTIONS_API,
            ident=collection_id,
            ended=_ENDED.get(status, EXIT_FAILED),
            has_results=True,  # a collection's results are served however it ended
            noun="collection",
        )
        head = outcome.report.head if outcome.report is not None else {}
        display.ended(final, head, outcome.code, outcome.summary(gate))
        if not options.json:
            outcome.show(console, gate, collection=True)
        return outcome.code
    except CliError as exc:
        say(errors, f"error: {exc.message}")
        return exc.code
    except asyncio.CancelledError:  # Ctrl-C: say how to pick up where this left off
        say(errors, f"interrupted; resume with: {follower.resume}")
        raise


async def scan_collection(
    session: aiohttp.ClientSession,
    console: Console,
    options: Options,
    command: CollectionCommand,
    *,
    errors: Console | None = None,
    gate: Gate | None = None,
) -> int:
    """Start a collection, print its id (or, with ``--json``, the created line), maybe watch
    it."""
    errors = errors or console
    try:
        created = await post_collection(session, options, command)
    except CliError as exc:
        say(errors, f"error: {exc.message}")
        return exc.code
    if options.json:
        json_line(console, None, "created", created)
    else:
        console.out(clean(created["collection_id"]), highlight=False)
    if not command.watch:
        return EXIT_COMPLETED
    return await watch_collection(
        session, console, options, created["collection_id"], errors=errors, gate=gate
    )


# --- entry points for __main__ ----------------------------------------------------------------


async def run_scan_collection(options: Options, command: CollectionCommand, gate: Gate) -> int:
    async with open_session() as session:
        return await scan_collection(
            session, Console(), options, command, errors=Console(stderr=True), gate=gate
        )


async def run_watch_collection(
    options: Options, collection_id: str, last_event_id: str | None, gate: Gate
) -> int:
    async with open_session() as session:
        return await watch_collection(
            session,
            Console(),
            options,
            collection_id,
            last_event_id=last_event_id,
            errors=Console(stderr=True),
            gate=gate,
        )
