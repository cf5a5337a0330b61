"""Operations: readiness, Prometheus metrics, request ids and JSON logs."""

from __future__ import annotations

import json
import logging
import signal
import socket

from prometheus_client.parser import text_string_to_metric_families

from gateway.http.logs import ContextFilter, JSONFormatter, TokenFilter
from tests.helpers import (
    COLLECTIONS_API,
    auth,
    collection_events,
    error_shape,
    start_collection,
    start_scan,
    stream,
    token,
)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(client, headers=None) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics", headers=headers or {})
    assert response.status == 200
    assert response.content_type == "text/plain"
    return samples(await response.text())


async def test_readyz_checks_store_and_scanners(client):
    response = await client.get("/readyz")
    assert response.status == 200
    data = (await response.json())["data"]
    assert data["status"] == "ready"
    assert data["checks"]["store"] == "ok"
    assert data["checks"]["scanner:sast_scanner"] == "ok"


async def test_a_draining_gateway_is_not_ready_and_starts_no_scan(gateway):
    """What SIGTERM begins (tests/gateway/test_serving.py sends it to real processes)."""
    from gateway.http.appkeys import DRAIN

    client = await gateway(
        server={"drain_seconds": 600}, limits={"retry_after_seconds": 9}, mock={"steps": 500}
    )
    running = await start_scan(client)
    before = await scrape(client)
    assert before[("xployt_draining", ())] == 0
    assert before[("xployt_drain_remaining_seconds", ())] == 600
    client.app[DRAIN].begin()

    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "not_ready"
    assert body["message"] == "not ready: drain"
    checks = body["data"]["checks"]
    assert list(checks) == ["drain"], "the scanners are not asked: the answer is known"
    assert checks["drain"].startswith("draining before it stops (1 running, ")
    refused = await client.post(
        "/api/v1/scans/?use_sse=false",
        json={"repository_name": "acme/web", "scanner_name": "secret_scanner"},
        headers=auth(),
    )
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "9"
    answer = await refused.json()
    error_shape(answer)
    assert answer["error"] == "draining"
    assert "starts no new scan" in answer["message"]
    during = await scrape(client)
    assert during[("xployt_draining", ())] == 1
    assert 0 < during[("xployt_drain_remaining_seconds", ())] <= 600
    # The running scan goes on: it can be read, and cancelled, as before.
    scan = await client.get(f"/api/v1/scans/{running}", headers=auth())
    assert (await scan.json())["data"]["status"] not in ("failed", "cancelled")
    assert (await client.delete(f"/api/v1/scans/{running}", headers=auth())).status == 200


async def test_readyz_is_503_when_a_scanner_or_the_store_is_down(gateway, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await gateway(scanners={"sast_scanner": f"http://127.0.0.1:{port}/scan"})
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "not_ready"
    assert "scanner:sast_scanner" in body["message"]
    assert body["data"]["checks"]["store"] == "ok"
    assert (await client.get("/healthz")).status == 200, "liveness is not readiness"

    alive = await gateway(database={"path": str(tmp_path / "other.db")})
    from gateway.http.appkeys import STORE

    await alive.app[STORE].close()
    down = await alive.get("/readyz")
    assert down.status == 503
    assert (await down.json())["data"]["checks"]["store"] == "the store is closed"


async def test_metrics_follow_scans_streams_and_requests(gateway):
    client = await gateway(upstream={"connect_retries": 0})
    before = await scrape(client)
    assert before[("xployt_open_streams", ())] == 0
    ok_scan = await start_scan(client)
    events = await stream(client, ok_scan)
    failed = await start_scan(client, use_sse=True, configurations={"status_code": 503})
    await stream(client, failed)
    after = await scrape(client)
    assert after[("xployt_events_in_total", ())] >= len(events)
    assert after[("xployt_events_replayed_total", ())] >= 1
    assert (
        after[
            (
                "xployt_scan_duration_seconds_count",
                (("outcome", "completed"), ("scanner", "secret_scanner")),
            )
        ]
        == 1
    )
    assert (
        after[
            (
                "xployt_scan_duration_seconds_count",
                (("outcome", "failed"), ("scanner", "secret_scanner")),
            )
        ]
        == 1
    )
    assert (
        after[
            (
                "xployt_upstream_errors_total",
                (("kind", "http_status"), ("scanner", "secret_scanner")),
            )
        ]
        == 1
    )
    created = (("method", "POST"), ("route", "/api/v1/scans/"), ("status", "201"))
    assert after[("xployt_http_request_duration_seconds_count", created)] == 2
    assert after[("xployt_running_scans", ())] == 0


async def test_metrics_count_running_collections_and_their_outcomes(client):
    before = await scrape(client)
    assert before[("xployt_running_collections", ())] == 0
    assert ("xployt_collections_total", (("outcome", "completed"),)) not in before
    stalled = await start_collection(
        client, scanners=["sast_scanner"], configurations={"stall_at": 50}
    )
    assert (await scrape(client))[("xployt_running_collections", ())] == 1
    cancelled = await client.delete(f"{COLLECTIONS_API}/{stalled['collection_id']}", headers=auth())
    assert cancelled.status == 200
    for configurations in (None, {"fail_at": 50}, None):
        created = await start_collection(
            client, scanners=["secret_scanner"], configurations=configurations
        )
        await collection_events(client, created["collection_id"])
    found = await scrape(client)
    outcomes = {"completed": 2, "failed": 1, "cancelled": 1}
    for outcome, count in outcomes.items():
        assert found[("xployt_collections_total", (("outcome", outcome),))] == count
    assert found[("xployt_running_collections", ())] == 0


async def test_subscribers_per_scan_histogram_and_open_streams(gateway):
    client = await gateway(mock={"step_delay_seconds": 30})
    scan_id = await start_scan(client)
    responses = []
    for _ in range(3):
        response = await client.get(f"/api/v1/scans/{scan_id}/stream", headers=auth())
        await response.content.readuntil(b"id: 2\n")
        responses.append(response)
    found = await scrape(client)
    assert found[("xployt_open_streams", ())] == 3
    assert found[("xployt_subscribers_per_scan_bucket", (("le", "2.0"),))] == 0
    assert found[("xployt_subscribers_per_scan_bucket", (("le", "5.0"),))] == 1
    assert found[("xployt_subscribers_per_scan_gsum", ())] == 3
    for response in responses:
        response.close()


async def test_metrics_access_control(gateway, tmp_path):
    secured = await gateway(metrics={"token": "scrape-me"})
    denied = await secured.get("/metrics")
    assert denied.status == 401
    error_shape(await denied.json())
    assert (await secured.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    await scrape(secured, {"Authorization": "Bearer scrape-me"})
    off = await gateway(metrics={"enabled": False}, database={"path": str(tmp_path / "x.db")})
    assert (await off.get("/metrics")).status == 404


async def test_request_ids_are_echoed_or_made(client):
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces"
    assert len(made.headers["X-Request-ID"]) == 32
    scan_id = await start_scan(client)
    async with client.get(
        f"/api/v1/scans/{scan_id}/stream", headers={**auth(), "X-Request-ID": "watch-1"}
    ) as response:
        assert response.headers["X-Request-ID"] == "watch-1"
        await response.read()


async def test_json_logs_carry_request_and_scan_ids_and_no_tokens(gateway, caplog):
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(TokenFilter())
    caplog.handler.addFilter(ContextFilter())  # as `python -m gateway` sets up its handlers
    client = await gateway(upstream={"connect_retries": 0})
    value = token()
    scan_id = await start_scan(client, use_sse=True, configurations={"status_code": 500})
    await stream(client, scan_id)
    await client.get(f"/api/v1/scans/{scan_id}?token={value}", headers={"X-Request-ID": "req-42"})
    await client.get("/healthz")
    lines = [json.loads(JSONFormatter().format(record)) for record in caplog.records]
    failure = [line for line in lines if "failed" in line["message"]]
    assert failure and failure[0]["scan_id"] == scan_id
    access = [line for line in lines if line.get("request_id") == "req-42"]
    assert access and "[redacted]" in access[0]["message"]
    assert all(value not in json.dumps(line) for line in lines)


def test_token_filter_redacts_anything_shaped_like_a_jwt():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", (token(),), None)
    TokenFilter().filter(record)
    assert record.getMessage() == "got [redacted]"


async def test_gateway_process_logs_json_lines(tmp_path, scanner):
    from aiohttp import ClientSession

    from tests.processes import free_port, gateway_process, write_config

    port = free_port()
    config_path = write_config(
        tmp_path,
        {
            "logging": {"json": True},
        },
    )
    log: list[str] = []
    value = token()
    async with gateway_process(config_path, port, log) as process, ClientSession() as http:
        url = f"http://127.0.0.1:{port}/api/v1/scans/?access_token={value}"
        async with http.get(url, headers={"X-Request-ID": "json-1"}) as response:
            assert response.status == 200
        # A clean stop: every line is written before the log is read.
        process.send_signal(signal.SIGTERM)
        await process.wait()
    lines = [json.loads(line) for line in log if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    loops = [line["message"] for line in lines if line["message"].startswith("event loop:")]
    assert loops and loops[0].startswith("event loop: uvloop"), "the fast extra is installed"
    access = [line for line in lines if line.get("request_id") == "json-1"]
    assert len(access) == 1
    assert "access_token=[redacted]" in access[0]["message"]
    assert value not in "".join(log)


async def test_metrics_count_what_the_stream_routes_answer(client):
    """Streams are left out of the latency histogram; what they answer is still counted."""
    scan_id = await start_scan(client)
    path = f"/api/v1/scans/{scan_id}/stream"
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers=auth("mallory"))).status == 404
    events = await stream(client, scan_id)
    resumed = {**auth(), "Last-Event-ID": str(events[-1][0])}
    assert (await client.get(path, headers=resumed)).status == 204
    found = await scrape(client)
    for status in ("200", "204", "401", "404"):
        key = ("xployt_stream_answers_total", (("route", "scan-stream"), ("status", status)))
        assert found[key] == 1, status
    timed = {
        dict(labels)["route"]
        for name, labels in found
        if name == "xployt_http_request_duration_seconds_count"
    }
    assert "/api/v1/scans/" in timed
    assert not any(route.endswith("/stream") for route in timed)
