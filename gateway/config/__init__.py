"""Configuration: frozen msgspec Structs, one declaration from which loading, type checks and
their error messages come; loaded from YAML plus environment, then checked section by section."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

import msgspec
import yaml
from msgspec import field
from msgspec.structs import replace

from gateway.config.jwt_keys import HMAC_ALGORITHMS, HMAC_MIN_SECRET_BYTES, verification_key

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
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"
# The secret shipped in config.yaml; the gateway warns while it is in use.
DEV_JWT_SECRET = "xployt-dev-secret-change-me-0123456789"

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


# A float that is finite: YAML's .inf and .nan are refused where a number is read.
Number = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A config section: immutable, and a key it does not declare is an error."""


class ServerConfig(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 65536
    # A request body not received whole within this is answered 408 and its connection closed.
    body_read_timeout_seconds: Number = 15
    # An idle keep-alive connection, or one whose request line and headers have not all
    # arrived, is closed this long after it opened (or after its last response).
    keepalive_timeout_seconds: Number = 75
    shutdown_grace_seconds: Number = 10
    uvloop: bool = True  # used when installed (the "fast" extra)
    # Take the scheme from X-Forwarded-Proto (the cookie CSRF check compares origins): only
    # behind a proxy that ends TLS and sets it, never where clients reach the gateway directly.
    trust_forwarded_proto: bool = False


class AuthConfig(_Section, frozen=True):
    query_tokens: bool = True  # ?token= / ?access_token=, as the Xployt frontend sends
    cookie_name: str = "xployt_session"
    cookie_secure: bool = True
    cookie_samesite: str = "Lax"
    ticket_ttl_seconds: Number | None = None  # None: the scan's remaining lifetime
    ticket_max_ttl_seconds: Number = 3600
    ticket_secret: str | None = None  # None: derived from jwt.secret


class CorsConfig(_Section, frozen=True):
    allowed_origins: tuple[str, ...] = ()
    max_age_seconds: int = 600


class LimitsConfig(_Section, frozen=True):
    max_running_scans: int = 100
    max_running_scans_per_subject: int = 10
    max_streams_per_subject: int = 20
    retry_after_seconds: int = 5
    # Events one scan's log holds at most: past it the scan fails (the last place is kept for
    # the terminal event), so a scanner cannot fill the disk with progress.
    max_events_per_scan: int = 20_000


class FindingsConfig(_Section, frozen=True):
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


class DatabaseConfig(_Section, frozen=True):
    path: str = "./var/gateway.db"


class RedisConfig(_Section, frozen=True):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "xployt:"
    retention_seconds: Number = 24 * 3600  # a finished scan's event log
    record_retention_seconds: Number = 30 * 24 * 3600  # its record and results
    lease_seconds: Number = 15  # a replica that stops renewing loses its running scans
    sweep_interval_seconds: Number = 5  # how often each replica looks for lost scans
    store_retry_seconds: Number = 30  # how long an append waits for Redis to come back


class JWTConfig(_Section, frozen=True):
    secret: str = DEV_JWT_SECRET
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: Number = 0
    public_key: str | None = None  # PEM, for RS*/ES*/PS*/EdDSA algorithms

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret == DEV_JWT_SECRET and set(self.algorithms) <= HMAC_ALGORITHMS


class UpstreamConfig(_Section, frozen=True):
    connect_timeout_seconds: Number = 10
    idle_timeout_seconds: Number = 60
    scan_timeout_seconds: Number = 3600
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
    retry_backoff_seconds: Number = 0.5
    retry_backoff_max_seconds: Number = 10


class StreamConfig(_Section, frozen=True):
    heartbeat_seconds: Number = 15
    subscriber_buffer: int = 1000
    send_timeout_seconds: Number = 30
    # Events are written straight to a client while its socket buffer holds less than this;
    # above it they queue (up to subscriber_buffer) for the stream's own task to send.
    write_high_water_bytes: int = 64 * 1024
    retry_ms: int = 3000  # the reconnection delay suggested to EventSource


class MockConfig(_Section, frozen=True):
    step_delay_seconds: Number = 0.5
    steps: int = 8


class LoggingConfig(_Section, frozen=True):
    level: str = "INFO"
    json: bool = False  # one JSON object per line, with request and scan ids


class ReadinessConfig(_Section, frozen=True):
    check_scanners: bool = True
    timeout_seconds: Number = 2
    # Health URL per scanner; a scanner not listed is checked at <its origin>/healthz.
    scanner_health_urls: Mapping[str, str] = field(default_factory=dict)


class MetricsConfig(_Section, frozen=True):
    enabled: bool = True
    token: str | None = None  # when set, /metrics needs "Authorization: Bearer <token>"


class Config(_Section, frozen=True):
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


BACKENDS = ("sqlite", "redis")
# Clock skew worth allowing on exp is seconds, at most minutes; more would outlive revocation.
MAX_LEEWAY_SECONDS = 300
# Python's int() refuses longer digit strings (sys.get_int_max_str_digits()).
MAX_NUMBER_DIGITS = 4300
# The fewest events a scan needs: ``pending``, ``connecting`` and its terminal event.
MIN_EVENTS_PER_SCAN = 3
# A cut text field ends with the truncation marker, so it must have room for more than that.
MIN_FINDING_FIELD_CHARS = 64
MIN_FINDING_METADATA_BYTES = 64


def _validate(config: Config) -> None:
    """The checks the types cannot express, section by section; the first failure is raised."""
    _check_server(config.server)
    _check_scanners(config.scanners)
    _check_jwt(config.jwt)
    _check_auth(config.auth, config.jwt)
    _check_cors(config.cors)
    _check_limits(config.limits)
    _check_findings(config.findings)
    _check_upstream(config.upstream)
    _check_stream(config.stream)
    _check_backend(config)
    _check_redis(config.redis)
    _check_mock(config.mock)
    _check_dev_mode(config)


def _require_positive(section: str, values: object, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(values, name) <= 0:
            raise ConfigError(f"{section}.{name}: must be greater than 0")


def _check_server(server: ServerConfig) -> None:
    if not 0 <= server.port < 65536:
        raise ConfigError(f"server.port: {server.port} is not a port")
    if server.host != server.host.strip():
        raise ConfigError(f"server.host: {server.host!r} has spaces around it")
    _require_positive(
        "server",
        server,
        (
            "max_body_bytes",
            "body_read_timeout_seconds",
            "keepalive_timeout_seconds",
            "shutdown_grace_seconds",
        ),
    )


def _check_scanners(scanners: Mapping[str, str]) -> None:
    for name, url in scanners.items():
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"scanners.{name}: {url!r} is not an http(s) URL")


def _check_jwt(jwt: JWTConfig) -> None:
    """The algorithms need one kind of key, and the configured key is that kind (loaded here
    once, so that a key pyjwt cannot use fails at startup, not on each request)."""
    if not 0 <= jwt.leeway_seconds <= MAX_LEEWAY_SECONDS:
        raise ConfigError(f"jwt.leeway_seconds: must be between 0 and {MAX_LEEWAY_SECONDS}")
    try:
        verification_key(jwt.algorithms, jwt.secret, jwt.public_key)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_auth(auth: AuthConfig, jwt: JWTConfig) -> None:
    if auth.cookie_samesite not in ("Strict", "Lax", "None"):
        raise ConfigError("auth.cookie_samesite: must be Strict, Lax or None")
    if auth.cookie_samesite == "None" and not auth.cookie_secure:
        raise ConfigError("auth.cookie_samesite: None needs auth.cookie_secure: true")
    if auth.ticket_secret is not None:
        if auth.ticket_secret == jwt.secret:
            raise ConfigError("auth.ticket_secret: must differ from jwt.secret")
        ticket_bytes = HMAC_MIN_SECRET_BYTES["HS256"]  # stream tickets are HS256
        if len(auth.ticket_secret.encode()) < ticket_bytes:
            raise ConfigError(f"auth.ticket_secret: must be at least {ticket_bytes} bytes")
    if auth.ticket_ttl_seconds is not None and auth.ticket_ttl_seconds <= 0:
        raise ConfigError("auth.ticket_ttl_seconds: must be greater than 0")
    _require_positive("auth", auth, ("ticket_max_ttl_seconds",))


def _check_cors(cors: CorsConfig) -> None:
    for origin in cors.allowed_origins:
        parts = urlsplit(origin)
        if origin == "*" or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"cors.allowed_origins: {origin!r} is not an origin like https://app.example "
                "('*' is never allowed: CORS here always allows credentials)"
            )
        if parts.path or parts.query:
            raise ConfigError(f"cors.allowed_origins: {origin!r} must not have a path")


def _check_limits(limits: LimitsConfig) -> None:
    _require_positive(
        "limits",
        limits,
        (
            "max_running_scans",
            "max_running_scans_per_subject",
            "max_streams_per_subject",
            "retry_after_seconds",
        ),
    )
    if limits.max_events_per_scan < MIN_EVENTS_PER_SCAN:
        raise ConfigError(
            f"limits.max_events_per_scan: must be at least {MIN_EVENTS_PER_SCAN} "
            "(pending, connecting and the terminal event)"
        )


def _check_findings(findings: FindingsConfig) -> None:
    if findings.max_field_chars < MIN_FINDING_FIELD_CHARS:
        raise ConfigError(f"findings.max_field_chars: must be at least {MIN_FINDING_FIELD_CHARS}")
    if findings.max_metadata_bytes < MIN_FINDING_METADATA_BYTES:
        raise ConfigError(
            f"findings.max_metadata_bytes: must be at least {MIN_FINDING_METADATA_BYTES}"
        )
    _require_positive(
        "findings",
        findings,
        (
            "max_per_scan",
            "max_bytes_per_scan",
            "max_metadata_depth",
            "page_size",
            "max_page_size",
            "max_page_bytes",
        ),
    )
    if findings.page_size > findings.max_page_size:
        raise ConfigError("findings.page_size: must not exceed findings.max_page_size")


def _check_upstream(upstream: UpstreamConfig) -> None:
    if upstream.max_number_digits > MAX_NUMBER_DIGITS:
        raise ConfigError(
            f"upstream.max_number_digits: must be at most {MAX_NUMBER_DIGITS}, the longest "
            "number Python reads"
        )
    if upstream.connect_retries < 0:
        raise ConfigError("upstream.connect_retries: must not be negative")
    _require_positive(
        "upstream",
        upstream,
        (
            "idle_timeout_seconds",
            "scan_timeout_seconds",
            "connect_timeout_seconds",
            "max_line_length",
            "max_event_bytes",
            "max_body_bytes",
            "max_json_depth",
            "max_number_digits",
            "max_json_values",
            "max_malformed_messages",
            "retry_backoff_seconds",
            "retry_backoff_max_seconds",
        ),
    )


def _check_stream(stream: StreamConfig) -> None:
    _require_positive(
        "stream",
        stream,
        (
            "heartbeat_seconds",
            "subscriber_buffer",
            "send_timeout_seconds",
            "retry_ms",
            "write_high_water_bytes",
        ),
    )


def _check_backend(config: Config) -> None:
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


def _check_redis(redis: RedisConfig) -> None:
    _require_positive(
        "redis",
        redis,
        ("retention_seconds", "lease_seconds", "sweep_interval_seconds", "store_retry_seconds"),
    )
    if redis.sweep_interval_seconds > redis.lease_seconds:
        # Else Redis could be away longer than a lease yet between two sweeps, unnoticed.
        raise ConfigError("redis.sweep_interval_seconds: must not exceed redis.lease_seconds")
    if redis.record_retention_seconds < redis.retention_seconds:
        raise ConfigError("redis.record_retention_seconds: must be at least retention_seconds")
    if urlsplit(redis.url).scheme not in ("redis", "rediss", "unix"):
        # The URL itself may hold a password: never echo it.
        raise ConfigError("redis.url: must be a redis://, rediss:// or unix:// URL")


def _check_mock(mock: MockConfig) -> None:
    _require_positive("mock", mock, ("steps",))
    if mock.step_delay_seconds < 0:
        raise ConfigError("mock.step_delay_seconds: must not be negative")


def _check_dev_mode(config: Config) -> None:
    if config.dev_mode and not config.dev_mode_allow_remote and not is_loopback(config.server.host):
        raise ConfigError(
            f"dev_mode: refused on server.host {config.server.host!r}, which is not a loopback "
            "address: with dev_mode anyone who can reach the gateway can mint a token for any "
            "subject. Listen on 127.0.0.1, turn dev_mode off, or set dev_mode_allow_remote: true"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) reaches this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a name other than localhost, or "" (every interface)
        return False


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    """Build a Config from plain data (what a YAML file holds); missing keys take defaults.
    The types come from the declaration above (msgspec, strict: no bool for a number, no
    string for a number, finite numbers only); then the sections' own checks run."""
    prepared = _prepare(Config, data)
    try:
        return msgspec.convert(prepared, Config, strict=True)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__context__, ConfigError):  # raised by Config.__post_init__
            raise exc.__context__ from None
        raise _type_error(exc, prepared) from None


def _unwrap(hint: Any) -> Any:
    """The type an optional or annotated declaration holds."""
    if get_origin(hint) in (Union, UnionType):
        hint = next(option for option in get_args(hint) if option is not type(None))
    if get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    return hint


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, msgspec.Struct)


def _field_types(section: Any) -> dict[str, Any]:
    return {f.name: _unwrap(f.type) for f in msgspec.structs.fields(section)}


def _prepare(section: Any, data: Any) -> Any:
    """What YAML writes and the declaration means: an empty section (null) takes the
    defaults, one string where a list of strings is declared is a list of one, and a whole
    float where an int is declared is that int (1.6e+7 bytes)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        return data  # msgspec names what was expected
    types = _field_types(section)
    return {key: _prepare_value(types.get(key), value) for key, value in data.items()}


def _prepare_value(hint: Any, value: Any) -> Any:
    if _is_section(hint):
        return _prepare(hint, value)
    if get_origin(hint) is Mapping and value is None:
        return {}
    if get_origin(hint) is tuple and isinstance(value, str):
        return [value]
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# What each declared type is called in an error message.
_EXPECTED = {bool: "true or false", str: "a string", int: "a number", float: "a number"}
_EXPECTED_ORIGIN = {tuple: "a list of strings", Mapping: "a mapping of names to URLs"}
_SHOWN_CHARS = 80  # of a wrong value, in the message


def _type_error(exc: msgspec.ValidationError, data: Any) -> ConfigError:
    """msgspec's error, in the words of the key path and the declaration: "server.port:
    expected a number, got 'x'", "upstream: unknown key(s) a, b"."""
    message, at, where = str(exc).partition(" - at ")  # no " - at ": the top level
    located = re.findall(r"`([^`]*)`", where) if at else ["$"]
    path = re.sub(r"\[[^]]*\]", "", located[-1]).split(".")[1:]  # "$.scanners[...]": scanners
    key = ".".join(path) or "config"
    hint, value = Config, data
    for name in path:
        hint = _field_types(hint)[name] if _is_section(hint) else hint
        value = value.get(name) if isinstance(value, Mapping) else None
    unknown_key = message.startswith("Object contains unknown field") or "`key` in" in where
    if unknown_key and _is_section(hint) and isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in _field_types(hint))
        return ConfigError(f"{key}: unknown key(s) {', '.join(unknown)}")
    return ConfigError(f"{key}: expected {_expected(hint, value)}, got {_shown(value)}")


def _expected(hint: Any, value: Any) -> str:
    if _is_section(hint):
        return "a mapping"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and not math.isfinite(value):
        return "a finite number"
    if is_number and hint is int:
        return "a whole number"
    return _EXPECTED_ORIGIN.get(get_origin(hint)) or _EXPECTED.get(hint, str(hint))


def _shown(value: Any) -> str:
    """A wrong scalar as written; of a list or mapping only its kind (a scanner URL in it may
    hold a password)."""
    if isinstance(value, list | tuple | Mapping):
        return type(value).__name__
    shown = repr(value)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."


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
