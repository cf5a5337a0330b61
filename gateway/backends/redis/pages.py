"""Reads that come a page at a time: an owner's scans, newest first, and a scan's findings.

Both read in batches, so a bound on the page (its length, its bytes) also bounds what is
fetched from Redis.
"""

from __future__ import annotations

import json
from typing import Any, Final, cast

from redis.asyncio import Redis

from gateway.backends.redis.layout import Keys, decode_record
from gateway.domain.models import FindingsPage, ScanRecord, Status, count_severities

__all__ = ["findings_page", "list_scans", "read_findings"]

_PAGE_BATCH: Final = 100  # findings fetched per LRANGE while a page is read
_FILTERED_BATCH: Final = 100  # scan ids read at least per ZREVRANGE when a status filters


async def list_scans(
    client: Redis, keys: Keys, owner: str, *, limit: int, status: Status | None
) -> list[ScanRecord]:
    """The owner's scans, newest first; ids whose records expired are removed on the way."""
    key = keys.owner(owner)
    page = limit if status is None else max(limit, _FILTERED_BATCH)
    found: list[ScanRecord] = []
    expired: list[bytes] = []
    start = 0
    while len(found) < limit:
        # Members only (no scores asked for).
        ids = cast("list[bytes]", await client.zrevrange(key, start, start + page - 1))
        if not ids:
            break
        start += len(ids)
        async with client.pipeline(transaction=False) as pipe:
            for scan_id in ids:
                pipe.hgetall(keys.scan(scan_id.decode()))
            records = [decode_record(fields) for fields in await pipe.execute()]
        expired += [scan_id for scan_id, rec in zip(ids, records, strict=True) if rec is None]
        found += [rec for rec in records if rec and status in (None, rec.status)]
    if expired:
        await client.zrem(key, *expired)
    return found[:limit]


async def findings_page(
    client: Redis, keys: Keys, scan_id: str, *, start: int, limit: int, max_bytes: int | None
) -> FindingsPage:
    summary, dropped = await client.hmget(
        keys.scan(scan_id), ["findings_summary", "findings_dropped"]
    )
    if summary is None:
        return await _legacy_findings_page(client, keys, scan_id, start, limit)
    page = await read_findings(client, keys, scan_id, start, limit, max_bytes)
    return FindingsPage(page, json.loads(summary), 0 if dropped is None else int(dropped))


async def read_findings(
    client: Redis, keys: Keys, scan_id: str, start: int, limit: int, max_bytes: int | None
) -> list[dict[str, Any]]:
    """A page of the list ``keys.findings(scan_id)`` (a scan's findings; with a collection's
    log id, its merged findings), read a batch at a time; it ends before the finding that
    would take it past ``max_bytes`` (it always holds at least one)."""
    page: list[dict[str, Any]] = []
    size = 0
    while len(page) < limit:
        first = start + len(page)
        batch = await client.lrange(
            keys.findings(scan_id), first, first + min(_PAGE_BATCH, limit - len(page)) - 1
        )
        for item in batch:
            if page and max_bytes is not None and size + len(item) > max_bytes:
                return page
            page.append(json.loads(item))
            size += len(item)
        if len(batch) < _PAGE_BATCH:
            break
    return page


async def _legacy_findings_page(
    client: Redis, keys: Keys, scan_id: str, start: int, limit: int
) -> FindingsPage:
    """Results written before findings lists: one JSON array under ``vulns:{id}``."""
    value = await client.get(keys.legacy_vulns(scan_id))
    found: list[dict[str, Any]] = [] if value is None else json.loads(value)
    summary = count_severities(vuln.get("severity") for vuln in found)
    return FindingsPage(found[start : start + limit], summary)
