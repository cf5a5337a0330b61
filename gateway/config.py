"""Configuration: frozen dataclasses built from a dict, loaded from YAML plus environment."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import yaml

from .jwt_keys import HMAC_ALGORITHMS, HMAC_MIN_SECRET_BYTES, verification_key

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEV_JWT_SECRET",
    "Config",
    "ConfigError",
    "FindingsConfig",
    "JWTConfig",
    "config_from_dict",
    "load_config",
]

# The embedded defaults, shipped in the package (in the repository, a link to the top-level
# config.yaml: one file, which the wheel carries as a copy).
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "config.yaml"
# The secret shipped in config.yaml; the gateway warns while it is in use.
DEV_JWT_SECRET = "xployt-dev-secret-change-me-0123456789"

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 65536
    # A request body not received whole within this is answered 408 and its connection closed.
    body_read_timeout_seconds: float = 15
    # An idle keep-alive connection, or one whose request line and headers have not all
    # arrived, is closed this long after it opened (or after its last response).
    keepalive_timeout_seconds: float = 75
    shutdown_grace_seconds: float = 10
    uvloop: bool = True  # used when installed (the "fast" extra)
    # Take the scheme from X-Forwarded-Proto (the cookie CSRF check compares origins): only
    # behind a proxy that ends TLS and sets it, never where clients reach the gateway directly.
    trust_forwarded_proto: bool = False


@dataclass(frozen=True, slots=True)
class AuthConfig:
    query_tokens: bool = True  # ?token= / ?access_token=, as the Xployt frontend sends
    cookie_name: str = "xployt_session"
    cookie_secure: bool = True
    cookie_samesite: str = "Lax"
    ticket_ttl_seconds: float | None = None  # None: the scan's remaining lifetime
    ticket_max_ttl_seconds: float = 3600
    ticket_secret: str | None = None  # None: derived from jwt.secret


@dataclass(frozen=True, slots=True)
class CorsConfig:
    allowed_origins: tuple[str, ...] = ()
    max_age_seconds: int = 600


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_running_scans: int = 100
    max_running_scans_per_subject: int = 10
    max_streams_per_subject: int = 20
    retry_after_seconds: int = 5
    # Events one scan's log holds at most: past it the scan fails (the last place is kept for
    # the terminal event), so a scanner cannot fill the disk with progress.
    max_events_per_scan: int = 20_000


@dataclass(frozen=True, slots=True)
class FindingsConfig:
    """Bounds on what one scan's findings may hold, and the pages ``/results`` reads."""

    max_per_scan: int = 10_000  # findings kept per scan; later ones are dropped and counted
    max_bytes_per_scan: int = 32 * 1024 * 1024  # their total size, as stored (UTF-8 JSON)
    max_field_chars: int = 16_384  # each text field of a finding; longer ones are cut
    max_metadata_bytes: int = 16_384  # a finding's ``metadata`` as stored (UTF-8 JSON)
    max_metadata_depth: int = 8  # nesting levels of ``metadata``; deeper values are cut
    # Findings per ``/results`` page without ``?limit=``: the whole of a typical scan, for
    # clients that read one page; max_page_bytes keeps any page small however big they are.
    page_size: int = 1000
    max_page_size: int = 1000  # the largest ``?limit=``
    max_page_bytes: int = 4 * 1024 * 1024  # a page ends before the finding that passes this


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    path: str = "./var/gateway.db"


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "xployt:"
    retention_seconds: float = 24 * 3600  # a finished scan's event log
    record_retention_seconds: float = 30 * 24 * 3600  # its record and results
    lease_seconds: float = 15  # a replica that stops renewing loses its running scans
    sweep_interval_seconds: float = 5  # how often each replica looks for lost scans
    store_retry_seconds: float = 30  # how long an append waits for Redis to come back


@dataclass(frozen=True, slots=True)
class JWTConfig:
    secret: str = DEV_JWT_SECRET
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 0
    public_key: str | None = None  # PEM, for RS*/ES*/PS*/EdDSA algorithms

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret == DEV_JWT_SECRET and set(self.algorithms) <= HMAC_ALGORITHMS


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    connect_timeout_seconds: float = 10
    idle_timeout_seconds: float = 60
    scan_timeout_seconds: float = 3600
    max_line_length: int = 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    max_json_depth: int = 64
    max_number_digits: int = 100
    # JSON values (objects, arrays, strings, numbers...) in one message: what bounds the memory
    # a message costs once parsed, as bytes alone do not (a megabyte of "{}," is 300k objects).
    max_json_values: int = 200_000
    # Malformed messages a scan may skip before it fails: a scanner cannot burn CPU and logs.
    max_malformed_messages: int = 1000
    connect_retries: int = 3
    retry_backoff_seconds: float = 0.5
    retry_backoff_max_seconds: float = 10


@dataclass(frozen=True, slots=True)
class StreamConfig:
    heartbeat_seconds: float = 15
    subscriber_buffer: int = 1000
    send_timeout_seconds: float = 30
    # Events are written straight to a client while its socket buffer holds less than this;
    # above it they queue (up to subscriber_buffer) for the stream's own task to send.
    write_high_water_bytes: int = 64 * 1024
    retry_ms: int = 3000  # the reconnection delay suggested to EventSource


@dataclass(frozen=True, slots=True)
class MockConfig:
    step_delay_seconds: float = 0.5
    steps: int = 8


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    json: bool = False  # one JSON object per line, with request and scan ids


@dataclass(frozen=True, slots=True)
class ReadinessConfig:
    check_scanners: bool = True
    timeout_seconds: float = 2
    # Health URL per scanner; a scanner not listed is checked at <its origin>/healthz.
    scanner_health_urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    token: str | None = None  # when set, /metrics needs "Authorization: Bearer <token>"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    backend: str = "sqlite"  # or "redis": several replicas share one Redis
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    jwt: JWTConfig = field(default_factory=JWTConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    cors: CorsConfig = field(default_factory=CorsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    findings: FindingsConfig = field(default_factory=FindingsConfig)
    scanners: Mapping[str, str] = field(default_factory=dict)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    mock: MockConfig = field(default_factory=MockConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    readiness: ReadinessConfig = field(default_factory=ReadinessConfig)
    # Development conveniences (the demo page's token endpoint); never in production.
    dev_mode: bool = False
    # dev_mode lets anyone who reaches the gateway mint a token for any subject, so it is
    # refused on an address other than loopback unless this says so explicitly.
    dev_mode_allow_remote: bool = False

    def __post_init__(self) -> None:
        _validate(self)


_T = TypeVar("_T")
BACKENDS = ("sqlite", "redis")


def _build(cls: type[_T], data: Any, where: str) -> _T:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(map(str, unknown))}")
    values = {
        name: _coerce(hints[name], value, f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    options = get_args(hint) if get_origin(hint) in (Union, UnionType) else ()
    if type(None) in options:  # an optional value
        inner = [option for option in options if option is not type(None)]
        return None if value is None else _coerce(inner[0], value, key)
    if is_dataclass(hint):
        return _build(hint, value, key)  # type: ignore[arg-type]
    if get_origin(hint) is Mapping:
        return _str_mapping(value, key)
    if get_origin(hint) is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings")
        return tuple(value)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        if hint is int and not float(value).is_integer():
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return hint(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _str_mapping(value: Any, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{key}: expected a mapping of names to URLs")
    return dict(value)


# Clock skew worth allowing on exp is seconds, at most minutes; more would outlive revocation.
MAX_LEEWAY_SECONDS = 300
# Python's int() refuses longer digit strings (sys.get_int_max_str_digits()).
MAX_NUMBER_DIGITS = 4300


def _validate(config: Config) -> None:
    if not 0 <= config.server.port < 65536:
        raise ConfigError(f"server.port: {config.server.port} is not a port")
    if config.server.host != config.server.host.strip():
        raise ConfigError(f"server.host: {config.server.host!r} has spaces around it")
    if not 0 <= config.jwt.leeway_seconds <= MAX_LEEWAY_SECONDS:
        raise ConfigError(f"jwt.leeway_seconds: must be between 0 and {MAX_LEEWAY_SECONDS}")
    if config.upstream.max_number_digits > MAX_NUMBER_DIGITS:
        raise ConfigError(
            f"upstream.max_number_digits: must be at most {MAX_NUMBER_DIGITS}, the longest "
            "number Python reads"
        )
    for name, url in config.scanners.items():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"scanners.{name}: {url!r} is not an http(s) URL")
    _validate_jwt(config.jwt)
    if config.auth.cookie_samesite not in ("Strict", "Lax", "None"):
        raise ConfigError("auth.cookie_samesite: must be Strict, Lax or None")
    if config.auth.cookie_samesite == "None" and not config.auth.cookie_secure:
        raise ConfigError("auth.cookie_samesite: None needs auth.cookie_secure: true")
    if config.auth.ticket_secret is not None and config.auth.ticket_secret == config.jwt.secret:
        raise ConfigError("auth.ticket_secret: must differ from jwt.secret")
    ticket_bytes = HMAC_MIN_SECRET_BYTES["HS256"]  # stream tickets are HS256
    ticket_secret = config.auth.ticket_secret
    if ticket_secret is not None and len(ticket_secret.encode()) < ticket_bytes:
        raise ConfigError(f"auth.ticket_secret: must be at least {ticket_bytes} bytes")
    for origin in config.cors.allowed_origins:
        parts = urlsplit(origin)
        if origin == "*" or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"cors.allowed_origins: {origin!r} is not an origin like https://app.example "
                "('*' is never allowed: CORS here always allows credentials)"
            )
        if parts.path or parts.query:
            raise ConfigError(f"cors.allowed_origins: {origin!r} must not have a path")
    positive = {
        "stream.heartbeat_seconds": config.stream.heartbeat_seconds,
        "stream.subscriber_buffer": config.stream.subscriber_buffer,
        "stream.send_timeout_seconds": config.stream.send_timeout_seconds,
        "upstream.idle_timeout_seconds": config.upstream.idle_timeout_seconds,
        "upstream.scan_timeout_seconds": config.upstream.scan_timeout_seconds,
        "upstream.connect_timeout_seconds": config.upstream.connect_timeout_seconds,
        "upstream.max_line_length": config.upstream.max_line_length,
        "upstream.max_event_bytes": config.upstream.max_event_bytes,
        "upstream.max_body_bytes": config.upstream.max_body_bytes,
        "upstream.max_json_depth": config.upstream.max_json_depth,
        "upstream.max_number_digits": config.upstream.max_number_digits,
        "upstream.max_json_values": config.upstream.max_json_values,
        "upstream.max_malformed_messages": config.upstream.max_malformed_messages,
        "server.max_body_bytes": config.server.max_body_bytes,
        "server.body_read_timeout_seconds": config.server.body_read_timeout_seconds,
        "server.keepalive_timeout_seconds": config.server.keepalive_timeout_seconds,
        "mock.steps": config.mock.steps,
        "server.shutdown_grace_seconds": config.server.shutdown_grace_seconds,
        "auth.ticket_max_ttl_seconds": config.auth.ticket_max_ttl_seconds,
        "limits.max_running_scans": config.limits.max_running_scans,
        "limits.max_running_scans_per_subject": config.limits.max_running_scans_per_subject,
        "limits.max_streams_per_subject": config.limits.max_streams_per_subject,
        "limits.retry_after_seconds": config.limits.retry_after_seconds,
        "upstream.retry_backoff_seconds": config.upstream.retry_backoff_seconds,
        "upstream.retry_backoff_max_seconds": config.upstream.retry_backoff_max_seconds,
        "stream.retry_ms": config.stream.retry_ms,
        "stream.write_high_water_bytes": config.stream.write_high_water_bytes,
        "redis.retention_seconds": config.redis.retention_seconds,
        "redis.lease_seconds": config.redis.lease_seconds,
        "redis.sweep_interval_seconds": config.redis.sweep_interval_seconds,
        "redis.store_retry_seconds": config.redis.store_retry_seconds,
    }
    if config.upstream.connect_retries < 0:
        raise ConfigError("upstream.connect_retries: must not be negative")
    if config.auth.ticket_ttl_seconds is not None and config.auth.ticket_ttl_seconds <= 0:
        raise ConfigError("auth.ticket_ttl_seconds: must be greater than 0")
    for key, number in positive.items():
        if number <= 0:
            raise ConfigError(f"{key}: must be greater than 0")
    if config.backend not in BACKENDS:
        raise ConfigError(f"backend: {config.backend!r} is not one of {', '.join(BACKENDS)}")
    if config.backend == "sqlite" and config.database.path in ("", ":memory:"):
        # SQLite gives each connection its own private database for these, and the store's
        # writer and readers are separate connections: the readers would see no tables.
        raise ConfigError(
            f"database.path: {config.database.path!r} is not supported: the store needs a file "
            "its writer and readers share (for a throwaway database, a file on a tmpfs)"
        )
    if (
        config.backend == "redis"
        and not config.auth.ticket_secret
        and not set(config.jwt.algorithms) <= HMAC_ALGORITHMS
    ):
        raise ConfigError(
            "auth.ticket_secret: required with backend redis and asymmetric JWT algorithms, "
            "so that every replica accepts the stream tickets of the others"
        )
    if config.redis.sweep_interval_seconds > config.redis.lease_seconds:
        # Else Redis could be away longer than a lease yet between two sweeps, unnoticed.
        raise ConfigError("redis.sweep_interval_seconds: must not exceed redis.lease_seconds")
    if config.redis.record_retention_seconds < config.redis.retention_seconds:
        raise ConfigError("redis.record_retention_seconds: must be at least retention_seconds")
    if urlsplit(config.redis.url).scheme not in ("redis", "rediss", "unix"):
        # The URL itself may hold a password: never echo it.
        raise ConfigError("redis.url: must be a redis://, rediss:// or unix:// URL")
    if config.mock.step_delay_seconds < 0:
        raise ConfigError("mock.step_delay_seconds: must not be negative")
    _validate_findings(config)
    if config.dev_mode and not config.dev_mode_allow_remote and not is_loopback(config.server.host):
        raise ConfigError(
            f"dev_mode: refused on server.host {config.server.host!r}, which is not a loopback "
            "address: with dev_mode anyone who can reach the gateway can mint a token for any "
            "subject. Listen on 127.0.0.1, turn dev_mode off, or set dev_mode_allow_remote: true"
        )


# The fewest events a scan needs: ``pending``, ``connecting`` and its terminal event.
MIN_EVENTS_PER_SCAN = 3
# A cut text field ends with the truncation marker, so it must have room for more than that.
MIN_FINDING_FIELD_CHARS = 64
MIN_FINDING_METADATA_BYTES = 64


def _validate_findings(config: Config) -> None:
    findings = config.findings
    if config.limits.max_events_per_scan < MIN_EVENTS_PER_SCAN:
        raise ConfigError(
            f"limits.max_events_per_scan: must be at least {MIN_EVENTS_PER_SCAN} "
            "(pending, connecting and the terminal event)"
        )
    if findings.max_field_chars < MIN_FINDING_FIELD_CHARS:
        raise ConfigError(f"findings.max_field_chars: must be at least {MIN_FINDING_FIELD_CHARS}")
    if findings.max_metadata_bytes < MIN_FINDING_METADATA_BYTES:
        raise ConfigError(
            f"findings.max_metadata_bytes: must be at least {MIN_FINDING_METADATA_BYTES}"
        )
    positive = {
        "findings.max_per_scan": findings.max_per_scan,
        "findings.max_bytes_per_scan": findings.max_bytes_per_scan,
        "findings.max_metadata_depth": findings.max_metadata_depth,
        "findings.page_size": findings.page_size,
        "findings.max_page_size": findings.max_page_size,
        "findings.max_page_bytes": findings.max_page_bytes,
    }
    for key, number in positive.items():
        if number <= 0:
            raise ConfigError(f"{key}: must be greater than 0")
    if findings.page_size > findings.max_page_size:
        raise ConfigError("findings.page_size: must not exceed findings.max_page_size")


def _validate_jwt(config: JWTConfig) -> None:
    """The algorithms need one kind of key, and the configured key is that kind (loaded here
    once, so that a key pyjwt cannot use fails at startup, not on each request)."""
    try:
        verification_key(config.algorithms, config.secret, config.public_key)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) reaches this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a name other than localhost, or "" (every interface)
        return False


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    """Build a Config from plain data (what a YAML file holds); missing keys take defaults."""
    return _build(Config, data or {}, "")


# Environment variables that override config values: name -> (section, key, type).
ENV_OVERRIDES: dict[str, tuple[str, str, type]] = {
    "XPLOYT_HOST": ("server", "host", str),
    "XPLOYT_PORT": ("server", "port", int),
    "XPLOYT_DB_PATH": ("database", "path", str),
    "XPLOYT_BACKEND": ("", "backend", str),
    "XPLOYT_REDIS_URL": ("redis", "url", str),
    "XPLOYT_JWT_SECRET": ("jwt", "secret", str),
    "XPLOYT_LOG_LEVEL": ("logging", "level", str),
}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
SCANNER_ENV_PREFIX = "XPLOYT_SCANNER_"  # XPLOYT_SCANNER_SAST_SCANNER=http://... per scanner


def load_config(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Config:
    """The embedded defaults (the package's config.yaml), a config file over them, then the
    environment. A file's sections merge key by key; its ``scanners``, when given, replace
    the default list whole."""
    data = _read_yaml(DEFAULT_CONFIG_PATH)
    if path is not None:
        data = _overlay(data, _read_yaml(Path(path)))
    return apply_environment(config_from_dict(data), environ)


def _read_yaml(source: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {source}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {source} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {source} must hold a mapping of sections")
    return data


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if key != "scanners" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def apply_environment(config: Config, environ: Mapping[str, str]) -> Config:
    for var, (section, key, kind) in ENV_OVERRIDES.items():
        if var not in environ:
            continue
        raw = environ[var]
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{var}: {raw!r} is not a valid {kind.__name__}") from None
        if section:
            value = replace(getattr(config, section), **{key: value})
        config = replace(config, **{section or key: value})
    if "XPLOYT_DEV_MODE" in environ:
        raw = environ["XPLOYT_DEV_MODE"].strip().lower()
        if raw not in _BOOL_WORDS:
            raise ConfigError(f"XPLOYT_DEV_MODE: {raw!r} is not true or false")
        config = replace(config, dev_mode=_BOOL_WORDS[raw])
    scanners = dict(config.scanners)
    for var, url in environ.items():
        if var.startswith(SCANNER_ENV_PREFIX) and url:
            scanners[var[len(SCANNER_ENV_PREFIX) :].lower()] = url
    return replace(config, scanners=scanners)
