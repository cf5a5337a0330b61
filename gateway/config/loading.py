"""Loading the config: the embedded defaults, a YAML file over them, then the environment, all
decoded at once against the declaration (``root.Config``), so every value, wherever it came
from, meets the same types, bounds and checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, get_origin

import msgspec
import yaml

from gateway.config.errors import ConfigError, declared_type, field_types, is_section, type_error
from gateway.config.root import Config

__all__ = ["DEFAULT_CONFIG_PATH", "config_from_dict", "load_config", "merged"]

# The embedded defaults, shipped in the package (in the repository, a link to the top-level
# config.yaml: one file, which the wheel carries as a copy).
DEFAULT_CONFIG_PATH: Final = Path(__file__).resolve().parent.parent / "config.yaml"

# Environment variables that override config values: name -> (section, key, type).
ENV_OVERRIDES: Final[dict[str, tuple[str, str, type]]] = {
    "XPLOYT_HOST": ("server", "host", str),
    "XPLOYT_PORT": ("server", "port", int),
    "XPLOYT_DB_PATH": ("database", "path", str),
    "XPLOYT_BACKEND": ("", "backend", str),
    "XPLOYT_REDIS_URL": ("redis", "url", str),
    "XPLOYT_JWT_SECRET": ("jwt", "secret", str),
    "XPLOYT_LOG_LEVEL": ("logging", "level", str),
}
_BOOL_WORDS: Final = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
SCANNER_ENV_PREFIX: Final = "XPLOYT_SCANNER_"  # XPLOYT_SCANNER_SAST_SCANNER=http://... each


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    """Build a Config from plain data (what a YAML file holds); missing keys take defaults.
    The types and bounds come from the declaration (msgspec, strict: no bool for a number, no
    string for a number, finite numbers only); then the sections' own checks run."""
    prepared = _prepare(Config, data)
    try:
        return msgspec.convert(prepared, Config, strict=True)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__context__, ConfigError):  # raised by Config.__post_init__
            raise exc.__context__ from None
        raise type_error(exc, prepared, Config) from None


def merged(config: Config, changes: Mapping[str, Any]) -> Config:
    """``config`` with ``changes`` laid over it as a config file's would be, decoded and
    checked again (a ``msgspec.structs.replace`` would skip the declared bounds)."""
    return config_from_dict(_overlay(msgspec.to_builtins(config), dict(changes)))


def load_config(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Config:
    """The embedded defaults (the package's config.yaml), a config file over them, then the
    environment. A file's sections merge key by key; its ``scanners``, when given, replace
    the default list whole; the environment's scanners are added to them."""
    data = _read_yaml(DEFAULT_CONFIG_PATH)
    if path is not None:
        data = _overlay(data, _read_yaml(Path(path)))
    return config_from_dict(_with_environment(data, environ))


def _prepare(section: Any, data: Any) -> Any:
    """What YAML writes and the declaration means: an empty section (null) takes the
    defaults, one string where a list of strings is declared is a list of one, and a whole
    float where an int is declared is that int (1.6e+7 bytes)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        return data  # msgspec names what was expected
    types = {name: declared_type(hint) for name, hint in field_types(section).items()}
    return {key: _prepare_value(types.get(key), value) for key, value in data.items()}


def _prepare_value(hint: Any, value: Any) -> Any:
    if is_section(hint):
        return _prepare(hint, value)
    if get_origin(hint) is Mapping and value is None:
        return {}
    if get_origin(hint) is tuple and isinstance(value, str):
        return [value]
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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


def _with_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``data`` with the environment's values in it. A section that is not a mapping is left
    as it is, so that its own error is the one reported."""
    sections: dict[str, dict[str, Any]] = {"": dict(data)}
    for var, (section, key, kind) in ENV_OVERRIDES.items():
        if var in environ:
            sections.setdefault(section, {})[key] = _typed(var, environ[var], kind)
    if "XPLOYT_DEV_MODE" in environ:
        raw = environ["XPLOYT_DEV_MODE"].strip().lower()
        if raw not in _BOOL_WORDS:
            raise ConfigError(f"XPLOYT_DEV_MODE: {raw!r} is not true or false")
        sections[""]["dev_mode"] = _BOOL_WORDS[raw]
    scanners = {
        var[len(SCANNER_ENV_PREFIX) :].lower(): url
        for var, url in environ.items()
        if var.startswith(SCANNER_ENV_PREFIX) and url
    }
    if scanners:
        sections["scanners"] = scanners
    result = sections.pop("")
    for section, values in sections.items():
        current = result.get(section)
        if current is None or isinstance(current, Mapping):
            result[section] = {**(current or {}), **values}
    return result


def _typed(var: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{var}: {raw!r} is not a valid {kind.__name__}") from None
