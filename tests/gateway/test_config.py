"""Configuration: the embedded defaults, files, environment overrides and clear errors."""

from __future__ import annotations

import logging
import re

import pytest

from gateway import create_app
from gateway.config import DEFAULT_CONFIG_PATH, ConfigError, config_from_dict, load_config, merged
from tests.keys import public_pem


def test_embedded_defaults_match_the_design():
    config = load_config(None, {})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8000)
    assert config.database.path == "./var/gateway.db"
    assert set(config.scanners) == {"secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner"}
    assert all(url.startswith("http://127.0.0.1:8001/") for url in config.scanners.values())
    assert config.jwt.algorithms == ("HS256",)
    assert config.jwt.uses_dev_secret
    assert config.stream.heartbeat_seconds == 15
    assert DEFAULT_CONFIG_PATH.name == "config.yaml"


def test_environment_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 9100\n")
    config = load_config(
        path,
        {
            "XPLOYT_PORT": "9200",
            "XPLOYT_HOST": "0.0.0.0",
            "XPLOYT_DB_PATH": "/tmp/x.db",
            "XPLOYT_JWT_SECRET": "s" * 40,
            "XPLOYT_SCANNER_SAST_SCANNER": "http://127.0.0.1:9999/scan",
        },
    )
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9200)
    assert config.database.path == "/tmp/x.db"
    assert config.jwt.secret == "s" * 40
    assert not config.jwt.uses_dev_secret
    assert config.scanners["sast_scanner"] == "http://127.0.0.1:9999/scan"
    assert config.scanners["secret_scanner"].startswith("http://127.0.0.1:8001/")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": 1}, "unknown key(s) nope"),
        ({"server": {"b": 1, "a": 2}}, "server: unknown key(s) a, b"),
        ({1: 2}, "config: unknown key(s) 1"),
        (
            {"upstream": {"max_line_length": "x"}},
            "upstream.max_line_length: expected a number, got 'x'",
        ),
        (
            {"stream": {"heartbeat_seconds": True}},
            "stream.heartbeat_seconds: expected a number, got True",
        ),
        ({"server": {"uvloop": "yes"}}, "server.uvloop: expected true or false, got 'yes'"),
        ({"jwt": {"algorithms": ["HS256", 3]}}, "jwt.algorithms: expected a list of strings"),
        ({"scanners": {"a": "http://u:hunter2@h/scan", "b": 3}}, "scanners: expected a mapping of"),
        ({"server": {"port": "x"}}, "server.port: expected a number"),
        ({"server": {"port": 1.5}}, "server.port: expected a whole number"),
        ({"server": {"port": 70000}}, "server.port: must be between 0 and 65535 (a TCP port), got"),
        ({"server": []}, "server: expected a mapping"),
        ({"jwt": {"algorithms": ["none"]}}, "'none' is never accepted"),
        ({"jwt": {"algorithms": []}}, "at least one algorithm"),
        ({"scanners": {"x": "ftp://host/scan"}}, "scanners.x"),
        ({"scanners": {"x": 3}}, "mapping of names to URLs"),
        ({"stream": {"heartbeat_seconds": 0}}, "stream.heartbeat_seconds: must be greater than 0"),
        ({"mock": {"step_delay_seconds": -1}}, "must not be negative"),
        ({"jwt": {"secret": "s" * 40}, "auth": {"ticket_secret": "s" * 40}}, "must differ"),
        ({"backend": "postgres"}, "backend: 'postgres' is not one of sqlite, redis"),
        ({"redis": {"url": "http://user:hunter2@h/0"}}, "redis.url: must be a redis://"),
        ({"redis": {"lease_seconds": 0}}, "redis.lease_seconds: must be greater than 0"),
        ({"redis": {"lease_seconds": 5, "sweep_interval_seconds": 6}}, "must not exceed"),
        ({"redis": {"retention_seconds": 10, "record_retention_seconds": 5}}, "at least"),
        ({"stream": {"write_high_water_bytes": 0}}, "stream.write_high_water_bytes"),
        (
            {"auth": {"ticket_max_ttl_seconds": float("inf")}},
            "auth.ticket_max_ttl_seconds: expected a finite number",
        ),
        ({"auth": {"ticket_ttl_seconds": float("nan")}}, "auth.ticket_ttl_seconds: expected a fin"),
        ({"server": {"port": float("-inf")}}, "server.port: expected a finite number"),
        (
            {"backend": "redis", "jwt": {"algorithms": ["RS256"], "public_key": public_pem("rsa")}},
            "auth.ticket_secret: required with backend redis",
        ),
    ],
)
def test_invalid_config_names_the_key(data, message):
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict(data)
    assert message in str(info.value)
    assert "hunter2" not in str(info.value), "a password in a URL is never echoed"


def test_what_yaml_writes_is_read_as_the_declaration_means():
    config = config_from_dict(
        {
            "server": None,  # a section whose keys are all commented out
            "scanners": None,
            "jwt": {"algorithms": "HS256"},  # one string for a list of strings
            "cors": {"allowed_origins": "https://app.example"},
            "upstream": {"max_body_bytes": 1.6e7},  # a whole float for a count
        }
    )
    assert config.server == config_from_dict({}).server
    assert config.scanners == {}
    assert config.jwt.algorithms == ("HS256",)
    assert config.cors.allowed_origins == ("https://app.example",)
    assert config.upstream.max_body_bytes == 16_000_000
    assert type(config.upstream.max_body_bytes) is int


def test_bad_files_and_environment(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml", {})
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, {})
    with pytest.raises(ConfigError, match="XPLOYT_PORT"):
        load_config(None, {"XPLOYT_PORT": "eighty"})


def test_dev_secret_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.app"):
        create_app(config_from_dict({}))
    assert "development default" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway.app"):
        create_app(config_from_dict({"jwt": {"secret": "p" * 40}}))
    assert caplog.text == ""


def test_a_config_file_overlays_the_embedded_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("database:\n  path: /tmp/other.db\nstream:\n  retry_ms: 100\n")
    config = load_config(path, {})
    assert config.database.path == "/tmp/other.db"
    assert config.stream.retry_ms == 100
    assert config.stream.heartbeat_seconds == 15
    assert set(config.scanners) == {"secret_scanner", "sast_scanner", "llm_scanner", "dast_scanner"}
    path.write_text("scanners:\n  only_scanner: http://127.0.0.1:9/scan\n")
    assert dict(load_config(path, {}).scanners) == {"only_scanner": "http://127.0.0.1:9/scan"}
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(path, {})


def test_dev_mode_from_environment():
    assert load_config(None, {}).dev_mode is False
    assert load_config(None, {"XPLOYT_DEV_MODE": "1"}).dev_mode is True
    with pytest.raises(ConfigError, match="XPLOYT_DEV_MODE"):
        load_config(None, {"XPLOYT_DEV_MODE": "maybe"})


@pytest.mark.parametrize(
    "key", ["max_event_bytes", "max_body_bytes", "max_json_depth", "max_number_digits"]
)
def test_upstream_body_limits_must_be_positive(key):
    assert getattr(config_from_dict({}).upstream, key) > 0
    with pytest.raises(ConfigError, match=f"upstream.{key}: must be greater than 0"):
        config_from_dict({"upstream": {key: 0}})


def test_the_findings_bounds_in_config_yaml_are_the_defaults():
    from gateway.config import Config, FindingsConfig, LimitsConfig

    config = load_config(None, {})
    assert config.findings == FindingsConfig() == Config().findings
    assert config.limits.max_events_per_scan == LimitsConfig().max_events_per_scan
    assert config.limits.max_report_builds == LimitsConfig().max_report_builds == 2


@pytest.mark.parametrize(
    ("findings", "message"),
    [
        ({"max_per_scan": 0}, "findings.max_per_scan: must be greater than 0"),
        ({"max_bytes_per_scan": 0}, "findings.max_bytes_per_scan: must be greater than 0"),
        ({"max_metadata_depth": 0}, "findings.max_metadata_depth: must be greater than 0"),
        ({"page_size": 0}, "findings.page_size: must be greater than 0"),
        ({"max_field_chars": 63}, "findings.max_field_chars: must be at least 64"),
        ({"max_metadata_bytes": 63}, "findings.max_metadata_bytes: must be at least 64"),
        ({"page_size": 11, "max_page_size": 10}, "findings.page_size: must not exceed"),
    ],
)
def test_findings_bounds_are_checked(findings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict({"findings": findings})
    config_from_dict({"findings": {"max_field_chars": 64, "max_metadata_bytes": 64}})


@pytest.mark.parametrize("path", [":memory:", ""])
def test_a_private_sqlite_database_is_refused(path, tmp_path):
    # The writer and the readers are separate connections: with these paths each would get a
    # database of its own, and reads failed with "no such table: scans".
    with pytest.raises(ConfigError, match=r"database\.path: .* is not supported"):
        config_from_dict({"database": {"path": path}})
    with pytest.raises(ConfigError, match=r"database\.path"):
        load_config(None, {"XPLOYT_DB_PATH": path})
    # Only the SQLite backend uses it.
    assert config_from_dict({"backend": "redis", "database": {"path": path}}).backend == "redis"
    assert config_from_dict({"database": {"path": str(tmp_path / "g.db")}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": {"host": " 127.0.0.1"}}, "server.host: ' 127.0.0.1' has spaces around it"),
        ({"jwt": {"leeway_seconds": -1}}, "jwt.leeway_seconds: must be between 0 and 300"),
        ({"jwt": {"leeway_seconds": 300.5}}, "jwt.leeway_seconds: must be between 0 and 300"),
        ({"upstream": {"max_number_digits": 4301}}, "upstream.max_number_digits: must be at most"),
    ],
)
def test_values_that_would_fail_later_are_refused_at_load(data, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(data)


def test_the_listen_backlog_defaults_to_4096_and_takes_its_bounds():
    assert load_config(None, {}).server.backlog == 4096
    for backlog in (1, 65535):
        assert config_from_dict({"server": {"backlog": backlog}}).server.backlog == backlog


def test_the_bounds_of_those_values_are_accepted():
    config = config_from_dict(
        {"jwt": {"leeway_seconds": 300}, "upstream": {"max_number_digits": 4300}}
    )
    assert (config.jwt.leeway_seconds, config.upstream.max_number_digits) == (300, 4300)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"auth": {"cookie_samesite": "lax"}}, "auth.cookie_samesite: 'lax' is not one of Strict"),
        (
            {"limits": {"max_events_per_scan": 2}},
            "limits.max_events_per_scan: must be at least 3 (pending, connecting and the terminal "
            "event), got 2",
        ),
        ({"upstream": {"connect_retries": -1}}, "upstream.connect_retries: must not be negative"),
        ({"limits": {"max_report_builds": 0}}, "limits.max_report_builds: must be greater than 0"),
        (
            {"upstream": {"max_json_depth": -1.5}},
            "upstream.max_json_depth: expected a whole number",
        ),
        ({"mock": {"step_delay_seconds": float("inf")}}, "expected a finite number, got inf"),
        (
            {"server": {"backlog": 0}},
            "server.backlog: must be between 1 and 65535 (connections waiting to be accepted), "
            "got 0",
        ),
        ({"server": {"backlog": 65536}}, "server.backlog: must be between 1 and 65535"),
        ({"server": {"backlog": "many"}}, "server.backlog: expected a number, got 'many'"),
    ],
)
def test_declared_bounds_are_worded_from_the_declaration(data, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(data)


def test_environment_values_meet_the_declared_bounds():
    # The environment is decoded with the file, not laid over a built Config: a replace() would
    # skip the bounds msgspec checks while decoding.
    with pytest.raises(ConfigError, match=r"server\.port: must be between 0 and 65535"):
        load_config(None, {"XPLOYT_PORT": "70000"})
    with pytest.raises(ConfigError, match="backend: 'postgres' is not one of sqlite, redis"):
        load_config(None, {"XPLOYT_BACKEND": "postgres"})


def test_the_environment_never_hides_a_section_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server: [1]\n")
    with pytest.raises(ConfigError, match="server: expected a mapping, got list"):
        load_config(path, {"XPLOYT_PORT": "9000"})


def test_merged_lays_changes_over_a_config_and_checks_them_again():
    config = config_from_dict({"stream": {"retry_ms": 100}})
    bound = merged(config, {"server": {"port": 9100}})
    assert (bound.server.port, bound.server.host, bound.stream.retry_ms) == (9100, "127.0.0.1", 100)
    assert merged(config, {}) == config
    with pytest.raises(ConfigError, match=r"server\.port: must be between 0 and 65535"):
        merged(config, {"server": {"port": -1}})


def test_the_limits_in_config_yaml_are_the_defaults():
    from gateway.config import LimitsConfig

    assert load_config(None, {}).limits == LimitsConfig()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"scan_starts_per_second": 0.0009},
            "limits.scan_starts_per_second: must be between 0.001 and 1000000 (a start at least "
            "every 1000 s), got 0.0009",
        ),
        ({"scan_starts_per_second": 1_000_001}, "limits.scan_starts_per_second: must be between"),
        ({"scan_start_burst": 0}, "limits.scan_start_burst: must be between 1 and 1000000, got 0"),
        ({"scan_start_burst": 1_000_001}, "limits.scan_start_burst: must be between 1 and"),
        ({"max_streams": 0}, "limits.max_streams: must be greater than 0, got 0"),
    ],
)
def test_the_bounds_of_the_limits_are_checked(limits, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict({"limits": limits})


def test_the_limits_at_their_bounds_are_accepted():
    low = config_from_dict({"limits": {"scan_starts_per_second": 0.001, "scan_start_burst": 1}})
    assert (low.limits.scan_starts_per_second, low.limits.scan_start_burst) == (0.001, 1)
    high = {"scan_starts_per_second": 1_000_000, "scan_start_burst": 1_000_000, "max_streams": 1}
    assert config_from_dict({"limits": high}).limits.scan_start_burst == 1_000_000


KEY_SET = {"algorithms": ["RS256"], "jwks_url": "https://id.example/jwks"}


@pytest.mark.parametrize(
    ("jwt_config", "message"),
    [
        (
            {**KEY_SET, "oidc_issuer": "https://id.example"},
            "jwt.jwks_url: set together with jwt.oidc_issuer; set one",
        ),
        (
            {**KEY_SET, "public_key": "-----BEGIN PUBLIC KEY-----"},
            "jwt.public_key: set together with jwt.jwks_url; set one key source",
        ),
        (
            {**KEY_SET, "algorithms": ["RS256", "HS256"]},
            "jwt.algorithms: HS256 verify with a shared secret, which a key set (jwt.jwks_url)",
        ),
        ({**KEY_SET, "algorithms": ["none"]}, "jwt.algorithms: 'none' is never accepted"),
        ({**KEY_SET, "jwks_url": "http://id.example/jwks"}, "jwt.jwks_url: must be https"),
        ({**KEY_SET, "jwks_url": "http://10.0.0.1/jwks"}, "jwt.jwks_url: must be https"),
        ({**KEY_SET, "jwks_url": "ftp://id.example/jwks"}, "jwt.jwks_url: is not an https URL"),
        ({**KEY_SET, "jwks_url": "https://u:pw@id.example/"}, "must not hold credentials"),
        ({**KEY_SET, "jwks_url": "https://id.example/j#k"}, "must not have a fragment"),
        ({**KEY_SET, "jwks_url": "https://[::1/jwks"}, "jwt.jwks_url: is not a URL"),
        (
            {"algorithms": ["ES256"], "oidc_issuer": "https://id.example", "issuer": "other"},
            "jwt.issuer: differs from jwt.oidc_issuer",
        ),
        (
            {**KEY_SET, "jwks_cache_seconds": 5, "jwks_min_interval_seconds": 10},
            "jwt.jwks_cache_seconds: must be between jwt.jwks_min_interval_seconds and",
        ),
        (
            {**KEY_SET, "jwks_cache_seconds": 100, "jwks_max_cache_seconds": 50},
            "jwt.jwks_cache_seconds: must be between",
        ),
        ({**KEY_SET, "jwks_max_keys": 0}, "jwt.jwks_max_keys: must be between 1 and 1000"),
        ({**KEY_SET, "jwks_max_bytes": 0}, "jwt.jwks_max_bytes: must be greater than 0"),
        ({**KEY_SET, "jwks_timeout_seconds": 0}, "jwt.jwks_timeout_seconds: must be greater"),
    ],
)
def test_key_set_settings_that_cannot_work_are_refused(jwt_config, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"jwt": jwt_config})
    assert message in str(info.value)
    assert "pw@" not in str(info.value), "a URL's credentials are never echoed"


def test_key_set_settings_that_work():
    for url in ("http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"):
        assert config_from_dict({"jwt": {**KEY_SET, "jwks_url": url}}).jwt.jwks_url == url
    mixed = config_from_dict({"jwt": {**KEY_SET, "algorithms": ["RS256", "ES256", "EdDSA"]}})
    assert mixed.jwt.key_set_source == "jwt.jwks_url"
    oidc = config_from_dict(
        {"jwt": {"algorithms": ["PS256"], "oidc_issuer": "https://id.example/realms/x"}}
    ).jwt
    assert (oidc.key_set_source, oidc.expected_issuer) == ("jwt.oidc_issuer", oidc.oidc_issuer)
    bounds = {"jwks_min_interval_seconds": 5, "jwks_cache_seconds": 5, "jwks_max_cache_seconds": 5}
    assert config_from_dict({"jwt": {**KEY_SET, **bounds, "jwks_max_keys": 1000}})


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"permission_claims": ["a b"]}, "auth.permission_claims: 'a b' is not a claim name"),
        ({"permission_claims": [""]}, "auth.permission_claims: '' is not a claim name"),
        ({"permission_claims": ["x" * 65]}, "is not a claim name (1 to 64 printable"),
        ({"permission_claims": list("abcdefghi")}, "auth.permission_claims: at most 8 claims"),
        (
            {"permission_claims": [], "require_permissions": True},
            "auth.require_permissions: needs at least one auth.permission_claims",
        ),
    ],
)
def test_permission_claims_are_claim_names(auth, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict({"auth": auth})
    assert config_from_dict({"auth": {"permission_claims": ["scp", "x" * 64]}})
