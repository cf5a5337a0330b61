"""The command-line client: ``python -m gateway scan`` and ``python -m gateway watch``.

Each step is a small async function that takes an :class:`aiohttp.ClientSession`, a
:class:`rich.console.Console` and :class:`Options`, so tests call them in-process against a real
gateway. Nothing here reads the environment or global state: ``__main__`` resolves the URL and
the token (:func:`resolve_url`, :func:`resolve_token`) and passes them in.

``watch`` follows ``GET /api/v1/scans/{id}/stream`` (``watch --collection``: a collection's
stream) the way an EventSource would (``follow``): it reconnects with ``Last-Event-ID`` after a
drop (waiting the server's ``retry:`` hint), adopts ``event: reset`` snapshots, stops for good on
204 No Content, and gives up after a bounded number of consecutive attempts that deliver
nothing. It cannot refresh a bearer token, so ``event: auth_expired`` ends it with
:data:`EXIT_AUTH_EXPIRED` and a resume command.

``scan --scanners a,b`` (or ``--all``) starts a scan collection (``collection``). Once a scan or
collection has ended, :class:`Gate` says what else to do: write the SARIF report, compare with a
baseline, and exit :data:`EXIT_FINDINGS` when a finding at or above ``--fail-on`` exists
(``gate``, ``outcome``).
"""

from __future__ import annotations

from gateway.cli.client import (
    EXIT_AUTH,
    EXIT_AUTH_EXPIRED,
    EXIT_CANCELLED,
    EXIT_CODES_HELP,
    EXIT_COMPLETED,
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_UNREACHABLE,
    CliError,
    Options,
    ScanCommand,
    open_session,
    parse_configurations,
    post_scan,
    resolve_token,
    resolve_url,
)
from gateway.cli.collection import (
    CollectionCommand,
    configured_scanners,
    parse_scanners,
    post_collection,
    run_scan_collection,
    run_watch_collection,
    scan_collection,
    watch_collection,
)
from gateway.cli.gate import DEFAULT_ROWS, FAIL_ON_CHOICES, Gate
from gateway.cli.watch import run_scan, run_watch, scan, watch

__all__ = [
    "DEFAULT_ROWS",
    "EXIT_AUTH",
    "EXIT_AUTH_EXPIRED",
    "EXIT_CANCELLED",
    "EXIT_CODES_HELP",
    "EXIT_COMPLETED",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_FINDINGS",
    "EXIT_INTERRUPTED",
    "EXIT_UNREACHABLE",
    "FAIL_ON_CHOICES",
    "CliError",
    "CollectionCommand",
    "Gate",
    "Options",
    "ScanCommand",
    "configured_scanners",
    "open_session",
    "parse_configurations",
    "parse_scanners",
    "post_collection",
    "post_scan",
    "resolve_token",
    "resolve_url",
    "run_scan",
    "run_scan_collection",
    "run_watch",
    "run_watch_collection",
    "scan",
    "scan_collection",
    "watch",
    "watch_collection",
]
