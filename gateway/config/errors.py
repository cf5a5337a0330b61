"""``ConfigError``, and msgspec's validation errors in the words of the key and its declaration.

"server.port: expected a number, got 'x'", "upstream: unknown key(s) a, b", "server.port: must
be between 0 and 65535 (a TCP port), got 70000": the key path, what the declaration wants, and
the value as written (of a list or mapping only its kind: a URL in it may hold a password).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

__all__ = ["ConfigError", "declared_type", "field_types", "is_section", "type_error"]

# What each declared type is called in an error message.
_EXPECTED = {bool: "true or false", str: "a string", int: "a number", float: "a number"}
_EXPECTED_ORIGIN = {tuple: "a list of strings", Mapping: "a mapping of names to URLs"}
_SHOWN_CHARS = 80  # of a wrong value, in the message


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _optional_removed(hint: Any) -> Any:
    if get_origin(hint) in (Union, UnionType):
        return next(option for option in get_args(hint) if option is not type(None))
    return hint


def declared_type(hint: Any) -> Any:
    """The type an optional or annotated declaration holds."""
    hint = _optional_removed(hint)
    return get_args(hint)[0] if get_origin(hint) is Annotated else hint


def is_section(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, msgspec.Struct)


def field_types(section: Any) -> dict[str, Any]:
    """A section's keys and their declarations (``Annotated`` and all)."""
    return {f.name: f.type for f in msgspec.structs.fields(section)}


def type_error(exc: msgspec.ValidationError, data: Any, root: type[msgspec.Struct]) -> ConfigError:
    """``exc``, raised converting ``data`` to ``root``, as a ``ConfigError`` naming the key."""
    message, at, where = str(exc).partition(" - at ")  # no " - at ": the top level
    located = re.findall(r"`([^`]*)`", where) if at else ["$"]
    path = re.sub(r"\[[^]]*\]", "", located[-1]).split(".")[1:]  # "$.scanners[...]": scanners
    key = ".".join(path) or "config"
    declared, value = root, data
    for name in path:
        if is_section(declared_type(declared)):
            declared = field_types(declared_type(declared))[name]
        value = value.get(name) if isinstance(value, Mapping) else None
    hint = declared_type(declared)
    unknown_key = message.startswith("Object contains unknown field") or "`key` in" in where
    if unknown_key and is_section(hint) and isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in field_types(hint))
        return ConfigError(f"{key}: unknown key(s) {', '.join(unknown)}")
    if get_origin(hint) is Literal:
        return ConfigError(f"{key}: {_shown(value)} is not one of {_listed(get_args(hint))}")
    broken = _broken_bound(declared, value)
    if broken is not None:
        return ConfigError(f"{key}: {broken}, got {_shown(value)}")
    return ConfigError(f"{key}: expected {_expected(hint, value)}, got {_shown(value)}")


def _listed(options: tuple[Any, ...]) -> str:
    return ", ".join(str(option) for option in options)


def _broken_bound(declared: Any, value: Any) -> str | None:
    """The bound (a ``Meta`` of the declaration) that ``value``, of the declared type, breaks,
    in words; None when it is of another type or breaks none."""
    hint = _optional_removed(declared)
    if get_origin(hint) is not Annotated or not _is_finite_number(value):
        return None
    kind, *metadata = get_args(hint)
    if kind is int and not isinstance(value, int):
        return None  # msgspec's complaint is the type: "expected a whole number"
    for meta in metadata:
        if isinstance(meta, msgspec.Meta) and (words := _bound_words(meta, value)) is not None:
            why = (meta.extra or {}).get("why")
            return f"{words} ({why})" if why else words
    return None


def _bound_words(meta: msgspec.Meta, value: float) -> str | None:
    ge, gt, le = meta.ge, meta.gt, meta.le
    if le == sys.float_info.max:  # only there to refuse .inf: "expected a finite number"
        le = None
    if gt is not None and value <= gt:
        return f"must be greater than {gt}"
    if (ge is not None and value < ge) or (le is not None and value > le):
        if ge is not None and le is not None:
            return f"must be between {ge} and {le}"
        if ge is not None:
            return "must not be negative" if ge == 0 else f"must be at least {ge}"
        return f"must be at most {le}"
    return None


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _expected(hint: Any, value: Any) -> str:
    if is_section(hint):
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
