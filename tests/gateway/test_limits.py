"""Limits on running scans, open streams and the rate of scan starts, through the API, on
both backends (one process with SQLite; a gateway on its own redis-server, counted there)."""

from __future__ import annotations

import pytest

from tests.helpers import BACKENDS, auth, error_shape, start_scan

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

BODY = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}


async def post_scan(client, sub):
    return await client.post("/api/v1/scans/", json=BODY, headers=auth(sub))


async def test_running_scans_per_subject_and_global(gateway):
    client = await gateway(
        mock={"step_delay_seconds": 30},
        limits={
            "max_running_scans_per_subject": 2,
            "max_running_scans": 3,
            "retry_after_seconds": 7,
        },
    )
    first = await start_scan(client, sub="alice")
    await start_scan(client, sub="alice")
    refused = await post_scan(client, "alice")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "7"
    body = await refused.json()
    error_shape(body)
    assert body["error"] == "limit_exceeded"
    assert "2 scans" in body["message"]

    await start_scan(client, sub="bob")  # bob has his own allowance: 3 running in all
    full = await post_scan(client, "carol")
    assert full.status == 429
    assert "maximum of 3 scans" in (await full.json())["message"]

    cancelled = await client.delete(f"/api/v1/scans/{first}", headers=auth("alice"))
    assert cancelled.status == 200
    assert (await post_scan(client, "alice")).status == 201, "a place frees up when a scan ends"
    listed = await client.get("/api/v1/scans/", headers=auth("alice"))
    assert len((await listed.json())["data"]) == 3, "refused requests stored nothing"


async def test_open_streams_per_subject(gateway):
    client = await gateway(mock={"step_delay_seconds": 30}, limits={"max_streams_per_subject": 2})
    scan_id = await start_scan(client)
    path = f"/api/v1/scans/{scan_id}/stream"
    first = await client.get(path, headers=auth())
    second = await client.get(path, headers=auth())
    assert (first.status, second.status) == (200, 200)
    third = await client.get(path, headers=auth())
    assert third.status == 429
    error_shape(await third.json())
    assert "2 streams open" in (await third.json())["message"]
    # The limit is per subject: bob, with alice at hers, still opens a stream (of his scan:
    # alice's is not his to read).
    bobs = await client.get(
        f"/api/v1/scans/{await start_scan(client, sub='bob')}/stream", headers=auth("bob")
    )
    assert bobs.status == 200, await bobs.text()
    still_refused = await client.get(path, headers=auth())
    assert still_refused.status == 429, "bob's stream took no place of alice's"
    await still_refused.release()
    bobs.close()
    first.close()
    await first.wait_for_close()
    for _ in range(100):  # the server notices the close on its own schedule
        again = await client.get(path, headers=auth())
        if again.status == 200:
            break
        await again.release()
    assert again.status == 200
    again.close()
    second.close()


async def test_starts_past_the_burst_are_refused_with_retry_after(gateway):
    client = await gateway(
        limits={"scan_starts_per_second": 0.01, "scan_start_burst": 2, "retry_after_seconds": 7}
    )
    await start_scan(client)
    await start_scan(client)
    refused = await post_scan(client, "alice")
    assert refused.status == 429
    body = await refused.json()
    error_shape(body)
    assert body["error"] == "limit_exceeded"
    assert body["message"].startswith("you start scans faster than the 0.01 per second allowed")
    # A whole number of seconds, the time one start takes to come back (100 s at 0.01/s).
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 100
    assert f"in {retry_after} s" in body["message"]
    await start_scan(client, sub="bob")  # a bucket per subject
    listed = await client.get("/api/v1/scans/", headers=auth("alice"))
    assert len((await listed.json())["data"]) == 2, "the refused start stored nothing"


async def test_open_streams_in_all(gateway):
    client = await gateway(mock={"step_delay_seconds": 30}, limits={"max_streams": 2})
    scans = {sub: await start_scan(client, sub=sub) for sub in ("alice", "bob", "carol")}
    opened = [
        await client.get(f"/api/v1/scans/{scans[sub]}/stream", headers=auth(sub))
        for sub in ("alice", "bob")
    ]
    assert [response.status for response in opened] == [200, 200]
    full = await client.get(f"/api/v1/scans/{scans['carol']}/stream", headers=auth("carol"))
    assert full.status == 429
    body = await full.json()
    error_shape(body)
    assert body["message"] == "the gateway serves its maximum of 2 streams; try later"
    assert full.headers["Retry-After"] == "5"
    for response in opened:
        response.close()
