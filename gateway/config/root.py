"""``Config``: the sections together, and the checks across them, run whenever one is built.

The types and bounds are enforced where a config is decoded (``loading.config_from_dict``, which
every change to a config goes through); the checks here also run on ``Config(...)`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from msgspec import field

from gateway.config.checks import (
    check_auth,
    check_backend,
    check_cors,
    check_dev_mode,
    check_findings,
    check_jwt,
    check_redis,
    check_scanners,
    check_server,
)
from gateway.config.sections import (
    AuthConfig,
    CorsConfig,
    DatabaseConfig,
    FindingsConfig,
    JWTConfig,
    LimitsConfig,
    LoggingConfig,
    MetricsConfig,
    MockConfig,
    ReadinessConfig,
    RedisConfig,
    Section,
    ServerConfig,
    StreamConfig,
    UpstreamConfig,
)

__all__ = ["Config"]


class Config(Section, frozen=True):
    server: ServerConfig = field(default_factory=ServerConfig)
    backend: Literal["sqlite", "redis"] = "sqlite"  # redis: several replicas share one Redis
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
        """The checks the types cannot express, section by section; the first failure is
        raised."""
        check_server(self.server)
        check_scanners(self.scanners)
        check_jwt(self.jwt)
        check_auth(self.auth, self.jwt)
        check_cors(self.cors)
        check_findings(self.findings)
        check_backend(self.backend, self.database, self.auth, self.jwt)
        check_redis(self.redis)
        check_dev_mode(self.dev_mode, self.dev_mode_allow_remote, self.server)
