"""The API's shapes are declared once: the answers the routes send decode as those Structs,
field for field and in their order. (That the document's components are generated from them:
``test_components.py``.)"""

from __future__ import annotations

import json

import msgspec

from gateway.http.schemas import (
    DEFAULT_SUBJECT,
    MAX_SUBJECT,
    DevToken,
    Envelope,
    Error,
    EventPayload,
    Results,
    ScanCreated,
    ScanDetail,
    ScanLinks,
    ScanView,
)
from tests.helpers import auth, start_scan, stream


def decoded(body: bytes, data_type: object) -> object:
    """``body`` decoded strictly as ``Envelope`` whose ``data`` is ``data_type``."""
    envelope = msgspec.json.decode(body, type=Envelope)
    return msgspec.convert(envelope.data, data_type)


async def test_the_answers_are_the_declared_shapes_in_their_order(client):
    scan_id = await start_scan(client)
    events = await stream(client, scan_id)
    for _, data in events:
        msgspec.convert(data, EventPayload)

    created = await client.post(
        "/api/v1/scans/",
        json={"repository_name": "acme/web", "scanner_name": "secret_scanner"},
        headers=auth(),
    )
    body = await created.read()
    view = decoded(body, ScanCreated)
    assert json.loads(body)["data"] == msgspec.to_builtins(view)
    assert list(json.loads(body)["data"]) == list(ScanCreated.__struct_fields__)

    for path, shape in (
        (f"/api/v1/scans/{scan_id}", ScanDetail),
        (f"/api/v1/scans/{scan_id}/results", Results),
    ):
        body = await (await client.get(path, headers=auth())).read()
        data = json.loads(body)["data"]
        # Every field without a default, in order (the optional ones only when asked for).
        required = [f.name for f in msgspec.structs.fields(shape) if f.required]
        assert list(data) == required, path
        assert data == msgspec.to_builtins(decoded(body, shape)), path
    listed = json.loads(await (await client.get("/api/v1/scans/", headers=auth())).read())
    for item in listed["data"]:
        assert list(item) == list(ScanView.__struct_fields__)

    missing = await (await client.get("/api/v1/scans/nope", headers=auth())).read()
    error = msgspec.json.decode(missing, type=Error)
    assert (error.error, error.data) == ("scan_not_found", None)
    assert list(json.loads(missing)) == list(Error.__struct_fields__)


async def test_the_dev_token_body_is_decoded_by_its_struct(gateway):
    client = await gateway(dev_mode=True)

    async def post(body):
        response = await client.post("/api/v1/dev/token", json=body)
        return response.status, await response.json()

    longest = "s" * MAX_SUBJECT
    accepted = [({}, DEFAULT_SUBJECT), ({"subject": longest}, longest), ({"subject": " b "}, "b")]
    for wanted, subject in accepted:
        status, answer = await post(wanted)
        assert status == 200, answer
        token = msgspec.convert(answer["data"], DevToken)
        assert token.subject == subject
    refusals = [
        ({"subject": longest + "s"}, f"field 'subject' is longer than {MAX_SUBJECT} characters"),
        ({"subject": " "}, "field 'subject' must be a non-empty string"),
        ({"subject": None}, "field 'subject' must be a non-empty string"),
        ({"subject": 7}, "field 'subject' must be a non-empty string"),
        ({"subject": "a", "sub": "b"}, "unknown field(s): sub"),
    ]
    for body, message in refusals:
        status, answer = await post(body)
        assert (status, answer["error"], answer["message"]) == (422, "validation_error", message)


def test_every_body_that_links_to_a_scan_ends_with_the_links_as_declared_once():
    links = msgspec.structs.fields(ScanLinks)
    assert [f.name for f in links] == ["stream_url", "status_url", "results_url"]
    for shape in (ScanCreated, ScanDetail):
        assert msgspec.structs.fields(shape)[-len(links) :] == links, shape.__name__
