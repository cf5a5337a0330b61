"""The configuration, declared as frozen msgspec Structs and loaded from YAML plus environment.

The package's public surface; its modules, lowest first: ``jwt_keys`` (which algorithms share a
kind of key), ``sections`` (one Struct per section, with the bounds its types declare),
``errors`` (``ConfigError``; msgspec's errors in the keys' words), ``checks`` (what the types
cannot say), ``root`` (``Config``), ``loading`` (defaults, file, environment).
"""

from gateway.config.errors import ConfigError
from gateway.config.loading import DEFAULT_CONFIG_PATH, config_from_dict, load_config, merged
from gateway.config.root import Config
from gateway.config.sections import (
    DEV_JWT_SECRET,
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
    ServerConfig,
    StreamConfig,
    UpstreamConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEV_JWT_SECRET",
    "AuthConfig",
    "Config",
    "ConfigError",
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
    "ServerConfig",
    "StreamConfig",
    "UpstreamConfig",
    "config_from_dict",
    "load_config",
    "merged",
]
