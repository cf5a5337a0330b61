"""Schemathesis against the live gateway: every operation keeps what the document promises.

The real app runs on 127.0.0.1 with the real mock scanner; Schemathesis loads the document from
``GET /api/v1/openapi.json`` and sends generated requests over HTTP, a bounded number per
operation, with a valid bearer token: valid requests (positive) and, where the document allows
some, invalid ones (negative). Its calls block (``requests``), so they run in a worker thread
while the event loop keeps the gateway serving.

The checks: no 5xx, a documented status code, a documented content type, the body matches the
documented schema, documented required headers are sent (``Location``, ``Retry-After``,
``WWW-Authenticate``, ``Set-Cookie``), and every 4xx answer is the JSON error envelope.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import hypothesis
import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the venv
import pytest
import schemathesis
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.control import SkipTest
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from gateway import create_app
from gateway.http.openapi import OPENAPI_PATH
from gateway.scanners.sse_parser import SSEParser
from tests.helpers import collection_events, error_shape, start_collection, start_scan, token

# Examples per operation, per mode: bounded, so that the whole run stays near 10 s. An operation
# with a {scan_id} or {collection_id} gets as many again with real ids (random ones find 404s).
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
EXAMPLE_DEADLINE = timedelta(seconds=5)  # one request each; a hang fails, it does not stall
REQUEST_TIMEOUT = 10.0
RUN_BUDGET_SECONDS = 300.0  # the whole fuzz loop; about 10 s on a 2-core machine, over 90 s seen
# on one loaded by other work (the count of examples is the real bound)
# Endless by design (a running scan's stream lasts as long as the scan): called explicitly below.
STREAM = ("GET", "/api/v1/scans/{scan_id}/stream")
COLLECTION_STREAM = ("GET", "/api/v1/scan-collections/{collection_id}/stream")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
DOC_URI = "urn:xployt:openapi"

HEADERS = {"Authorization": f"Bearer {token()}"}

# Plain and explicit: the token is sent as given (no generated credentials), and no
# schemathesis.toml lying around changes anything.
SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {"generation": {"with-security-parameters": False}}
)


def error_envelope(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx answer is JSON with the one error envelope."""
    if not 400 <= response.status_code < 500:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered {content_type!r}, not the JSON error envelope"
    )
    try:
        error_shape(json.loads(response.content))
    except AssertionError as exc:
        raise AssertionError(f"not the error envelope: {response.content[:300]!r}") from exc


CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_envelope,
]


@dataclass
class Tally:
    operations: int = 0
    examples: Counter[GenerationMode] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    no_negative: list[str] = field(default_factory=list)


def _with_real_ids(
    operation: schemathesis.APIOperation, mode: GenerationMode, name: str, ids: list[str]
) -> st.SearchStrategy[schemathesis.Case]:
    """Cases whose path parameter ``name`` is one of ``ids`` (random ids only find 404s)."""

    def case(real_id: str) -> st.SearchStrategy[schemathesis.Case]:
        return operation.as_strategy(generation_mode=mode, path_parameters={name: real_id})

    return st.sampled_from(ids).flatmap(case)


def fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    real_ids: dict[str, list[str]],
    tally: Tally,
    stop: threading.Event,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    examples = EXAMPLES[mode]
    for name, ids in real_ids.items():
        if "{" + name + "}" in operation.path:
            strategy = st.one_of(strategy, _with_real_ids(operation, mode, name, ids))
            examples *= 2

    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,  # the same examples on every run
        database=None,
        deadline=EXAMPLE_DEADLINE,
        # No shrinking: a failure is reported as found, with the request that caused it.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        if stop.is_set():
            return
        response = case.call(headers=HEADERS, timeout=REQUEST_TIMEOUT)
        tally.examples[mode] += 1
        tally.statuses[f"{operation.label} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS, headers=HEADERS)

    try:
        run()
    except (SkipTest, hypothesis.errors.Unsatisfiable):
        # Negative mode only: the operation has nothing an invalid request could violate (no
        # parameters, or a path id any string fits), so Schemathesis generates none.
        assert mode is GenerationMode.NEGATIVE, operation.label
        tally.no_negative.append(operation.label)
    except (FailureGroup, AssertionError, hypothesis.errors.HypothesisException) as exc:
        tally.failures.append(f"{operation.label} ({mode.value}):\n{exc}")


async def wait_until_done(client: TestClient[Any, Any], scan_id: str) -> None:
    """The server ends a scan's stream after its terminal event: read the stream to its end."""
    async with (
        asyncio.timeout(20),
        client.get(f"/api/v1/scans/{scan_id}/stream", headers=HEADERS) as response,
    ):
        assert response.status == 200, await response.text()
        await response.read()


async def load_schema(client: TestClient[Any, Any]) -> OpenApiSchema:
    url = str(client.make_url(OPENAPI_PATH))
    return await asyncio.to_thread(
        schemathesis.openapi.from_url, url, config=SCHEMATHESIS_CONFIG, timeout=REQUEST_TIMEOUT
    )


@pytest.fixture
async def live(aiohttp_server, aiohttp_client, make_config) -> TestClient[Any, Any]:
    """The gateway, served for real on 127.0.0.1, and a client of it."""
    config = make_config(
        dev_mode=True,  # so that the dev token route answers 200 too, not only 404
        # Fuzzing starts many scans; let it, so that POST finds 201 and not only 429.
        limits={
            "max_running_scans_per_subject": 1000,
            "max_running_scans": 1000,
            "scan_start_burst": 1000,
        },
    )
    client: TestClient[Any, Any] = await aiohttp_client(await aiohttp_server(create_app(config)))
    return client


async def test_every_operation_keeps_its_contract(live):
    completed = await start_scan(live)
    failed = await start_scan(live, use_sse=True, configurations={"fail_at": 50})
    running = await start_scan(live, use_sse=True, configurations={"step_delay": 5})
    for scan_id in (completed, failed):
        await wait_until_done(live, scan_id)
    # Collections that ended (their streams end too): one completed, one failed.
    collections = [
        (await start_collection(live, configurations=configurations))["collection_id"]
        for configurations in (None, {"per_scanner": {"sast_scanner": {"fail_at": 50}}})
    ]
    for collection_id in collections:
        await collection_events(live, collection_id)
    real_ids = {"scan_id": [completed, failed, running], "collection_id": collections}
    schema = await load_schema(live)
    # Every documented operation but the stream. (Not schema.get_all_operations(): that leaves
    # out the operation that served the document, and that one is fuzzed too.)
    operations = [
        schema[path][method]
        for path, item in schema.raw_schema["paths"].items()
        for method in item
        if method in HTTP_METHODS and (method.upper(), path) not in (STREAM, COLLECTION_STREAM)
    ]
    tally = Tally()
    stop = threading.Event()

    def fuzz() -> None:
        for operation in operations:
            tally.operations += 1
            for mode in EXAMPLES:
                if stop.is_set():
                    return
                fuzz_operation(operation, mode, real_ids, tally, stop)

    started = time.monotonic()
    try:
        async with asyncio.timeout(RUN_BUDGET_SECONDS):
            await asyncio.to_thread(fuzz)
    finally:
        stop.set()  # on a timeout, the worker thread stops at its next example
    print(
        f"\nschemathesis: {tally.operations} operations, "
        f"{tally.examples[GenerationMode.POSITIVE]} positive and "
        f"{tally.examples[GenerationMode.NEGATIVE]} negative examples, "
        f"{len(tally.failures)} failures, {time.monotonic() - started:.1f} s; "
        f"no invalid request to make for {len(tally.no_negative)} operations"
    )
    for key, count in sorted(tally.statuses.items()):
        print(f"  {key}: {count}")
    assert tally.failures == [], "\n\n".join(tally.failures)
    assert tally.operations == len(operations) > 0
    # The fuzzing reached the success answers and the conflicts, not only 404s.
    reached = {tuple(key.rsplit(" ", 1)) for key in tally.statuses}
    for expected in [
        ("POST /api/v1/scans/", "201"),
        ("POST /api/v1/scans", "201"),
        ("GET /api/v1/scans/{scan_id}", "200"),
        ("GET /api/v1/scans/{scan_id}/results", "200"),
        ("GET /api/v1/scans/{scan_id}/results", "409"),
        ("DELETE /api/v1/scans/{scan_id}", "200"),
        ("DELETE /api/v1/scans/{scan_id}", "409"),
        ("POST /api/v1/scans/{scan_id}/stream-ticket", "200"),
        ("POST /api/v1/dev/token", "200"),
        ("POST /api/v1/scans/", "422"),
        ("POST /api/v1/scan-collections/", "201"),
        ("GET /api/v1/scan-collections/{collection_id}", "200"),
        ("GET /api/v1/scan-collections/{collection_id}/status", "200"),
        ("GET /api/v1/scan-collections/{collection_id}/results", "200"),
        ("DELETE /api/v1/scan-collections/{collection_id}", "409"),
    ]:
        assert expected in reached, expected


@pytest.mark.parametrize("kind", ["scan", "collection"])
async def test_the_stream_keeps_its_contract(live, kind):
    """The streams, left out of the fuzzing (endless while a scan runs), on a finished scan and
    a finished collection."""
    if kind == "scan":
        route, name, component = STREAM, "scan_id", "Event"
        log_id = await start_scan(live)
        await wait_until_done(live, log_id)
    else:
        route, name, component = COLLECTION_STREAM, "collection_id", "CollectionEventPayload"
        # Short: Schemathesis reads at most 20 events of a stream (max-stream-events).
        short = await start_collection(
            live, scanners=["secret_scanner", "sast_scanner"], configurations={"steps": 2}
        )
        log_id = short["collection_id"]
        await collection_events(live, log_id)
    schema = await load_schema(live)
    operation = schema[route[1]][route[0]]
    # Schemathesis reads the `schema` of an Open API 3.1 event stream as the schema of each
    # event; the document describes the whole body (a string, as 3.1 has it), so the events are
    # checked below against their component instead of by response_schema_conformance.
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
    ]

    def call(headers: dict[str, str]) -> schemathesis.Response:
        case = operation.Case(path_parameters={name: log_id})
        response = case.call(headers=headers, timeout=REQUEST_TIMEOUT)
        case.validate_response(response, checks=checks, headers=headers)
        return response

    response = await asyncio.to_thread(call, HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"][0].split(";")[0] == "text/event-stream"

    validator = event_validator(schema.raw_schema, component)
    parser = SSEParser()
    events = [*parser.feed(response.content), *parser.close()]
    assert [int(event.id) for event in events] == list(range(1, len(events) + 1))
    for event in events:
        validator.validate(json.loads(event.data))
    last = json.loads(events[-1].data)
    assert (last["status"] if kind == "scan" else last["collection"]["status"]) == "completed"

    # Resuming after the terminal event: 204, documented too.
    done = await asyncio.to_thread(call, {**HEADERS, "Last-Event-ID": events[-1].id})
    assert done.status_code == 204


def event_validator(document: dict[str, Any], component: str) -> jsonschema.Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{DOC_URI}#/components/schemas/{component}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
