"""The audit log: one line per state change, saying who, what and from where, and never a
credential."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import jwt

from gateway.http.audit import AUDIT_LOGGER
from gateway.http.logs import JSONFormatter, TokenFilter
from tests.helpers import SECRET, scans_ended, start_scan

GOOD = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}


def bearer(sub: str = "alice", **claims: Any) -> tuple[str, dict[str, str]]:
    payload = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    value = jwt.encode(payload, SECRET)
    return value, {"Authorization": f"Bearer {value}"}


def audited(caplog) -> list[dict[str, Any]]:
    return [record.audit for record in caplog.records if record.name == AUDIT_LOGGER]


async def test_each_state_change_is_one_line_with_who_what_and_where(client, caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    secret, headers = bearer(jti="token-7", azp="xployt-web", scope="scans:read scans:write")
    started = await client.post(
        "/api/v1/scans/", json=GOOD, headers={**headers, "X-Request-ID": "req-1"}
    )
    assert started.status == 201
    scan_id = (await started.json())["data"]["scan_id"]
    await scans_ended(scan_id)
    ticket = await client.post(f"/api/v1/scans/{scan_id}/stream-ticket", headers=headers)
    session = await client.post("/api/v1/auth/session", headers=headers)
    # Reads, refusals and failures change nothing: no line.
    await client.get(f"/api/v1/scans/{scan_id}", headers=headers)
    assert (await client.delete(f"/api/v1/scans/{scan_id}", headers=headers)).status == 403
    assert (await client.post("/api/v1/scans/", json=GOOD)).status == 401
    lines = audited(caplog)
    assert [line["action"] for line in lines] == [
        "scan.started",
        "ticket.issued",
        "session.opened",
    ]
    who = {"subject": "alice", "via": "bearer", "jti": "token-7", "azp": "xployt-web"}
    assert lines[0] == {
        "action": "scan.started",
        **who,
        "scan_id": scan_id,
        "scanner": "secret_scanner",
        "repository": "acme/web",
        "use_sse": False,
        "client": "127.0.0.1",
        "request_id": "req-1",
    }
    assert lines[1]["scan_id"] == scan_id and lines[1]["owner"] == "alice"
    assert lines[1]["request_id"] == ticket.headers["X-Request-ID"]
    assert 0 < lines[1]["expires_in"] <= 3600
    assert lines[2]["request_id"] == session.headers["X-Request-ID"]
    assert all(line.items() >= who.items() for line in lines)
    # The text says the same, as key=value pairs.
    text = [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]
    assert text[0].startswith(
        'audit action="scan.started" subject="alice" via="bearer" jti="token-7" azp="xployt-web"'
    )
    assert 'use_sse=false client="127.0.0.1" request_id="req-1"' in text[0]
    # What the log filters make of it: the same (no credential in it to redact).
    assert [TokenFilter().redact(line) for line in text] == text
    # Never a credential: not the token, not the ticket, not the cookie.
    ticket_value = (await ticket.json())["data"]["ticket"]
    assert secret not in caplog.text and ticket_value not in caplog.text
    assert secret.split(".")[2] not in json.dumps(lines)
    assert ticket_value.split(".")[2] not in json.dumps(lines)


async def test_a_cancel_by_the_operator_names_the_owner(client, caplog):
    running = await start_scan(client, sub="alice", use_sse=True, configurations={"step_delay": 5})
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    _, admin = bearer("operator", scope="scans:admin")
    assert (await client.delete(f"/api/v1/scans/{running}", headers=admin)).status == 200
    # A second cancel of an ended scan changes nothing.
    assert (await client.delete(f"/api/v1/scans/{running}", headers=admin)).status == 409
    [line] = audited(caplog)
    assert line["action"] == "scan.cancelled"
    assert (line["subject"], line["owner"], line["scan_id"]) == ("operator", "alice", running)


async def test_tokens_minted_in_dev_mode_are_audited(gateway, caplog):
    client = await gateway(dev_mode=True)
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    response = await client.post("/api/v1/dev/token", json={"subject": "mallory"})
    token = (await response.json())["data"]["token"]
    [line] = audited(caplog)
    assert (line["action"], line["minted_for"]) == ("dev_token.issued", "mallory")
    assert "subject" not in line  # nobody authenticated: the route is public
    assert token not in caplog.text


async def test_a_subject_cannot_forge_a_line_or_a_field(client, caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    _, headers = bearer('eve\naudit action=scan.cancelled subject="root" x=')
    assert (await client.post("/api/v1/scans/", json=GOOD, headers=headers)).status == 201
    [record] = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    message = record.getMessage()
    assert "\n" not in message
    # Read back as key=value pairs (a quoted value is a JSON string): what was logged.
    pairs = re.findall(r'(?:^| )(\w+)=("(?:[^"\\]|\\.)*"|[^ "]+)', message.removeprefix("audit"))
    fields = {name: json.loads(value) for name, value in pairs}
    assert fields["action"] == "scan.started"
    assert fields["subject"] == 'eve\naudit action=scan.cancelled subject="root" x='
    assert list(fields) == list(record.audit)


def test_json_lines_carry_the_fields_redacted_like_the_rest():
    record = logging.LogRecord(AUDIT_LOGGER, logging.INFO, __file__, 1, "audit x", None, None)
    jwtish = jwt.encode({"sub": "x"}, SECRET)
    record.audit = {"action": "scan.started", "subject": jwtish, "use_sse": True}
    TokenFilter().filter(record)
    entry = json.loads(JSONFormatter().format(record))
    assert entry["audit"] == {"action": "scan.started", "subject": "[redacted]", "use_sse": True}
