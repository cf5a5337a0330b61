"""The gateway's error hierarchy and the status code each maps to.

    GatewayError                      500 internal_error
    ├── BadRequest                    400 bad_request
    │   ├── InvalidJSON               400 invalid_json
    │   └── UnknownScanner            400 unknown_scanner
    ├── Unauthorized                  401 unauthorized (adds WWW-Authenticate: Bearer)
    ├── Forbidden                     403 forbidden
    ├── NotFound                      404 not_found
    │   └── ScanNotFound              404 scan_not_found
    ├── MethodNotAllowed              405 method_not_allowed
    ├── NotAcceptable                 406 not_acceptable
    ├── RequestTimeout                408 request_timeout (closes the connection)
    ├── Conflict                      409 conflict
    │   ├── ScanNotReady              409 scan_not_ready
    │   └── ScanExists                409 scan_exists
    ├── PayloadTooLarge               413 payload_too_large
    ├── UnsupportedMediaType          415 unsupported_media_type
    ├── ValidationError               422 validation_error
    ├── LimitExceeded                 429 limit_exceeded
    ├── StoreUnavailable              503 store_unavailable
    ├── KeysUnavailable               503 keys_unavailable (adds Retry-After)
    └── Draining                      503 draining (adds Retry-After)

The stores raise ``ScanNotFound`` and ``ScanExists`` too, whichever backend they use, so no
backend's own exceptions cross the store interface.

Upstream faults are not HTTP errors: they end a scan ``failed`` (see ``upstream``), and
``UpstreamFault`` names each kind for logs and metrics.

``Draining`` is this process refusing new work while it stops (a drain): the same request
succeeds on another replica, or here once it is back.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BadRequest",
    "Conflict",
    "Draining",
    "Forbidden",
    "GatewayError",
    "InvalidJSON",
    "KeysUnavailable",
    "LimitExceeded",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "ScanExists",
    "ScanNotFound",
    "ScanNotReady",
    "StoreUnavailable",
    "Unauthorized",
    "UnknownScanner",
    "UnsupportedMediaType",
    "UpstreamFault",
    "ValidationError",
]


class GatewayError(Exception):
    status = 500
    code = "internal_error"
    close_connection = False  # whether the connection ends with this answer

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or message
        self.headers: dict[str, str] = {}


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class UnknownScanner(BadRequest):
    code = "unknown_scanner"


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, detail: str | None = None, token_given: bool) -> None:
        super().__init__(message, detail=detail)
        # RFC 6750 section 3: no error code when the request carried no credentials.
        challenge = 'Bearer realm="xployt"'
        if token_given:
            challenge += ', error="invalid_token"'
        self.headers["WWW-Authenticate"] = challenge


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class ScanNotFound(NotFound):
    code = "scan_not_found"

    def __init__(self, scan_id: str) -> None:
        super().__init__(f"scan {scan_id!r} not found")


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"


class NotAcceptable(GatewayError):
    """The client's ``Accept`` names no media type the route can answer with."""

    status = 406
    code = "not_acceptable"


class RequestTimeout(GatewayError):
    """The client did not send its request body in time; the connection is not reused."""

    status = 408
    code = "request_timeout"
    close_connection = True


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class ScanNotReady(Conflict):
    code = "scan_not_ready"


class ScanExists(Conflict):
    code = "scan_exists"

    def __init__(self, scan_id: str) -> None:
        super().__init__(f"scan {scan_id!r} already exists")


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class ValidationError(GatewayError):
    status = 422
    code = "validation_error"


class LimitExceeded(GatewayError):
    status = 429
    code = "limit_exceeded"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)


class StoreUnavailable(GatewayError):
    status = 503
    code = "store_unavailable"


class KeysUnavailable(GatewayError):
    """The identity provider's key set is not loaded yet, so no token can be checked."""

    status = 503
    code = "keys_unavailable"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after)


class Draining(GatewayError):
    """This process is draining before it stops: it starts nothing new."""

    status = 503
    code = "draining"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after)


class UpstreamFault(StrEnum):
    """Why a scanner could not be used: the ``kind`` label of ``xployt_upstream_errors_total``."""

    CONNECT = "connect"
    HTTP = "http"
    HTTP_STATUS = "http_status"
    REDIRECT = "redirect"
    PROTOCOL = "protocol"
    CONTENT_TYPE = "content_type"
    CONTENT_ENCODING = "content_encoding"
    DROPPED = "dropped"
    ENDED = "ended"
    IDLE_TIMEOUT = "idle_timeout"
    LINE_TOO_LONG = "line_too_long"
    EVENT_TOO_LARGE = "event_too_large"
    TOO_LARGE = "too_large"
    MALFORMED_BODY = "malformed_body"
    TOO_MANY_MALFORMED = "too_many_malformed"
    SCAN_TIMEOUT = "scan_timeout"
    TOO_MANY_EVENTS = "too_many_events"
