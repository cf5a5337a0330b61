"""The shared collection store: collection records in Redis, leases on running collections.

The keys, under ``key_prefix`` beside the scans' (``layout``):

    collection:{id}        hash    the record: owner, repository_name, sse_enabled, children
                                   (compact JSON: scan id -> ChildState, the cursors), status,
                                   progress_percent, created_at, updated_at, finished_at,
                                   last_seq, cancel_requested, summary, findings_summary
    log:collection:{id}    stream  the collection's log, laid out as a scan's (the scan store's
                                   ``events_after`` and ``tail`` read it)
    findings:collection:{id} list  the merged findings, stored with the terminal event
    collections:{owner}    zset    the owner's collection ids, scored by creation order
    collections:created    string  the counter of that order
    collections:running    set     collection ids whose log has no terminal event yet
    lease:collection:{id}  string  the id of the replica aggregating it, expiring (PX)

An append is an optimistic transaction (``transaction``: WATCH the record and the lease),
made only by the lease's holder and only after the event it expects to follow; a terminal one
drops the lease and sets the expiries scans have. An append whose outcome was unknown (the
connection lost with EXEC sent) is ``StoreUnavailable``; the aggregator retries it, and the
retry finds the event stored if it was. A replica that dies stops renewing its leases, and any
replica's ``claim_unfinished`` takes its collections over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Final, cast

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT

from gateway.backends.redis.layout import Entry, Keys, as_text
from gateway.backends.redis.pages import read_findings
from gateway.backends.redis.store import SOCKET_TIMEOUT
from gateway.backends.redis.transaction import answering, multi, transaction
from gateway.backends.redis.transaction import client as redis_client
from gateway.config import RedisConfig
from gateway.domain.collections import (
    LOG_PREFIX,
    ChildState,
    CollectionFinished,
    CollectionLost,
    CollectionRecord,
    CollectionStatus,
    CollectionUpdate,
    NewCollection,
    log_id,
)
from gateway.domain.models import Event, FindingsPage, compact_json, count_severities, utcnow
from gateway.engine.collection_store import CollectionStore
from gateway.engine.store import findings_tally

__all__ = ["RedisCollections"]

log = logging.getLogger(__name__)

# Renew a lease if it is ours; 0 means lost.
_RENEW: Final = """
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class RedisCollections(CollectionStore):
    def __init__(self, client: Redis, settings: RedisConfig, replica_id: str) -> None:
        self._redis = client
        self._keys = Keys(settings.key_prefix)
        self._prefix = settings.key_prefix
        self._log_ms = round(settings.retention_seconds * 1000)
        self._record_ms = round(settings.record_retention_seconds * 1000)
        self._lease_ms = round(settings.lease_seconds * 1000)
        self.sweep_interval = settings.sweep_interval_seconds
        self._me = replica_id
        self._held: set[str] = set()
        self._renew_script = client.register_script(_RENEW)
        self._renewer = asyncio.create_task(
            self._renew_forever(settings.lease_seconds / 3), name="collection lease renewer"
        )

    @classmethod
    async def open(cls, settings: RedisConfig) -> RedisCollections:
        client = redis_client(settings.url, socket_timeout=SOCKET_TIMEOUT)
        return cls(client, settings, uuid.uuid4().hex)

    async def close(self) -> None:
        self._renewer.cancel()
        await asyncio.gather(self._renewer, return_exceptions=True)
        await self._redis.aclose()

    def release(self, collection_id: str) -> None:
        self._held.discard(collection_id)

    def _record_key(self, collection_id: str) -> str:
        return f"{self._prefix}collection:{collection_id}"

    def _lease_key(self, collection_id: str) -> str:
        return self._keys.lease(log_id(collection_id))

    @property
    def _running(self) -> str:
        return f"{self._prefix}collections:running"

    async def create(self, new: NewCollection) -> CollectionRecord:
        now = utcnow()
        record = new.record(now)
        cid = new.collection_id
        with answering():
            order = await self._redis.incr(f"{self._prefix}collections:created")
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._record_key(cid), mapping={**_encode(record), "order": order})
                pipe.zadd(f"{self._prefix}collections:{new.owner}", {cid: order})
                pipe.sadd(self._running, cid)
                pipe.set(self._lease_key(cid), self._me, px=self._lease_ms)
                await pipe.execute()
        self._held.add(cid)
        return record

    async def append(self, collection_id: str, update: CollectionUpdate, *, after: int) -> Event:
        key, lease = self._record_key(collection_id), self._lease_key(collection_id)
        payload = msgspec.to_builtins(update.payload)
        event = Event(log_id(collection_id), after + 1, compact_json(payload), update.terminal)

        async def write(pipe: Pipeline) -> None:
            if await self._stored_already(pipe, key, lease, event, after):
                return  # nothing queued: no EXEC
            multi(pipe)
            self._queue(pipe, collection_id, update, event, payload["timestamp"])

        with answering():
            await transaction(self._redis, [key, lease], write)
        if event.terminal:
            self._held.discard(collection_id)
        return event

    async def _stored_already(
        self, pipe: Pipeline, key: str, lease: str, event: Event, after: int
    ) -> bool:
        """Check the append may go ahead; True if this very event is stored already (an
        earlier attempt's EXEC was applied though its answer was lost)."""
        last, finished = await pipe.hmget(key, ["last_seq", "finished_at"])
        if last is None:
            raise CollectionLost(f"collection {event.scan_id} is gone")
        if int(last) == event.seq:
            entry = f"{event.seq}-0"
            found = cast(
                "list[Entry]", await pipe.xrange(self._keys.log(event.scan_id), entry, entry)
            )
            if found and found[0][1].get(b"d") == event.data.encode():
                return True
        if finished is not None:
            raise CollectionFinished(f"{event.scan_id} already ended")
        if await pipe.get(lease) != self._me.encode() or int(last) != after:
            self._held.discard(event.scan_id.removeprefix(LOG_PREFIX))
            raise CollectionLost(f"{event.scan_id} is held by another replica")
        return False

    def _queue(
        self, pipe: Pipeline, collection_id: str, update: CollectionUpdate, event: Event, now: str
    ) -> None:
        key, name = self._record_key(collection_id), event.scan_id
        changes: dict[EncodableT, EncodableT] = {
            "children": _children_json(update.children),
            "status": update.status.value,
            "progress_percent": update.progress_percent,
            "updated_at": now,
            "last_seq": event.seq,
        }
        pipe.xadd(
            self._keys.log(name),
            {"d": event.data, "t": b"1" if event.terminal else b"0"},
            id=f"{event.seq}-0",
        )
        tally = findings_tally(update.merged, 0) if update.terminal else None
        if tally is not None:
            changes.update(
                finished_at=now,
                summary=compact_json(update.summary),
                findings_summary=compact_json(tally[0]),
            )
            findings = self._keys.findings(name)
            pipe.delete(findings)  # a retried transaction starts it afresh
            if update.merged:
                pipe.rpush(findings, *[compact_json(finding) for finding in update.merged])
            pipe.srem(self._running, collection_id)
            pipe.delete(self._lease_key(collection_id))
            pipe.pexpire(self._keys.log(name), self._log_ms)
            pipe.pexpire(findings, self._record_ms)
            pipe.pexpire(key, self._record_ms)
        pipe.hset(key, mapping=changes)

    async def get(self, collection_id: str) -> CollectionRecord | None:
        with answering():
            return _decode(await self._redis.hgetall(self._record_key(collection_id)))

    async def list_owned(self, owner: str, *, limit: int) -> list[CollectionRecord]:
        key = f"{self._prefix}collections:{owner}"
        with answering():
            ids = cast("list[bytes]", await self._redis.zrevrange(key, 0, limit * 2 - 1))
            async with self._redis.pipeline(transaction=False) as pipe:
                for cid in ids:
                    pipe.hgetall(self._record_key(cid.decode()))
                records = [_decode(fields) for fields in await pipe.execute()]
            expired = [cid for cid, rec in zip(ids, records, strict=True) if rec is None]
            if expired:
                await self._redis.zrem(key, *expired)
        return [record for record in records if record is not None][:limit]

    async def request_cancel(self, collection_id: str) -> None:
        key = self._record_key(collection_id)
        with answering():
            if await self._redis.exists(key):
                await self._redis.hset(key, "cancel_requested", 1)

    async def findings_page(
        self, collection_id: str, *, start: int, limit: int, max_bytes: int | None = None
    ) -> FindingsPage:
        with answering():
            counts = await self._redis.hget(self._record_key(collection_id), "findings_summary")
            page = await read_findings(
                self._redis, self._keys, log_id(collection_id), start, limit, max_bytes
            )
        return FindingsPage(page, _counts(counts))

    async def claim_unfinished(self) -> list[CollectionRecord]:
        claimed: list[CollectionRecord] = []
        with answering():
            members = await self._redis.smembers(self._running)
            for cid in sorted(as_text(member) for member in members):
                if cid in self._held:
                    continue
                if not await self._redis.set(
                    self._lease_key(cid), self._me, nx=True, px=self._lease_ms
                ):
                    continue
                record = await self.get(cid)
                if record is None or record.terminal:
                    await self._redis.srem(self._running, cid)
                    await self._redis.delete(self._lease_key(cid))
                    continue
                self._held.add(cid)
                claimed.append(record)
        return claimed

    async def position(self, name: str) -> tuple[int, bool]:
        """A collection log's last sequence number and whether it has ended (for the bus)."""
        collection_id = name.removeprefix(LOG_PREFIX)
        with answering():
            seq, finished = await self._redis.hmget(
                self._record_key(collection_id), ["last_seq", "finished_at"]
            )
        return (0 if seq is None else int(seq)), bool(finished)

    async def _renew_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for cid in sorted(self._held):
                try:
                    keys = [self._lease_key(cid)]
                    with answering():
                        renewed = await self._renew_script(
                            keys=keys, args=[self._me, self._lease_ms]
                        )
                    if not renewed:
                        self._held.discard(cid)  # its next append raises CollectionLost
                except Exception as exc:  # Redis down (or a bug): tried again next tick
                    log.debug("collection lease renewal failed: %s", exc)
                    break


def _counts(raw: bytes | str | None) -> dict[str, int]:
    return count_severities([]) if raw is None else dict(json.loads(raw))


def _children_json(children: dict[str, ChildState]) -> str:
    return compact_json({scan_id: state.to_json() for scan_id, state in children.items()})


def _encode(record: CollectionRecord) -> dict[EncodableT, EncodableT]:
    return {
        "collection_id": record.collection_id,
        "owner": record.owner,
        "repository_name": record.repository_name,
        "sse_enabled": int(record.sse_enabled),
        "children": _children_json(record.children),
        "status": record.status.value,
        "progress_percent": record.progress_percent,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "last_seq": record.last_seq,
        "cancel_requested": 0,
    }


def _decode(fields: Mapping[bytes | str, bytes | str]) -> CollectionRecord | None:
    if not fields or b"collection_id" not in fields:
        return None
    text = {as_text(name): as_text(value) for name, value in fields.items()}
    children = json.loads(text["children"])
    return CollectionRecord(
        collection_id=text["collection_id"],
        owner=text["owner"],
        repository_name=text["repository_name"],
        sse_enabled=text["sse_enabled"] == "1",
        children={scan_id: ChildState.from_json(state) for scan_id, state in children.items()},
        status=CollectionStatus(text["status"]),
        progress_percent=int(text["progress_percent"]),
        created_at=text["created_at"],
        updated_at=text["updated_at"],
        finished_at=text.get("finished_at"),
        last_seq=int(text["last_seq"]),
        cancel_requested=text.get("cancel_requested") == "1",
        summary=json.loads(text["summary"]) if "summary" in text else None,
    )
