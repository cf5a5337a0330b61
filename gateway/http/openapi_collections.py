"""The collection routes' part of the OpenAPI document: their paths, parameters and the
components generated from ``collection_schemas``. ``openapi`` hands in its helpers (the
envelope, the shared responses), so this module imports nothing of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.config import Config
from gateway.http.collection_schemas import COLLECTION_COMPONENTS

__all__ = ["Helpers", "collection_components", "collection_parameters", "collection_paths"]

Schema = dict[str, Any]
_API = "/api/v1/scan-collections"
_ONE = _API + "/{collection_id}"


@dataclass(frozen=True, slots=True)
class Helpers:
    """How the rest of the document writes its answers (``openapi``'s own helpers)."""

    ok: Callable[..., Schema]  # (data schema, description[, headers]) -> a 2xx in the envelope
    use: Callable[[str], Schema]  # a shared response by name
    error: Callable[[str], Schema]  # an error response with its description
    operation: Callable[..., Schema]
    header: Callable[[str, Schema], Schema]
    text: Callable[[str, str], Schema]
    api: list[dict[str, list[str]]]  # any credential
    changes: list[dict[str, list[str]]]  # credentials that may change something


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def collection_components() -> dict[str, Schema]:
    _, schemas = msgspec.json.schema_components(
        COLLECTION_COMPONENTS, ref_template="#/components/schemas/{name}"
    )
    for schema in schemas.values():
        if "description" in schema:
            schema["description"] = " ".join(schema["description"].split())
    schemas["CollectionList"] = {
        "type": "array",
        "items": _ref("CollectionView"),
        "description": "the caller's collections, newest first",
    }
    return schemas


def collection_parameters() -> dict[str, Schema]:
    return {
        "CollectionId": {
            "name": "collection_id",
            "in": "path",
            "required": True,
            "description": "the collection's id, as `POST /api/v1/scan-collections/` answered it",
            "schema": {"type": "string", "minLength": 1},
        }
    }


def collection_paths(config: Config, h: Helpers) -> dict[str, Schema]:
    missing = h.use("CollectionNotFound")
    common = {"401": h.use("Unauthorized"), "404": missing, "503": h.use("StoreUnavailable")}

    def start(operation_id: str) -> Schema:
        return h.operation(
            operation_id,
            "Start a scan collection: every scanner named on one repository",
            "collections",
            {
                "201": h.ok(
                    _ref("CollectionCreated"),
                    "The collection and its scans are created and running.",
                    {"Location": h.header("The collection's URL.", {"type": "string"})},
                ),
                "400": h.use("BadRequest"),
                "401": h.use("Unauthorized"),
                "403": h.use("Forbidden"),
                "408": h.use("RequestTimeout"),
                "413": h.use("PayloadTooLarge"),
                "415": h.use("UnsupportedMediaType"),
                "422": h.use("ValidationError"),
                "429": h.use("LimitExceeded"),
                "503": h.use("StoreUnavailable"),
            },
            description=(
                "One scan per scanner, each counted against the running-scan limits: if they "
                "do not all fit (`limits.max_running_scans_per_subject`, "
                "`limits.max_running_scans`), none starts (429 saying how many could)."
            ),
            parameters=[_param("UseSSE")],
            request_body={
                "required": True,
                "content": {"application/json": {"schema": _ref("CollectionCreate")}},
            },
            security=h.changes,
        )

    def listing(operation_id: str) -> Schema:
        return h.operation(
            operation_id,
            "List the caller's scan collections",
            "collections",
            {
                "200": h.ok(_ref("CollectionList"), "Newest first."),
                "400": h.use("BadRequest"),
                "401": h.use("Unauthorized"),
                "503": h.use("StoreUnavailable"),
            },
            parameters=[_param("Limit")],
            security=h.api,
        )

    stream_answers = {
        "200": h.text("text/event-stream", "The collection's events (`CollectionEventPayload`)."),
        "204": {"description": "The client holds the terminal event already."},
        **common,
        "429": h.use("LimitExceeded"),
    }
    return {
        _API + "/": {"post": start("startCollection"), "get": listing("listCollections")},
        _API: {"post": start("startCollectionNoSlash"), "get": listing("listCollectionsNoSlash")},
        _ONE: {
            "parameters": [_param("CollectionId")],
            "get": h.operation(
                "getCollection",
                "Read a scan collection",
                "collections",
                {"200": h.ok(_ref("CollectionDetail"), "The collection."), **common},
                security=h.api,
            ),
            "delete": h.operation(
                "cancelCollection",
                "Cancel every running scan of a collection",
                "collections",
                {
                    "200": h.ok(_ref("CollectionDetail"), "Cancelled (or cancelling)."),
                    **common,
                    "403": h.use("Forbidden"),
                    "409": h.error("The collection already ended (`conflict`)."),
                },
                security=h.changes,
            ),
        },
        _ONE + "/status": {
            "parameters": [_param("CollectionId")],
            "get": h.operation(
                "getCollectionStatus",
                "Read a collection's and its scans' progress",
                "collections",
                {"200": h.ok(_ref("CollectionStatusView"), "Its progress."), **common},
                security=h.api,
            ),
        },
        _ONE + "/results": {
            "parameters": [_param("CollectionId")],
            "get": h.operation(
                "getCollectionResults",
                "Read an ended collection's merged findings",
                "collections",
                {
                    "200": h.ok(_ref("CollectionResults"), "A page of the merged findings."),
                    "400": h.use("BadRequest"),
                    **common,
                    "409": h.error("The collection still runs (`scan_not_ready`)."),
                },
                description=(
                    "Served whatever way the collection ended: a failed scan never hides the "
                    "others' findings. Pages as a scan's results."
                ),
                parameters=[_param("ResultsLimit"), _param("Cursor")],
                security=h.api,
            ),
        },
        _ONE + "/stream": {
            "parameters": [_param("CollectionId")],
            "get": h.operation(
                "streamCollection",
                "Watch a collection's events (Server-Sent Events)",
                "stream",
                stream_answers,
                description=(
                    "As a scan's stream (ids from 1 without gaps, `Last-Event-ID`, `reset`, "
                    "`retry:`, 204 after the end), over the collection's own log. Each event's "
                    "data is `components.schemas.CollectionEventPayload`."
                ),
                parameters=[_param("LastEventIdHeader"), _param("LastEventIdQuery")],
                security=[*h.api, {"streamTicket": []}],
            ),
        },
        _ONE + "/stream-ticket": {
            "parameters": [_param("CollectionId")],
            "post": h.operation(
                "createCollectionStreamTicket",
                "Get a ticket that opens the collection's stream",
                "stream",
                {
                    "200": h.ok(_ref("StreamTicket"), "The ticket and the stream URL with it."),
                    **common,
                    "403": h.use("Forbidden"),
                },
                security=h.changes,
            ),
        },
    }
