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
from gateway.identity.principal import Permission
from gateway.scanners.findings import TRUNCATED
from gateway.scanners.lines import MAX_LINE_ITEMS, MAX_POSITION, MAX_RELATED_LINES

__all__ = [
    "ERROR_RESPONSES",
    "PERMISSIONS_TEXT",
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
            "related_lines": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": MAX_POSITION},
                "minItems": 1,
                "maxItems": MAX_RELATED_LINES,
                "uniqueItems": True,
                "description": (
                    "only on a finding whose scanner gave `line` as a list (`[12, 40]`, "
                    '`["12", "40-42"]`): its other lines, ascending, at most '
                    f"{MAX_RELATED_LINES}; `line` is the list's first. SARIF gives them as "
                    "`relatedLocations`."
                ),
            },
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
                    "and its values nested too deep become that marker; `related_lines` "
                    f"keeps {MAX_RELATED_LINES} of the lines the scanner listed (from its "
                    f"first {MAX_LINE_ITEMS} items)."
                ),
            },
            "fingerprint": {
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "only with `?baseline=`: what identifies the finding across runs",
            },
            "baseline_state": {
                "type": "string",
                "enum": ["new", "unchanged", "absent"],
                "description": (
                    "only with `?baseline=`: `new` or `unchanged` against the baseline; "
                    "`absent` on the baseline's fixed findings (`fixed`)"
                ),
            },
        },
        optional=("related_lines", "truncated_fields", "fingerprint", "baseline_state"),
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
            "The credential lacks the permission the operation needs (`forbidden`, with "
            '`WWW-Authenticate: Bearer error="insufficient_scope", scope="<permission>"`); or '
            "a cookie-authenticated `POST`/`DELETE` without `Sec-Fetch-Site: same-origin` and "
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
        "StoreUnavailable": error(
            "The store does not answer (`store_unavailable`); or, with an identity provider's "
            "key set, it is not loaded yet, so no token can be checked (`keys_unavailable`, "
            "with `Retry-After`)."
        ),
    }


def _bearer_description(config: Config) -> str:
    jwt = config.jwt
    algorithms = ", ".join(jwt.algorithms)
    if jwt.oidc_issuer is not None:
        signed = (
            f"signed ({algorithms}) with a key of the OpenID provider `{jwt.oidc_issuer}` "
            "(`jwt.oidc_issuer`; see the `openIdConnect` scheme), which it names by `kid`"
        )
    elif jwt.jwks_url is not None:
        signed = (
            f"signed ({algorithms}) with a key of the identity provider's key set "
            "(`jwt.jwks_url`), which it names by `kid`"
        )
    elif jwt.public_key is not None:
        signed = f"signed ({algorithms}) with the key whose public half is `jwt.public_key`"
    else:
        signed = f"signed ({algorithms}) with the shared secret `jwt.secret`"
    return (
        f"`Authorization: Bearer <JWT>` with `sub` and `exp`, {signed}. "
        f"{PERMISSIONS_TEXT.format(claims=', '.join(config.auth.permission_claims))}"
    )


# What every security requirement's role names mean.
PERMISSIONS_TEXT: Final = (
    "What a token may do comes from its permission claims (`auth.permission_claims`: {claims}; "
    "a space-separated string or a list of strings): `scans:read` (read, list and watch its "
    "own scans), `scans:write` (start scans), `scans:cancel` (cancel its own scans), "
    "`scans:admin` (read, list with `?subject=` and cancel any subject's scans). A token "
    "without any of these claims may do all but `scans:admin` on its own scans, unless "
    "`auth.require_permissions`. Each operation's security requirements name the permission "
    "it needs; without it the answer is 403 (404 for a scan the caller cannot see at all)."
)


def security_schemes(config: Config) -> dict[str, Schema]:
    schemes: dict[str, Schema] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": _bearer_description(config),
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
    if config.jwt.oidc_issuer is not None:
        schemes["openIdConnect"] = {
            "type": "openIdConnect",
            "openIdConnectUrl": config.jwt.oidc_issuer.rstrip("/")
            + "/.well-known/openid-configuration",
            "description": (
                "An access token from the OpenID provider, sent as `Authorization: Bearer` "
                "(the same token as `bearerAuth`)."
            ),
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


def api_security(
    config: Config, *, query: bool = True, roles: list[str] | None = None
) -> list[dict[str, list[str]]]:
    """Any one of these credentials opens a protected route (query tokens: reads only), with
    the permission it needs as the requirements' role names."""
    names = ["bearerAuth", "sessionCookie"]
    if config.jwt.oidc_issuer is not None:
        names.insert(1, "openIdConnect")
    if query and config.auth.query_tokens:
        names += [_query_scheme("token"), _query_scheme("access_token")]
    return [{name: list(roles or [])} for name in names]


def security(
    config: Config, auth: Auth, method: str, permission: Permission | str | None = None
) -> list[dict[str, list[str]]] | None:
    """The credentials an operation accepts, each with the permission it needs; None: the
    document's default (``api_security``)."""
    if auth == "public":
        return []
    if auth == "metrics":
        return [{}, {"metricsToken": []}]
    roles = [permission.value] if isinstance(permission, Permission) else []
    if auth == "bearer":
        return [{"bearerAuth": roles}]
    if auth == "ticket":  # a ticket carries scans:read on its one scan
        return [*api_security(config, roles=roles), {"streamTicket": roles}]
    # A URL-borne token never changes anything: reads only.
    return api_security(config, query=method == "GET", roles=roles)
