"""Talking to the gateway's API: options, credentials, requests, API errors, exit codes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from gateway.config import Config
from gateway.domain.models import TERMINAL_STATUSES, strict_json
from gateway.http.auth import TokenVerifier

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 2
EXIT_AUTH_EXPIRED = 3  # the gateway refused the token (401): expired, or not valid at all
EXIT_AUTH = EXIT_AUTH_EXPIRED
EXIT_ERROR = 4  # the API refused a request (its error envelope), or bad arguments/config
EXIT_UNREACHABLE = 5  # the gateway cannot be reached, or the stream was lost for good
EXIT_FINDINGS = 6  # --fail-on: a finding at or above that severity (new ones, with --baseline)
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES_HELP = """\
exit codes (the first that applies):
  0    the scan or collection completed (and, with --fail-on, no finding at or above it);
       `scan` without --watch: started
  1    the scan or collection failed (its error is printed; a collection's findings and
       --sarif report are still given)
  2    it was cancelled
  3    the gateway refused the token (HTTP 401: expired, or not valid); the CLI cannot refresh
       it: pass a new one with --token, resume with --last-event-id
  4    bad usage: invalid arguments or config, or the API refused a request (its message is
       printed: an unknown scanner or baseline, a limit reached)
  5    the gateway could not be reached, or the stream stayed lost for --max-attempts attempts
  6    --fail-on: a finding at or above that severity (with --baseline: a new one)
  130  interrupted (Ctrl-C); resume with --last-event-id

environment:
  XPLOYT_URL    gateway URL (default: http://127.0.0.1:<server.port of the config>)
  XPLOYT_TOKEN  bearer token. Without it and without --token, a token for --sub is minted from
                the configured jwt secret (HMAC only): for local use against a gateway that
                shares this machine's config, never a way to log in to a real deployment."""

API = "/api/v1/scans"
COLLECTIONS_API = "/api/v1/scan-collections"
DEFAULT_RETRY_MS = 3000  # EventSource's usual default, until the server sends its own
MINTED_TOKEN_MIN_TTL = 3600
MAX_LINE = 16 * 1024 * 1024  # longest SSE line accepted from the gateway (characters)
_MAX_ERROR_EXCERPT = 300
TERMINAL_STATUS_VALUES = frozenset(status.value for status in TERMINAL_STATUSES)


class CliError(Exception):
    """Something that ends the command: ``message`` for the user, ``code`` for the shell."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Options:
    """How to reach the gateway and how to report."""

    url: str
    token: str
    json: bool = False
    max_attempts: int = 10  # consecutive stream attempts that deliver nothing, then give up
    retry_ms: int = DEFAULT_RETRY_MS  # reconnection delay until the server sends ``retry:``
    read_timeout: float = 60  # silence (heartbeats included) after which a stream is dead
    request_timeout: float = 30
    token_minted: bool = False  # the token was minted locally (for the hint on a 401)

    def endpoint(self, path: str = "", api: str = API) -> str:
        return f"{self.url.rstrip('/')}{api}{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class ScanCommand:
    """What ``python -m gateway scan`` was asked to do: the scan to start (sent as the body of
    ``POST /api/v1/scans/``, which the gateway reads as a ``validation.ScanRequest``, and the
    ``use_sse`` query parameter) and whether to watch it."""

    scanner: str
    repository: str
    use_sse: bool = False
    configurations: Mapping[str, Any] = field(default_factory=dict)
    watch: bool = False


# --- settings ---------------------------------------------------------------------------------


def resolve_url(
    explicit: str | None, environ: Mapping[str, str], config: Callable[[], Config]
) -> str:
    """``--url``, else ``XPLOYT_URL``, else the configured port on 127.0.0.1."""
    if explicit:
        return explicit
    if environ.get("XPLOYT_URL"):
        return environ["XPLOYT_URL"]
    return f"http://127.0.0.1:{config().server.port}"


def resolve_token(
    explicit: str | None, environ: Mapping[str, str], config: Callable[[], Config], subject: str
) -> tuple[str, bool]:
    """``--token``, else ``XPLOYT_TOKEN``, else one minted for ``subject`` from the configured
    HMAC secret (local use). Returns the token and whether it was minted."""
    if explicit:
        return explicit, False
    if environ.get("XPLOYT_TOKEN"):
        return environ["XPLOYT_TOKEN"], False
    loaded = config()
    # Long enough to watch the longest scan the gateway allows.
    ttl = max(MINTED_TOKEN_MIN_TTL, int(loaded.upstream.scan_timeout_seconds) + 300)
    try:
        return TokenVerifier(loaded.jwt).issue(subject, ttl), True
    except ValueError as exc:
        raise CliError(
            f"no token: pass --token or set XPLOYT_TOKEN (cannot mint one locally: {exc})"
        ) from None


def loads_strict(text: str | bytes) -> Any:
    """JSON, and only JSON: ValueError for ``NaN``/``Infinity`` and for numbers too large to
    be finite (1e999), which nothing could print back as JSON."""
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:24]} is not a finite number")
    return value


def parse_configurations(raw: str | None) -> dict[str, Any]:
    """The ``--config-json`` value: a JSON object sent to the scanner as given."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = loads_strict(raw)
    except ValueError as exc:
        raise CliError(f"--config-json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError("--config-json must be a JSON object, e.g. '{\"fail_at\": 50}'")
    return value


# --- HTTP -------------------------------------------------------------------------------------


def open_session() -> aiohttp.ClientSession:
    """The session every command uses (per-request timeouts are set where they are made)."""
    return aiohttp.ClientSession(
        headers={"User-Agent": "xployt-gateway-cli"}, json_serialize=strict_json
    )


async def api_error(
    response: aiohttp.ClientResponse, options: Options, resume: str | None = None
) -> CliError:
    """The error envelope's message (or an excerpt of a body that is not one); ``resume`` is
    the command that picks a watch up again, for an expired token."""
    raw = await response.read()
    message = None
    try:
        body = loads_strict(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    if not message:
        excerpt = raw.decode("utf-8", "replace").strip()[:_MAX_ERROR_EXCERPT]
        message = excerpt or (response.reason or "no message")
    message = f"{message} (HTTP {response.status})"
    if response.status == 401:
        if "expired" in message:
            return token_expired(message, options, resume)
        if options.token_minted:
            message += (
                "; the token was minted from this machine's jwt secret, which this gateway does"
                " not accept: pass --token or set XPLOYT_TOKEN"
            )
        return CliError(message, EXIT_AUTH)
    return CliError(message, EXIT_ERROR)


def token_expired(reason: str, options: Options, resume: str | None = None) -> CliError:
    how = "python -m gateway token --sub NAME" if options.token_minted else "your identity provider"
    message = (
        f"the token expired ({reason}). The CLI cannot refresh a bearer token: get a new one"
        f" (e.g. from {how}) and pass it with --token or XPLOYT_TOKEN"
    )
    if resume is not None:
        message += f"; resume with: {resume} --token NEW_TOKEN"
    return CliError(message, EXIT_AUTH_EXPIRED)


def unreachable(url: str, exc: BaseException) -> CliError:
    detail = str(exc) or type(exc).__name__
    return CliError(f"cannot reach the gateway at {url}: {detail}", EXIT_UNREACHABLE)


async def request_data(
    session: aiohttp.ClientSession,
    options: Options,
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    api: str = API,
) -> Any:
    """One API call: its ``data`` on success, :class:`CliError` otherwise."""
    envelope = await fetch_json(session, options, method, path, body=body, params=params, api=api)
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise CliError(f"unexpected answer from {options.endpoint(path, api)}: no data envelope")
    return envelope["data"]


async def fetch_json(
    session: aiohttp.ClientSession,
    options: Options,
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    api: str = API,
) -> Any:
    """One call whose answer is JSON (enveloped or not); :class:`CliError` otherwise."""
    url = options.endpoint(path, api)
    timeout = aiohttp.ClientTimeout(total=options.request_timeout)
    try:
        async with session.request(
            method, url, json=body, params=params, headers=options.headers, timeout=timeout
        ) as response:
            if response.status >= 400:
                raise await api_error(response, options)
            answer = await response.json(content_type=None, loads=loads_strict)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise unreachable(options.url, exc) from None
    except ValueError as exc:  # a 2xx that is not JSON: not a gateway
        raise CliError(f"unexpected answer from {url}: {exc}") from None
    return answer


async def post_scan(
    session: aiohttp.ClientSession, options: Options, command: ScanCommand
) -> dict[str, Any]:
    """``POST /api/v1/scans/`` (served by ``routes.scans.start_scan``): the 201's data
    (``scan_id``, ``status``, links)."""
    body = {
        "repository_name": command.repository,
        "scanner_name": command.scanner,
        "configurations": dict(command.configurations),
    }
    params = {"use_sse": "true" if command.use_sse else "false"}
    data = await request_data(session, options, "POST", "/", body=body, params=params)
    if not isinstance(data, dict) or not isinstance(data.get("scan_id"), str):
        raise CliError("unexpected answer to POST /api/v1/scans/: no scan_id")
    return data


async def scan_data(
    session: aiohttp.ClientSession,
    options: Options,
    scan_id: str,
    tail: str = "",
    *,
    api: str = API,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``GET`` a scan (or, with ``api=COLLECTIONS_API``, a collection), or one of its
    sub-resources: its ``data`` object."""
    path = f"/{quote(scan_id, safe='')}{tail}"
    data = await request_data(session, options, "GET", path, params=params, api=api)
    if not isinstance(data, dict):
        noun = "scan" if api == API else "collection"
        raise CliError(f"unexpected answer for {noun} {scan_id}: data is not an object")
    return data
