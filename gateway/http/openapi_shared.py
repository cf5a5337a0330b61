"""The parts of the OpenAPI document that every operation shares, built from the config.

The error responses, one per status an operation names in its ``errors`` (``operations``); the
security schemes, and which of them an operation's ``auth`` accepts; and the schemas whose
bounds the config sets (a finding's). ``http.openapi`` puts them together with the paths.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.config import Config
from gateway.domain.models import SEVERITIES
from gateway.http.operations import Auth
from gateway.scanners.findings import TRUNCATED

__all__ = [
    "ERROR_RESPONSES",
    "api_security",
    "error",
    "header",
    "ref",
    "responses",
    "schemas",
    "security",
    "security_schemes",
]

Schema = dict[str, Any]

# The shared response (``components.responses``) for each error status an operation names.
ERROR_RESPONSES: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "ScanNotFound",
    408: "RequestTimeout",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationError",
    429: "LimitExceeded",
    503: "StoreUnavailable",
}


def ref(name: str) -> Schema:
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


def schemas(config: Config) -> dict[str, Schema]:
    """The schemas the document adds to the generated ones."""
    return {
        "ScanList": {
            "type": "array",
            "items": ref("Scan"),
            "description": "the caller's scans, newest first",
        },
        "Vulnerability": _vulnerability(config, config.findings.max_field_chars),
    }


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


def header(description: str, schema: Schema) -> Schema:
    return {"description": description, "required": True, "schema": schema}


def error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


def responses(config: Config) -> dict[str, Schema]:
    """The error responses operations share, named in ``ERROR_RESPONSES``."""
    retry_after = config.limits.retry_after_seconds
    return {
        "BadRequest": error(
            "A query parameter or the body is malformed (`bad_request`, `invalid_json`, "
            "`unknown_scanner`)."
        ),
        "Unauthorized": error(
            "No credential, or one that is invalid or expired (`unauthorized`).",
            {
                "WWW-Authenticate": header(
                    'The challenge: `Bearer realm="xployt"`, with `error="invalid_token"` when '
                    "a credential was given (RFC 6750).",
                    {"type": "string"},
                )
            },
        ),
        "Forbidden": error(
            "A cookie-authenticated `POST`/`DELETE` without `Sec-Fetch-Site: same-origin` and "
            "without an `Origin` that is the gateway's own (scheme, host and port) or in "
            "`cors.allowed_origins` (`forbidden`)."
        ),
        "ScanNotFound": error(
            "No such scan, or one of another subject: both answer the same (`scan_not_found`)."
        ),
        "RequestTimeout": error(
            "The body did not arrive whole within `server.body_read_timeout_seconds` "
            f"({config.server.body_read_timeout_seconds:g} s); the connection is closed "
            "(`request_timeout`)."
        ),
        "PayloadTooLarge": error(
            f"The body is over `server.max_body_bytes` ({config.server.max_body_bytes} bytes) "
            "(`payload_too_large`)."
        ),
        "UnsupportedMediaType": error(
            "`Content-Type` is not `application/json` (nor `+json`) (`unsupported_media_type`)."
        ),
        "ValidationError": error(
            "A field is missing, mistyped, empty or unknown (`validation_error`); the message "
            "names it."
        ),
        "LimitExceeded": error(
            "A limit is reached (`limit_exceeded`); try again after `Retry-After` seconds. "
            "With Redis the limits count every replica's scans and streams.",
            {
                "Retry-After": header(
                    "Seconds to wait: `limits.retry_after_seconds` "
                    f"({retry_after}) for running scans and open streams; for the rate of "
                    "starts, until the caller's bucket holds one again (at least 1).",
                    {"type": "integer", "minimum": 1},
                )
            },
        ),
        "StoreUnavailable": error("The store does not answer (`store_unavailable`)."),
    }


def security_schemes(config: Config) -> dict[str, Schema]:
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


def api_security(config: Config, *, query: bool = True) -> list[dict[str, list[str]]]:
    """Any one of these credentials opens a protected route (query tokens: reads only)."""
    names = ["bearerAuth", "sessionCookie"]
    if query and config.auth.query_tokens:
        names += [_query_scheme("token"), _query_scheme("access_token")]
    return [{name: []} for name in names]


def security(config: Config, auth: Auth, method: str) -> list[dict[str, list[str]]] | None:
    """The credentials an operation accepts; None: the document's default (``api_security``)."""
    if auth == "public":
        return []
    if auth == "bearer":
        return [{"bearerAuth": []}]
    if auth == "metrics":
        return [{}, {"metricsToken": []}]
    if auth == "ticket":
        return [*api_security(config), {"streamTicket": []}]
    # A URL-borne token never changes anything: reads only.
    return None if method == "GET" else api_security(config, query=False)
