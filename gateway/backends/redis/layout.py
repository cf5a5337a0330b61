"""How the shared store lays scans out in Redis, the encoding to and from it, and the writes
one event makes (``queue_event``).

The keys, under ``key_prefix`` (``xployt:`` by default):

    scan:{id}      hash    the ScanRecord's fields as text (configurations as compact JSON;
                           error and finished_at absent while None) and created_order; once
                           completed, findings_summary (severity counts, compact JSON) and
                           findings_dropped (findings past the scan's bounds)
    log:{id}       stream  one entry per event, entry id ``{seq}-0``, fields ``d`` (Event.data)
                           and ``t`` (b"1" on the terminal event, else b"0")
    findings:{id}  list    the vulnerabilities, one compact JSON object per item, in order
    vulns:{id}     string  read only: results stored before findings lists, one JSON array
    owner:{owner}  zset    the owner's scan ids, scored by created_order
    created        string  the counter created_order comes from
    running        set     scan ids whose log has no terminal event yet
    lease:{id}     string  the id of the replica running the scan, expiring (PX)

What ``limits`` counts, across replicas (each zset scored by when the place lapses, in Redis's
clock's milliseconds, unless the replica holding it renews it; see ``limits``):

    limits:scans              zset  running scans in all, by scan id
    limits:scans:{subject}    zset  the subject's running scans
    limits:streams            zset  open streams in all, by stream id
    limits:streams:{subject}  zset  the subject's open streams
    limits:starts:{subject}   hash  the subject's bucket of scan starts: tokens, at (ms)

The SSE id of an event is the first part of its stream entry id: ``Last-Event-ID: 7`` resumes
with ``XRANGE log:{id} (7-0 +`` and a live reader blocks in ``XREAD ... log:{id} 7-0``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio.client import Pipeline
from redis.typing import EncodableT

from gateway.domain.models import Event, ScanRecord, ScanState, Status, compact_json
from gateway.engine.store import findings_tally

__all__ = [
    "STATE",
    "Entry",
    "Keys",
    "as_text",
    "decode_event",
    "decode_record",
    "decode_state",
    "encode_record",
    "queue_event",
]

STATE = ("status", "progress_percent", "progress_text", "error", "last_seq")
# A stream entry as redis-py returns it (decode_responses=False): (id, fields).
Entry = tuple[bytes, dict[bytes, bytes]]


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.running = f"{prefix}running"
        self.created = f"{prefix}created"
        self.limit_scans = f"{prefix}limits:scans"
        self.limit_streams = f"{prefix}limits:streams"

    def scan(self, scan_id: str) -> str:
        return f"{self.prefix}scan:{scan_id}"

    def log(self, scan_id: str) -> str:
        return f"{self.prefix}log:{scan_id}"

    def findings(self, scan_id: str) -> str:
        return f"{self.prefix}findings:{scan_id}"

    def legacy_vulns(self, scan_id: str) -> str:
        return f"{self.prefix}vulns:{scan_id}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    def lease(self, scan_id: str) -> str:
        return f"{self.prefix}lease:{scan_id}"

    def scans_of(self, subject: str) -> str:
        return f"{self.limit_scans}:{subject}"

    def streams_of(self, subject: str) -> str:
        return f"{self.limit_streams}:{subject}"

    def starts_of(self, subject: str) -> str:
        return f"{self.prefix}limits:starts:{subject}"


def encode_record(record: ScanRecord) -> dict[EncodableT, EncodableT]:
    fields: dict[EncodableT, EncodableT | None] = {
        "scan_id": record.scan_id,
        "owner": record.owner,
        "repository_name": record.repository_name,
        "scanner_name": record.scanner_name,
        "sse_enabled": int(record.sse_enabled),
        "configurations": compact_json(record.configurations),
        "status": record.status.value,
        "progress_percent": record.progress_percent,
        "progress_text": record.progress_text,
        "error": record.error,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": record.finished_at,
        "last_seq": record.last_seq,
        "skipped_events": record.skipped_events,
    }
    return {name: value for name, value in fields.items() if value is not None}


def decode_record(fields: Mapping[bytes | str, bytes | str]) -> ScanRecord | None:
    if not fields:
        return None
    text = {as_text(name): as_text(value) for name, value in fields.items()}
    return ScanRecord(
        scan_id=text["scan_id"],
        owner=text["owner"],
        repository_name=text["repository_name"],
        scanner_name=text["scanner_name"],
        sse_enabled=text["sse_enabled"] == "1",
        configurations=json.loads(text["configurations"]),
        status=Status(text["status"]),
        progress_percent=int(text["progress_percent"]),
        progress_text=text["progress_text"],
        error=text.get("error"),
        created_at=text["created_at"],
        updated_at=text["updated_at"],
        finished_at=text.get("finished_at"),
        last_seq=int(text["last_seq"]),
        skipped_events=int(text.get("skipped_events", 0)),
    )


def decode_state(values: Sequence[bytes | str | None]) -> ScanState:
    status, percent, text, error, last_seq = (None if v is None else as_text(v) for v in values)
    assert status is not None
    assert percent is not None
    assert text is not None
    assert last_seq is not None
    return ScanState(Status(status), int(percent), text, error, int(last_seq))


def decode_event(scan_id: str, entry: Entry) -> Event:
    """The event a log entry holds; the entry id is ``{seq}-0``."""
    entry_id, fields = entry
    seq = int(entry_id.split(b"-", 1)[0])
    return Event(scan_id, seq, fields[b"d"].decode(), fields[b"t"] == b"1")


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def queue_event(
    pipe: Pipeline,
    keys: Keys,
    event: Event,
    vulnerabilities: Sequence[Mapping[str, Any]] = (),
    findings_dropped: int | None = None,
    *,
    log_ms: int,
    record_ms: int,
) -> None:
    """Queue the writes every event makes, and on the terminal one the end of the scan: no
    longer running, its lease gone, its keys expiring (the log after ``log_ms``, the record and
    results after ``record_ms``)."""
    scan_id = event.scan_id
    fields: dict[EncodableT, EncodableT] = {"d": event.data, "t": b"1" if event.terminal else b"0"}
    pipe.xadd(keys.log(scan_id), fields, id=f"{event.seq}-0")
    if vulnerabilities:
        pipe.delete(keys.findings(scan_id))  # a retried transaction starts it afresh
        pipe.rpush(keys.findings(scan_id), *(compact_json(v) for v in vulnerabilities))
    tally = findings_tally(vulnerabilities, findings_dropped)
    if tally is not None:
        summary, dropped = tally
        results: dict[EncodableT, EncodableT] = {
            "findings_summary": compact_json(summary),
            "findings_dropped": dropped,
        }
        pipe.hset(keys.scan(scan_id), mapping=results)
    if event.terminal:
        pipe.srem(keys.running, scan_id)
        pipe.delete(keys.lease(scan_id))
        pipe.pexpire(keys.log(scan_id), log_ms)
        pipe.pexpire(keys.scan(scan_id), record_ms)
        pipe.pexpire(keys.findings(scan_id), record_ms)
