"""Reading and checking what clients send: bodies, query parameters and path ids."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from gateway.domain.errors import (
    BadRequest,
    InvalidJSON,
    RequestTimeout,
    UnknownScanner,
    UnsupportedMediaType,
    ValidationError,
)
from gateway.domain.models import Status
from gateway.domain.text import has_controls
from gateway.http.appkeys import CONFIG
from gateway.http.collection_schemas import PER_SCANNER, CollectionCreate
from gateway.http.schemas import MAX_REPOSITORY_NAME, ScanCreate

__all__ = [
    "MAX_REPOSITORY_NAME",
    "CollectionRequest",
    "ScanRequest",
    "collection_request",
    "excerpt",
    "parse_bool",
    "parse_cursor",
    "parse_limit",
    "parse_status",
    "read_body",
    "read_json",
    "scan_request",
]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
# A whole-number query parameter has at most this many digits: int() is not even tried on
# more (it refuses over 4300), and none of them is meant to be that large.
MAX_NUMBER_DIGITS = 12
# JSON integers a body may hold: what a signed 64-bit integer holds, as scanners read them.
MAX_JSON_INTEGER = 2**63 - 1


# The body of ``POST /api/v1/scans/``, validated (the command-line client sends it from a
# ``cli.ScanCommand``); declared once, in gateway.http.schemas.
ScanRequest = ScanCreate


async def read_json(request: web.Request) -> object:
    """The request's JSON body: 415 for another media type, 400 when it does not parse."""
    media = request.content_type
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media or 'none'!r}"
        )
    raw = await read_body(request)
    if not raw.strip():
        raise InvalidJSON("request body is empty; expected a JSON object")
    try:
        value = json.loads(
            raw.decode("utf-8"),
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except UnicodeDecodeError:
        raise InvalidJSON("request body is not valid UTF-8") from None
    except _NumberOutOfRange as exc:
        raise InvalidJSON(f"request body holds a number out of range: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidJSON(
            "request body is not valid JSON",
            detail=f"{exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except (ValueError, RecursionError) as exc:  # NaN, huge integers, absurd nesting
        raise InvalidJSON("request body is not valid JSON", detail=str(exc)[:200]) from None
    try:
        # Lone surrogates (\ud800) parse, but no UTF-8 text can hold them.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJSON("request body holds an unpaired UTF-16 surrogate escape") from None
    return value


async def read_body(request: web.Request) -> bytes:
    """The whole request body: 413 past ``server.max_body_bytes`` (aiohttp's
    ``client_max_size``), 408 if it has not all arrived within
    ``server.body_read_timeout_seconds`` (a client dripping it would hold the connection)."""
    seconds = request.app[CONFIG].server.body_read_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {seconds:g} s") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


class _NumberOutOfRange(ValueError):
    """A JSON number no encoder downstream could write back (1e999 is infinity)."""


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NumberOutOfRange(f"{excerpt(literal)} is not a finite number")
    return value


def _bounded_int(literal: str) -> int:
    # Checked by length first: int() of a long literal costs time (and refuses past 4300).
    digits = literal.lstrip("-").lstrip("0")
    if len(digits) > len(str(MAX_JSON_INTEGER)) or abs(int(literal)) > MAX_JSON_INTEGER:
        raise _NumberOutOfRange(
            f"integer {excerpt(literal)} does not fit in 64 bits (at most {MAX_JSON_INTEGER})"
        )
    return int(literal)


def excerpt(literal: str) -> str:
    """``literal`` as an error message quotes it: whole when short, else its start and length."""
    return literal if len(literal) <= 24 else f"{literal[:20]}... ({len(literal)} characters)"


def scan_request(body: object, scanners: Mapping[str, str]) -> ScanRequest:
    """``body`` decoded as ``schemas.ScanCreate``, its strings stripped; 422 naming the field
    that is missing, mistyped, empty, too long or unknown, 400 for an unknown scanner."""
    if not isinstance(body, dict):
        raise ValidationError(f"request body must be a JSON object, got {_kind(body)}")
    unknown = sorted(set(body) - set(ScanCreate.__struct_fields__))
    if unknown:  # all of them, where msgspec would name the first
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}")
    # In the declaration's order, so that the first field wrong is the one named.
    fields = {name: _stripped(body[name]) for name in ScanCreate.__struct_fields__ if name in body}
    try:
        wanted = msgspec.convert(fields, ScanCreate)
    except msgspec.ValidationError as exc:
        raise _refusal(fields, str(exc)) from None
    if has_controls(wanted.repository_name):
        # It is shown in lists and terminals and sent on to the scanner.
        raise ValidationError("field 'repository_name' must not hold control characters")
    if wanted.scanner_name not in scanners:
        known = ", ".join(sorted(scanners)) or "none"
        raise UnknownScanner(
            f"unknown scanner {wanted.scanner_name!r}; configured scanners: {known}"
        )
    if wanted.configurations is None:
        wanted.configurations = {}
    return wanted


@dataclass(frozen=True, slots=True)
class CollectionRequest:
    """The body of ``POST /api/v1/scan-collections/``, checked: each scanner with the
    configuration it is sent."""

    repository_name: str
    configurations: dict[str, dict[str, Any]]  # scanner -> its configurations, in order


def collection_request(body: object, scanners: Mapping[str, str]) -> CollectionRequest:
    """``body`` decoded as ``collection_schemas.CollectionCreate``: 422 naming the field or
    scanner that is wrong (missing, mistyped, empty, listed twice, too many), 400
    ``unknown_scanner`` for scanners that are not configured."""
    if not isinstance(body, dict):
        raise ValidationError(f"request body must be a JSON object, got {_kind(body)}")
    unknown = sorted(set(body) - set(CollectionCreate.__struct_fields__))
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}")
    fields = {k: _stripped(body[k]) for k in CollectionCreate.__struct_fields__ if k in body}
    # The repository is checked as a scan's is, with the same words.
    named = {"repository_name": fields["repository_name"]} if "repository_name" in fields else {}
    repository = scan_request({**named, "scanner_name": "-"}, {"-": ""}).repository_name
    names = _scanner_names(fields.get("scanners"), scanners)
    shared = fields.get("configurations")
    shared = {} if shared is None else shared
    if not isinstance(shared, dict):
        raise ValidationError(f"field 'configurations' must be an object, got {_kind(shared)}")
    own = shared.get(PER_SCANNER, {})
    if not isinstance(own, dict):
        raise ValidationError(f"'configurations.{PER_SCANNER}' must be an object, got {_kind(own)}")
    strangers = sorted(set(own) - set(names))
    if strangers:
        raise ValidationError(
            f"'configurations.{PER_SCANNER}' names scanner(s) not in 'scanners': "
            + ", ".join(repr(name[:100]) for name in strangers[:10])
        )
    for name, value in own.items():
        if not isinstance(value, dict):
            raise ValidationError(
                f"'configurations.{PER_SCANNER}.{name}' must be an object, got {_kind(value)}"
            )
    common = {key: value for key, value in shared.items() if key != PER_SCANNER}
    return CollectionRequest(repository, {name: {**common, **own.get(name, {})} for name in names})


def _scanner_names(value: object, scanners: Mapping[str, str]) -> list[str]:
    if value is None:
        raise ValidationError("field 'scanners' is required")
    if not isinstance(value, list):
        raise ValidationError(f"field 'scanners' must be an array of names, got {_kind(value)}")
    if not value:
        raise ValidationError("field 'scanners' is empty; name at least one scanner")
    if len(value) > len(scanners):
        raise ValidationError(
            f"field 'scanners' lists {len(value)} names; at most the {len(scanners)} "
            "configured scanners, each once"
        )
    names: list[str] = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(
                f"'scanners[{index}]' must be a scanner's name, got {_kind(name)}"
            )
        if name.strip() in names:
            raise ValidationError(f"scanner {name.strip()[:100]!r} is listed twice in 'scanners'")
        names.append(name.strip())
    missing = [name for name in names if name not in scanners]
    if missing:
        known = ", ".join(sorted(scanners)) or "none"
        listed = ", ".join(repr(name[:100]) for name in missing)
        raise UnknownScanner(f"unknown scanner(s) {listed}; configured scanners: {known}")
    return names


def _stripped(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


_MISSING = re.compile(r"missing required field `(\w+)`")
_AT = re.compile(r" - at `\$\.(\w+)`$")


def _refusal(fields: Mapping[str, object], error: str) -> ValidationError:
    """A ``msgspec.ValidationError`` of ``ScanCreate`` as the gateway words it."""
    missing = _MISSING.search(error)
    if missing:
        return ValidationError(f"field {missing.group(1)!r} is required")
    at = _AT.search(error)
    if at is None:  # not one field's fault
        return ValidationError(f"request body is not a scan request: {error}")
    name = at.group(1)
    value = fields[name]
    if name == "configurations":
        return ValidationError(f"field {name!r} must be an object, got {_kind(value)}")
    if not isinstance(value, str):
        return ValidationError(f"field {name!r} must be a string, got {_kind(value)}")
    if not value:
        return ValidationError(f"field {name!r} must not be empty")
    if name == "repository_name" and len(value) > MAX_REPOSITORY_NAME:
        return ValidationError(
            f"field 'repository_name' is longer than {MAX_REPOSITORY_NAME} characters"
        )
    return ValidationError(f"field {name!r} is not valid: {error}")


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def parse_bool(raw: str | None, name: str, *, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"query parameter {name!r} must be true or false, got {excerpt(raw)!r}")


def _whole_number(raw: str, name: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_NUMBER_DIGITS:
        raise BadRequest(
            f"query parameter {name!r} must be a whole number of at most "
            f"{MAX_NUMBER_DIGITS} digits, got {excerpt(raw)!r}"
        )
    return int(raw)


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"query parameter 'limit' must be a whole number, got {excerpt(raw)!r}")
    out_of_range = BadRequest(
        f"query parameter 'limit' must be between 1 and {maximum}, got {excerpt(raw)}"
    )
    # By length first: int() refuses more than 4300 digits, and costs time well before.
    if len(raw.lstrip("0")) > len(str(maximum)):
        raise out_of_range
    value = int(raw)
    if not 1 <= value <= maximum:
        raise out_of_range
    return value


def parse_cursor(raw: str | None) -> int:
    """A ``?cursor=`` (an earlier page's ``next_cursor``) as the index it starts at; absent or
    empty is the first page. Whether it is within the results is for the caller to say."""
    if raw is None or raw == "":
        return 0
    return _whole_number(raw, "cursor")


def parse_status(raw: str | None) -> Status | None:
    if raw is None or raw == "":
        return None
    try:
        return Status(raw.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise BadRequest(
            f"query parameter 'status' must be one of {known}, got {excerpt(raw)!r}"
        ) from None
