"""The config's sections, one frozen msgspec Struct each: keys, types, defaults and bounds.

A bound the type can state (``Meta(gt=0)``, ``Meta(ge=0, le=65535)``) is declared here, and
``errors`` words its message from the declaration; what the types cannot state (one key against
another, a URL's scheme, a key file) is in ``checks``. ``Meta(extra={"why": ...})`` says why a
bound is what it is, in the message.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, field

from gateway.config.jwt_keys import HMAC_ALGORITHMS

__all__ = [
    "DEV_JWT_SECRET",
    "MAX_LEEWAY_SECONDS",
    "MAX_NUMBER_DIGITS",
    "AuthConfig",
    "CorsConfig",
    "DatabaseConfig",
    "FindingsConfig",
    "JWTConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MockConfig",
    "ReadinessConfig",
    "RedisConfig",
    "Section",
    "ServerConfig",
    "StreamConfig",
    "UpstreamConfig",
]

# The secret shipped in config.yaml; the gateway warns while it is in use.
DEV_JWT_SECRET: Final = "xployt-dev-secret-change-me-0123456789"

_FINITE: Final = sys.float_info.max  # YAML's .inf and .nan are refused where a number is read
# Clock skew worth allowing on exp is seconds, at most minutes; more would outlive revocation.
MAX_LEEWAY_SECONDS: Final = 300
# Python's int() refuses longer digit strings (sys.get_int_max_str_digits()).
MAX_NUMBER_DIGITS: Final = 4300

Number = Annotated[float, Meta(ge=-_FINITE, le=_FINITE)]
Positive = Annotated[int, Meta(gt=0)]
PositiveNumber = Annotated[float, Meta(gt=0, le=_FINITE)]
NonNegative = Annotated[int, Meta(ge=0)]
NonNegativeNumber = Annotated[float, Meta(ge=0, le=_FINITE)]
# A cut text field ends with the truncation marker, so it must have room for more than that.
_ROOM_FOR_THE_MARK = Meta(ge=64, extra={"why": "room for the truncation mark and more"})


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A config section: immutable, and a key it does not declare is an error."""


class ServerConfig(Section, frozen=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, extra={"why": "a TCP port"})] = 8000
    max_body_bytes: Positive = 65536
    # A request body not received whole within this is answered 408 and its connection closed.
    body_read_timeout_seconds: PositiveNumber = 15
    # An idle keep-alive connection, or one whose request line and headers have not all
    # arrived, is closed this long after it opened (or after its last response).
    keepalive_timeout_seconds: PositiveNumber = 75
    shutdown_grace_seconds: PositiveNumber = 10
    # Connections the kernel may hold accepted but not yet taken by the gateway: thousands of
    # streams reconnecting at once overflow a short queue, and every dropped SYN costs its
    # client a backoff of 1, 3, 7, 15... s. The kernel caps it at net.core.somaxconn.
    backlog: Annotated[
        int, Meta(ge=1, le=65535, extra={"why": "connections waiting to be accepted"})
    ] = 4096
    # SIGTERM: running scans may end on their own for this long before they are interrupted;
    # the default, upstream.scan_timeout_seconds' own, lets any scan that may run finish.
    drain_seconds: NonNegativeNumber = 3600
    uvloop: bool = True  # used when installed (the "fast" extra)
    # Take the scheme from X-Forwarded-Proto (the cookie CSRF check compares origins): only
    # behind a proxy that ends TLS and sets it, never where clients reach the gateway directly.
    trust_forwarded_proto: bool = False


class AuthConfig(Section, frozen=True):
    query_tokens: bool = True  # ?token= / ?access_token=, as the Xployt frontend sends
    cookie_name: str = "xployt_session"
    cookie_secure: bool = True
    cookie_samesite: Literal["Strict", "Lax", "None"] = "Lax"
    ticket_ttl_seconds: PositiveNumber | None = None  # None: the scan's remaining lifetime
    ticket_max_ttl_seconds: PositiveNumber = 3600
    ticket_secret: str | None = None  # None: derived from jwt.secret
    # The token claims that carry permissions (scans:read, ...): a space-separated string or a
    # list of strings each. A token with none of them has its owner's rights over its own
    # scans (what the Xployt server's tokens get), unless permissions are required.
    permission_claims: tuple[str, ...] = ("scope",)
    require_permissions: bool = False


class CorsConfig(Section, frozen=True):
    allowed_origins: tuple[str, ...] = ()
    max_age_seconds: int = 600


class LimitsConfig(Section, frozen=True):
    """What subjects may run and hold open at once, and how fast they may start scans: counted
    in the process with SQLite, across every replica with Redis (see ``engine.limits``)."""

    max_running_scans: Positive = 100
    max_running_scans_per_subject: Positive = 10
    max_streams: Positive = 10_000  # open streams in all (each holds a connection)
    max_streams_per_subject: Positive = 20
    retry_after_seconds: Positive = 5  # Retry-After on a refusal for running scans or streams
    # A token bucket of scan starts per subject: it refills at this rate and holds at most
    # the burst; a start that finds it empty is 429 with Retry-After until it holds one.
    scan_starts_per_second: Annotated[
        float, Meta(ge=0.001, le=1_000_000, extra={"why": "a start at least every 1000 s"})
    ] = 1.0
    scan_start_burst: Annotated[int, Meta(ge=1, le=1_000_000)] = 20
    # Events one scan's log holds at most: past it the scan fails (the last place is kept for
    # the terminal event), so a scanner cannot fill the disk with progress.
    max_events_per_scan: Annotated[
        int, Meta(ge=3, extra={"why": "pending, connecting and the terminal event"})
    ] = 20_000
    # Reports (SARIF, or against a baseline) built at once: each holds every finding of what it
    # reports, seconds of CPU and 100+ MiB at the findings' bounds. Past it, 429.
    max_report_builds: Positive = 2


class FindingsConfig(Section, frozen=True):
    """Bounds on what one scan's findings may hold, and the pages ``/results`` reads."""

    max_per_scan: Positive = 10_000  # findings kept per scan; later ones are dropped and counted
    max_bytes_per_scan: Positive = 32 * 1024 * 1024  # their total size, as stored (UTF-8 JSON)
    max_field_chars: Annotated[int, _ROOM_FOR_THE_MARK] = 16_384  # each text field; cut past it
    # A finding's ``metadata`` as stored (UTF-8 JSON), and its nesting levels (deeper: cut).
    max_metadata_bytes: Annotated[int, _ROOM_FOR_THE_MARK] = 16_384
    max_metadata_depth: Positive = 8
    # Findings per ``/results`` page without ``?limit=``: the whole of a typical scan, for
    # clients that read one page; max_page_bytes keeps any page small however big they are.
    page_size: Positive = 1000
    max_page_size: Positive = 1000  # the largest ``?limit=``
    max_page_bytes: Positive = 4 * 1024 * 1024  # a page ends before the finding that passes this


class DatabaseConfig(Section, frozen=True):
    path: str = "./var/gateway.db"


class RedisConfig(Section, frozen=True):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "xployt:"
    retention_seconds: PositiveNumber = 24 * 3600  # a finished scan's event log
    record_retention_seconds: Number = 30 * 24 * 3600  # its record and results
    lease_seconds: PositiveNumber = 15  # a replica that stops renewing loses its running scans
    sweep_interval_seconds: PositiveNumber = 5  # how often each replica looks for lost scans
    store_retry_seconds: PositiveNumber = 30  # how long an append waits for Redis to come back


class JWTConfig(Section, frozen=True):
    secret: str = DEV_JWT_SECRET
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: Annotated[float, Meta(ge=0, le=MAX_LEEWAY_SECONDS)] = 0
    public_key: str | None = None  # PEM, for RS*/ES*/PS*/EdDSA algorithms
    # Or an identity provider's key set (JWKS): its URL, or the issuer whose discovery
    # document (/.well-known/openid-configuration) names it. Fetched in the background.
    jwks_url: str | None = None
    oidc_issuer: str | None = None
    # How long a key set is used without asking again: the answer's Cache-Control max-age
    # within these bounds, else jwks_cache_seconds.
    jwks_cache_seconds: PositiveNumber = 300
    jwks_max_cache_seconds: PositiveNumber = 86400
    # The least time between two fetches, whatever asks (a token with an unknown kid, the
    # cache running out, a retry): a flood of forged kids costs the provider this at most.
    jwks_min_interval_seconds: PositiveNumber = 10
    jwks_timeout_seconds: PositiveNumber = 5  # one fetch, redirects included
    jwks_max_bytes: Positive = 256 * 1024  # one answer (discovery document or key set)
    jwks_max_keys: Annotated[int, Meta(ge=1, le=1000, extra={"why": "keys in one set"})] = 50

    @property
    def key_set_source(self) -> str | None:
        """The config key naming the key set tokens are checked with, if any."""
        if self.jwks_url is not None:
            return "jwt.jwks_url"
        if self.oidc_issuer is not None:
            return "jwt.oidc_issuer"
        return None

    @property
    def expected_issuer(self) -> str | None:
        """The ``iss`` tokens must carry: ``issuer``, else the OpenID provider's."""
        return self.issuer if self.issuer is not None else self.oidc_issuer

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret == DEV_JWT_SECRET and set(self.algorithms) <= HMAC_ALGORITHMS


class UpstreamConfig(Section, frozen=True):
    connect_timeout_seconds: PositiveNumber = 10
    idle_timeout_seconds: PositiveNumber = 60
    scan_timeout_seconds: PositiveNumber = 3600
    max_line_length: Positive = 1024 * 1024
    max_event_bytes: Positive = 1024 * 1024
    max_body_bytes: Positive = 16 * 1024 * 1024
    max_json_depth: Positive = 64
    max_number_digits: Annotated[
        int, Meta(gt=0, le=MAX_NUMBER_DIGITS, extra={"why": "the longest number Python reads"})
    ] = 100
    # JSON values (objects, arrays, strings, numbers...) in one message: what bounds the memory
    # a message costs once parsed, as bytes alone do not (a megabyte of "{}," is 300k objects).
    max_json_values: Positive = 200_000
    # Malformed messages a scan may skip before it fails: a scanner cannot burn CPU and logs.
    max_malformed_messages: Positive = 1000
    connect_retries: NonNegative = 3
    retry_backoff_seconds: PositiveNumber = 0.5
    retry_backoff_max_seconds: PositiveNumber = 10


class StreamConfig(Section, frozen=True):
    heartbeat_seconds: PositiveNumber = 15
    subscriber_buffer: Positive = 1000
    send_timeout_seconds: PositiveNumber = 30
    # Events are written straight to a client while its socket buffer holds less than this;
    # above it they queue (up to subscriber_buffer) for the stream's own task to send.
    write_high_water_bytes: Positive = 64 * 1024
    retry_ms: Positive = 3000  # the reconnection delay suggested to EventSource
    # A stream told to reconnect elsewhere (a drain, a shutdown) gets retry_ms plus a random
    # share of this, so that its clients do not all come back in the same instant.
    reconnect_spread_ms: Annotated[
        int, Meta(ge=0, le=3_600_000, extra={"why": "at most an hour"})
    ] = 10_000


class MockConfig(Section, frozen=True):
    step_delay_seconds: NonNegativeNumber = 0.5
    steps: Positive = 8


class LoggingConfig(Section, frozen=True):
    level: str = "INFO"
    json: bool = False  # one JSON object per line, with request and scan ids


class ReadinessConfig(Section, frozen=True):
    check_scanners: bool = True
    timeout_seconds: Number = 2
    # Health URL per scanner; a scanner not listed is checked at <its origin>/healthz.
    scanner_health_urls: Mapping[str, str] = field(default_factory=dict)


class MetricsConfig(Section, frozen=True):
    enabled: bool = True
    token: str | None = None  # when set, /metrics needs "Authorization: Bearer <token>"
