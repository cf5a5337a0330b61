"""The gateway's OpenAPI 3.1 description, built from its config.

``build_openapi(config, limits)`` returns the document ``GET /api/v1/openapi.json`` serves. Parts
that depend on the deployment come from the config: the scanner names (the enum of
``scanner_name``), the session cookie's name, whether query tokens are accepted, the body size
limit and the ``Retry-After`` the limits send. The bounds the routes own (``RouteLimits``) are
passed in by ``routes.openapi``: the routes import this module, so it imports none of them.
Everything else follows the code: the statuses each route can answer, the envelope every JSON
answer uses and the error envelope of ``responses.error_body``.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from gateway.config import Config
from gateway.domain.models import SEVERITIES
from gateway.http.openapi_collections import (
    Helpers,
    collection_components,
    collection_parameters,
    collection_paths,
)
from gateway.http.schemas import components
from gateway.http.validation import MAX_NUMBER_DIGITS
from gateway.scanners.findings import TRUNCATED

__all__ = ["DOCS_PATH", "OPENAPI_PATH", "RouteLimits", "build_openapi"]

OPENAPI_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/v1/docs"

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RouteLimits:
    """The bounds that route modules enforce and the document states."""

    list_default: int  # `limit` of GET /api/v1/scans/ when it is absent
    list_max: int  # and its largest value
    dev_subject_default: str  # `subject` of POST /api/v1/dev/token when it is absent
    dev_subject_max: int  # and its largest length


_SCANS = "/api/v1/scans"
_SCAN = _SCANS + "/{scan_id}"
_SESSION = "/api/v1/auth/session"
_DEV_TOKEN = "/api/v1/dev/token"

_STREAM_DESCRIPTION = """\
A `text/event-stream` (Server-Sent Events) of the scan's log: every stored event in order, \
then the live ones; the server ends the response after the terminal event (`completed`, \
`failed` or `cancelled`).

The stream opens with a `retry: <ms>` hint. Each event is

```
id: <n>
data: <one JSON object on one line, an Event>

```

where `<n>` is the scan's sequence number (1, 2, 3, ... without gaps) and the data object \
is `components.schemas.Event`: `scan_id, status, progress_percent, progress_text, error, \
timestamp`, plus `summary` on the `completed` event.

Named events, which `EventSource.onmessage` does not see:

* `event: reset` (data `components.schemas.ResetEvent`, id the scan's last): the \
`Last-Event-ID` the client sent is not in the log (`abc`, `-1`, or beyond the last event); \
the data is the scan's current snapshot, and the stream continues live from there.
* `event: auth_expired` (data `components.schemas.AuthExpiredEvent`, no id): the credential \
behind the stream expired; open a new stream with a fresh one and `?last_event_id=`.

Comments (lines starting with `:`) carry no data: `: ping` every `stream.heartbeat_seconds`, \
a final comment before the server drops a subscriber that fell too far behind, and one \
(after a `retry:` hint) when the gateway shuts down. Resume from the last id you saw.

A client that resumes with the terminal event's id gets **204 No Content**, which stops a \
browser's `EventSource` for good.

Authentication: a bearer token, a stream ticket (`?ticket=`, see `POST .../stream-ticket`), \
the session cookie, or (unless `auth.query_tokens` is false) `?token=` / `?access_token=`."""


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    properties: dict[str, Schema],
    *,
    optional: tuple[str, ...] = (),
    description: str | None = None,
) -> Schema:
    """An object with exactly these properties, all required but the ``optional`` ones."""
    schema: Schema = {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _envelope(data: Schema) -> Schema:
    """The success envelope (``schemas.Envelope``) with ``data`` of the given schema."""
    envelope = _generated()["Envelope"]
    fields = {**envelope["properties"], "data": data}
    return {
        key: value for key, value in envelope.items() if key not in ("title", "description")
    } | {"properties": fields}


@functools.cache
def _generated() -> dict[str, Schema]:
    """The components declared once in ``gateway.http.schemas`` (and ``collection_schemas``):
    the same for every config."""
    return {**collection_components(), **components()}


def _schemas(config: Config, limits: RouteLimits) -> dict[str, Schema]:
    schemas = copy.deepcopy(_generated())
    chars = config.findings.max_field_chars
    scanners = sorted(config.scanners)
    if scanners:
        schemas["ScanCreate"]["properties"]["scanner_name"]["enum"] = scanners
    schemas["Results"]["properties"]["vulnerabilities"].update(
        items=_ref("Vulnerability"), maxItems=config.findings.max_page_size
    )
    schemas["ScanList"] = {
        "type": "array",
        "items": _ref("Scan"),
        "description": "the caller's scans, newest first",
    }
    schemas["Vulnerability"] = _vulnerability(config, chars)

    subject = schemas["DevTokenRequest"]["properties"]["subject"]
    subject.update(maxLength=limits.dev_subject_max, default=limits.dev_subject_default)
    return schemas


def _vulnerability(config: Config, chars: int) -> Schema:
    """One finding, as ``findings`` normalises it: its bounds come from the config."""
    return _object(
        {
            "id": {"type": "string", "maxLength": chars},
            "scanner": {"type": "string"},
            "type": {"type": ["string", "null"], "maxLength": chars},
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "title": {"type": "string", "maxLength": chars},
            "description": {"type": ["string", "null"], "maxLength": chars},
            "file_path": {"type": ["string", "null"], "maxLength": chars},
            "line": {"type": ["integer", "null"], "minimum": 0},
            "column": {"type": ["integer", "null"], "minimum": 0},
            "code_snippet": {"type": ["string", "null"], "maxLength": chars},
            "confidence": {"type": ["string", "number", "null"], "maxLength": chars},
            "remediation": {"type": ["string", "null"], "maxLength": chars},
            "cwe": {"type": ["string", "null"], "pattern": "^CWE-[1-9][0-9]*$"},
            "metadata": {
                "type": "object",
                "description": (
                    "whatever else the scanner reported about the finding, at most "
                    f"{config.findings.max_metadata_bytes} bytes of JSON "
                    "(`findings.max_metadata_bytes`) nested at most "
                    f"{config.findings.max_metadata_depth} deep "
                    "(`findings.max_metadata_depth`)"
                ),
            },
            "truncated_fields": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": (
                    "only on a finding the gateway cut: the fields cut. A text field cut "
                    f"ends with `{TRUNCATED}`; metadata loses the keys that did not fit "
                    "and its values nested too deep become that marker."
                ),
            },
        },
        optional=("truncated_fields",),
        description=(
            "One finding, normalised whatever the scanner's own shape. Text fields hold at "
            f"most {chars} characters (`findings.max_field_chars`)."
        ),
    )


def _header(description: str, schema: Schema) -> Schema:
    return {"description": description, "required": True, "schema": schema}


def _error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _ok(data: Schema, description: str, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": _envelope(data)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _text(media_type: str, description: str) -> Schema:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _responses(config: Config) -> dict[str, Schema]:
    """Shared responses, referenced by status."""
    retry_after = config.limits.retry_after_seconds
    return {
        "BadRequest": _error(
            "A query parameter or the body is malformed (`bad_request`, `invalid_json`, "
            "`unknown_scanner`)."
        ),
        "Unauthorized": _error(
            "No credential, or one that is invalid or expired (`unauthorized`).",
            {
                "WWW-Authenticate": _header(
                    'The challenge: `Bearer realm="xployt"`, with `error="invalid_token"` when '
                    "a credential was given (RFC 6750).",
                    {"type": "string"},
                )
            },
        ),
        "Forbidden": _error(
            "A cookie-authenticated `POST`/`DELETE` without `Sec-Fetch-Site: same-origin` and "
            "without an `Origin` that is the gateway's own (scheme, host and port) or in "
            "`cors.allowed_origins` (`forbidden`)."
        ),
        "ScanNotFound": _error(
            "No such scan, or one of another subject: both answer the same (`scan_not_found`)."
        ),
        "RequestTimeout": _error(
            "The body did not arrive whole within `server.body_read_timeout_seconds` "
            f"({config.server.body_read_timeout_seconds:g} s); the connection is closed "
            "(`request_timeout`)."
        ),
        "PayloadTooLarge": _error(
            f"The body is over `server.max_body_bytes` ({config.server.max_body_bytes} bytes) "
            "(`payload_too_large`)."
        ),
        "UnsupportedMediaType": _error(
            "`Content-Type` is not `application/json` (nor `+json`) (`unsupported_media_type`)."
        ),
        "ValidationError": _error(
            "A field is missing, mistyped, empty or unknown (`validation_error`); the message "
            "names it."
        ),
        "LimitExceeded": _error(
            "A limit is reached (`limit_exceeded`); try again after `Retry-After` seconds.",
            {
                "Retry-After": _header(
                    f"Seconds to wait (`limits.retry_after_seconds`, {retry_after}).",
                    {"type": "integer", "minimum": 0},
                )
            },
        ),
        "StoreUnavailable": _error("The store does not answer (`store_unavailable`)."),
        "CollectionNotFound": _error(
            "No such collection, or one of another subject: both answer the same "
            "(`collection_not_found`)."
        ),
    }


def _use(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _parameters(config: Config, limits: RouteLimits) -> dict[str, Schema]:
    pages = config.findings
    return {
        "ScanId": {
            "name": "scan_id",
            "in": "path",
            "required": True,
            "description": "the scan's id, as `POST /api/v1/scans/` answered it",
            "schema": {"type": "string", "minLength": 1},
        },
        "UseSSE": {
            "name": "use_sse",
            "in": "query",
            "required": False,
            "description": (
                "true: the configured scanner runs the scan (the gateway reads its stream); "
                "false: the gateway simulates it. `true/false`, `1/0`, `yes/no`, `on/off` are "
                "accepted; anything else is 400."
            ),
            "schema": {"type": "boolean", "default": False},
        },
        "Limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"how many scans at most; outside 1-{limits.list_max} is 400",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": limits.list_max,
                "default": limits.list_default,
            },
        },
        "ResultsLimit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": (
                f"how many findings at most on this page (`findings.page_size`, "
                f"{pages.page_size}, when absent); outside 1-{pages.max_page_size} "
                "(`findings.max_page_size`) is 400"
            ),
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": pages.max_page_size,
                "default": pages.page_size,
            },
        },
        "Cursor": {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": (
                "where the page starts: the `next_cursor` of the page before (absent or empty: "
                f"the first page). Anything else (not {MAX_NUMBER_DIGITS} digits at most, or "
                "past the last finding) is 400."
            ),
            "schema": {"type": "string", "pattern": f"^[0-9]{{0,{MAX_NUMBER_DIGITS}}}$"},
        },
        "StatusFilter": {
            "name": "status",
            "in": "query",
            "required": False,
            "description": "only scans with this status (case-insensitive); unknown is 400",
            "schema": _ref("Status"),
        },
        "LastEventIdHeader": {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": (
                "The id of the last event received (EventSource sends it on reconnect): the "
                "stream replays exactly the events after it. An id the log does not hold gets "
                "an `event: reset`. Wins over `last_event_id`."
            ),
            "schema": {"type": "string"},
        },
        "LastEventIdQuery": {
            "name": "last_event_id",
            "in": "query",
            "required": False,
            "description": "As `Last-Event-ID`, for a first connection (the header wins).",
            "schema": {"type": "string"},
        },
    }


def _security_schemes(config: Config) -> dict[str, Schema]:
    schemes: dict[str, Schema] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "`Authorization: Bearer <JWT>` with `sub` and `exp`, signed as `jwt.*` in the "
                "config says."
            ),
        },
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": config.auth.cookie_name,
            "description": (
                "The HttpOnly cookie `POST /api/v1/auth/session` sets. A cookie-authenticated "
                "`POST`/`DELETE` must carry `Sec-Fetch-Site: same-origin` or an `Origin` that is "
                "the gateway's own (scheme, host and port) or a configured one; else 403."
            ),
        },
        "streamTicket": {
            "type": "apiKey",
            "in": "query",
            "name": "ticket",
            "description": (
                "A stream ticket from `POST /api/v1/scans/{scan_id}/stream-ticket`; it opens "
                "that scan's stream only."
            ),
        },
        "metricsToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "`metrics.token` from the config (not a JWT), when one is set.",
        },
    }
    if config.auth.query_tokens:
        for name in ("token", "access_token"):
            schemes[_query_scheme(name)] = {
                "type": "apiKey",
                "in": "query",
                "name": name,
                "description": (
                    f"The bearer JWT as `?{name}=` (`auth.query_tokens`); prefer tickets, "
                    "URLs end up in logs and history."
                ),
            }
    return schemes


def _query_scheme(name: str) -> str:
    return "queryToken" if name == "token" else "queryAccessToken"


def _api_security(config: Config, *, query: bool = True) -> list[dict[str, list[str]]]:
    """Any one of these credentials opens a protected route (query tokens: reads only)."""
    names = ["bearerAuth", "sessionCookie"]
    if query and config.auth.query_tokens:
        names += [_query_scheme("token"), _query_scheme("access_token")]
    return [{name: []} for name in names]


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    description: str | None = None,
    parameters: list[Schema] | None = None,
    request_body: Schema | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> Schema:
    operation: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if request_body is not None:
        operation["requestBody"] = request_body
    if security is not None:
        operation["security"] = security
    operation["responses"] = responses
    return operation


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _paths(config: Config) -> dict[str, Schema]:
    public: list[dict[str, list[str]]] = []
    api = _api_security(config)
    changes = _api_security(config, query=False)  # a URL-borne token never changes anything

    def start_scan_operation(operation_id: str) -> Schema:
        return _operation(
            operation_id,
            "Start a scan",
            "scans",
            {
                "201": _ok(
                    _ref("ScanCreated"),
                    "The scan is created and running.",
                    {"Location": _header("The scan's URL (`status_url`).", {"type": "string"})},
                ),
                "400": _use("BadRequest"),
                "401": _use("Unauthorized"),
                "403": _use("Forbidden"),
                "408": _use("RequestTimeout"),
                "413": _use("PayloadTooLarge"),
                "415": _use("UnsupportedMediaType"),
                "422": _use("ValidationError"),
                "429": _use("LimitExceeded"),
                "503": _use("StoreUnavailable"),
            },
            description=(
                "Starts a scan of `repository_name` with `scanner_name`. With `use_sse=true` "
                "the gateway POSTs it to the configured scanner once and reads its progress "
                "stream; otherwise it simulates the scan. 429 when the caller "
                "(`limits.max_running_scans_per_subject`) or the gateway "
                "(`limits.max_running_scans`) runs its maximum of scans."
            ),
            parameters=[_param("UseSSE")],
            request_body={
                "required": True,
                "content": {"application/json": {"schema": _ref("ScanCreate")}},
            },
            security=changes,
        )

    def list_scans(operation_id: str) -> Schema:
        return _operation(
            operation_id,
            "List the caller's scans",
            "scans",
            {
                "200": _ok(_ref("ScanList"), "The caller's scans, newest first."),
                "400": _use("BadRequest"),
                "401": _use("Unauthorized"),
                "503": _use("StoreUnavailable"),
            },
            parameters=[_param("Limit"), _param("StatusFilter")],
        )

    scan_responses: dict[str, Schema] = {
        "401": _use("Unauthorized"),
        "404": _use("ScanNotFound"),
        "503": _use("StoreUnavailable"),
    }
    return {
        "/": {
            "get": _operation(
                "demoPage",
                "The demo page",
                "pages",
                {
                    "200": _text("text/html", "An HTML page that starts and watches a scan."),
                    "404": _error("The page's files are not installed."),
                },
                description=(
                    "Its script and stylesheet are served under `/static/` (not described "
                    "here). In dev mode it gets its token from `POST /api/v1/dev/token`."
                ),
                security=public,
            )
        },
        "/healthz": {
            "get": _operation(
                "healthz",
                "Liveness",
                "operations",
                {
                    "200": _ok(
                        _ref("Health"),
                        "The process runs and, with SQLite, its store answers "
                        "(with Redis, only /readyz asks Redis).",
                    ),
                    "503": _use("StoreUnavailable"),
                },
                security=public,
            )
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "Readiness",
                "operations",
                {
                    "200": _ok(_ref("Readiness"), "The store and every checked scanner answer."),
                    "503": {
                        "description": "Something does not answer; `data.checks` says what.",
                        "content": {"application/json": {"schema": _ref("NotReady")}},
                    },
                },
                description=(
                    "Checks the store and, unless `readiness.check_scanners` is false, each "
                    "configured scanner's health URL."
                ),
                security=public,
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics",
                "operations",
                {
                    "200": _text("text/plain", "The Prometheus text exposition format."),
                    "401": _use("Unauthorized"),
                    "404": _error("Metrics are off (`metrics.enabled: false`)."),
                },
                description=(
                    "Needs `Authorization: Bearer <metrics.token>` when `metrics.token` is set "
                    "(401 without it); open otherwise."
                ),
                security=[{}, {"metricsToken": []}],
            )
        },
        _SCANS + "/": {"post": start_scan_operation("startScan"), "get": list_scans("listScans")},
        _SCANS: {
            "post": start_scan_operation("startScanNoSlash"),
            "get": list_scans("listScansNoSlash"),
        },
        _SCAN: {
            "parameters": [_param("ScanId")],
            "get": _operation(
                "getScan",
                "Read a scan",
                "scans",
                {"200": _ok(_ref("ScanDetail"), "The scan."), **scan_responses},
            ),
            "delete": _operation(
                "cancelScan",
                "Cancel a running scan",
                "scans",
                {
                    "200": _ok(
                        _ref("ScanDetail"),
                        "Cancelled: the upstream request is closed and a `cancelled` event "
                        "ends the log and every stream.",
                    ),
                    "401": _use("Unauthorized"),
                    "403": _use("Forbidden"),
                    "404": _use("ScanNotFound"),
                    "409": _error("The scan already ended (`conflict`)."),
                    "503": _use("StoreUnavailable"),
                },
                security=changes,
            ),
        },
        _SCAN + "/results": {
            "parameters": [_param("ScanId")],
            "get": _operation(
                "getResults",
                "Read a completed scan's results",
                "scans",
                {
                    "200": _ok(
                        _ref("Results"), "A page of the findings, and their severity summary."
                    ),
                    "400": _use("BadRequest"),
                    "401": _use("Unauthorized"),
                    "404": _use("ScanNotFound"),
                    "409": _error(
                        "The scan has not completed (`scan_not_ready`): still running (the "
                        "message gives its status), failed (with the reason) or cancelled."
                    ),
                    "503": _use("StoreUnavailable"),
                },
                description=(
                    "The findings come a page at a time: follow `next_cursor` with "
                    "`?cursor=` until it is null. `summary` and `total_findings` cover every "
                    "page. A scan keeps at most `findings.max_per_scan` findings "
                    f"({config.findings.max_per_scan}) of at most "
                    "`findings.max_bytes_per_scan` bytes in all "
                    f"({config.findings.max_bytes_per_scan}): the first ones; the scanner's "
                    "later findings are dropped, counted in `findings_dropped`, and "
                    "`truncated` is true."
                ),
                parameters=[_param("ResultsLimit"), _param("Cursor")],
            ),
        },
        _SCAN + "/stream": {
            "parameters": [_param("ScanId")],
            "get": _operation(
                "streamScan",
                "Watch a scan's events (Server-Sent Events)",
                "stream",
                {
                    "200": _text(
                        "text/event-stream", "The event stream; see the operation's description."
                    ),
                    "204": {
                        "description": (
                            "The client already holds the terminal event (`Last-Event-ID` is "
                            "the last id of a finished scan): nothing more will come."
                        )
                    },
                    "401": _use("Unauthorized"),
                    "404": _use("ScanNotFound"),
                    "429": _use("LimitExceeded"),
                    "503": _use("StoreUnavailable"),
                },
                description=_STREAM_DESCRIPTION
                + "\n\n429 when the caller already has `limits.max_streams_per_subject` "
                "streams open.",
                parameters=[_param("LastEventIdHeader"), _param("LastEventIdQuery")],
                security=[*api, {"streamTicket": []}],
            ),
        },
        _SCAN + "/stream-ticket": {
            "parameters": [_param("ScanId")],
            "post": _operation(
                "createStreamTicket",
                "Get a ticket that opens the scan's stream",
                "stream",
                {
                    "200": _ok(_ref("StreamTicket"), "The ticket and the stream URL with it."),
                    "401": _use("Unauthorized"),
                    "403": _use("Forbidden"),
                    "404": _use("ScanNotFound"),
                    "503": _use("StoreUnavailable"),
                },
                description=(
                    "For a native `EventSource`, which cannot send an `Authorization` header. "
                    "The ticket is bound to this scan, this subject and the stream route; it "
                    "lives for the scan's remaining lifetime (at least 60 s, at most "
                    "`auth.ticket_max_ttl_seconds`). No request body."
                ),
                security=changes,
            ),
        },
        _SESSION: {
            "post": _operation(
                "openSession",
                "Set the session cookie",
                "auth",
                {
                    "200": _ok(
                        _ref("Session"),
                        "The cookie is set: HttpOnly, path `/api/`, expiring with the token.",
                        {
                            "Set-Cookie": _header(
                                f"`{config.auth.cookie_name}=<the token>; HttpOnly; Path=/api/; "
                                "...`",
                                {"type": "string"},
                            )
                        },
                    ),
                    "401": _use("Unauthorized"),
                    "403": _use("Forbidden"),
                },
                description=(
                    "Puts the caller's bearer token in a cookie that the stream and the whole "
                    "API accept. Needs the `Authorization` header itself (a cookie alone is "
                    "401). No request body."
                ),
                security=[{"bearerAuth": []}],
            ),
            "delete": _operation(
                "closeSession",
                "Clear the session cookie",
                "auth",
                {
                    "200": _ok(
                        {"type": "null"},
                        "The cookie is cleared.",
                        {"Set-Cookie": _header("The cookie, expired.", {"type": "string"})},
                    )
                },
                description="Needs no credential.",
                security=public,
            ),
        },
        _DEV_TOKEN: {
            "post": _operation(
                "createDevToken",
                "Get a development token (dev mode only)",
                "development",
                {
                    "200": _ok(_ref("DevToken"), "A bearer token for the demo page."),
                    "400": _use("BadRequest"),
                    "401": _use("Unauthorized"),
                    "404": _error(
                        "Not in dev mode: the route answers as a missing one does (404 with a "
                        "credential, 401 without)."
                    ),
                    "408": _use("RequestTimeout"),
                    "413": _use("PayloadTooLarge"),
                    "415": _use("UnsupportedMediaType"),
                    "422": _use("ValidationError"),
                },
                description=(
                    "For the demo page at `/`. Signs a token for anyone who asks, so it works "
                    "only when `dev_mode` is true (`XPLOYT_DEV_MODE=1`), never in production; "
                    "without it the route answers exactly as a missing `/api/` route does. "
                    "The body is optional; without one the subject is `demo`. Other methods "
                    "are 405 in dev mode (404 otherwise)."
                ),
                request_body={
                    "required": False,
                    "content": {"application/json": {"schema": _ref("DevTokenRequest")}},
                },
                security=public,
            )
        },
        OPENAPI_PATH: {
            "get": _operation(
                "getOpenAPI",
                "This OpenAPI document",
                "documentation",
                {
                    "200": {
                        "description": "The OpenAPI 3.1 document (not wrapped in an envelope).",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
                security=public,
            )
        },
        DOCS_PATH: {
            "get": _operation(
                "getDocs",
                "This API's documentation, readable",
                "documentation",
                {"200": _text("text/html", "An HTML page that renders this document.")},
                security=public,
            )
        },
    }


def _helpers(config: Config) -> Helpers:
    return Helpers(
        ok=_ok,
        use=_use,
        error=_error,
        operation=_operation,
        header=_header,
        text=_text,
        api=_api_security(config),
        changes=_api_security(config, query=False),
    )


def _version() -> str:
    try:
        return metadata.version("xployt-gateway")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def build_openapi(config: Config, limits: RouteLimits) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway ``config`` describes, its routes bounded by
    ``limits``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Xployt scan gateway",
            "version": _version(),
            "summary": "Start security scans and watch their progress over Server-Sent Events.",
            "description": (
                "Every `/api/` route needs a credential (a bearer JWT, the session cookie or, "
                "where enabled, a query token) except the ones marked public here. Every JSON "
                "answer has one envelope, `{success, data, message, timestamp}`, and every "
                "error the same shape `{success: false, data: null, error, message, detail, "
                "timestamp}` (`components.schemas.Error`) with the matching status. A method "
                "a path does not have is 405 with `Allow`; a path that does not exist is 404 "
                "(401 first under `/api/` without a credential). Origins listed in "
                "`cors.allowed_origins` get `Access-Control-Allow-Origin` (their own) with "
                "credentials on every answer; CORS preflights (`OPTIONS` with "
                "`Access-Control-Request-Method`) are answered 204 before routing. Static files "
                "of the demo page are served under `/static/` and not described here."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "scans", "description": "Start, list, read and cancel scans."},
            {"name": "collections", "description": "Several scanners on one repository."},
            {"name": "stream", "description": "Watch a scan's events as they happen."},
            {"name": "auth", "description": "The session cookie, for browsers."},
            {"name": "operations", "description": "Probes and metrics (no token)."},
            {"name": "pages", "description": "HTML pages."},
            {"name": "development", "description": "Development conveniences."},
            {"name": "documentation", "description": "This document."},
        ],
        "security": _api_security(config),
        "paths": {**_paths(config), **collection_paths(config, _helpers(config))},
        "components": {
            "schemas": _schemas(config, limits),
            "responses": _responses(config),
            "parameters": {**_parameters(config, limits), **collection_parameters()},
            "securitySchemes": _security_schemes(config),
        },
    }
