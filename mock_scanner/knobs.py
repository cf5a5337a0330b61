"""A scan request to the mock scanner: its body and its knobs, validated.

:func:`parse_scan` turns a ``POST /scan`` body into a :class:`Scan` (what to stream and how
its :class:`Knobs` make it misbehave) or a :class:`BadRequest` (answered ``400`` with
``{"error": code, "message": text}`` by :func:`error_response`). The knobs themselves are
documented in :mod:`mock_scanner.app`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, NoReturn, cast

from aiohttp import web

from mock_scanner import scenario
from mock_scanner.config import MockScannerConfig

Format = Literal["sse", "ndjson", "json"]

_FORMATS: Final = ("sse", "ndjson", "json")
_PROGRESS_FIELDS: Final = ("progress_percent", "progress")
_LINE_ENDINGS: Final = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
_MIN_HEARTBEAT: Final = 0.01
_MAX_HEARTBEAT: Final = 3600.0


class BadRequest(Exception):
    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def _bad(error: str, message: str) -> NoReturn:
    raise BadRequest(error, message)


@dataclass(frozen=True)
class Knobs:
    step_delay: float
    steps: int
    fail_at: int | None = None
    drop_at: int | None = None
    stall_at: int | None = None
    heartbeat: float | None = None
    malformed: int = 0
    format: Format = "sse"
    progress_field: str = "progress_percent"
    line_ending: str = "\n"
    status_code: int | None = None
    content_type: str | None = None
    bom: bool = False
    bench: bool = False
    stamp_emit: bool = False
    findings_of: str | None = None


@dataclass(frozen=True)
class Scan:
    scan_id: str
    repository_name: str
    kind: str
    knobs: Knobs


def _int_knob(conf: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = conf.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _bad("invalid_configuration", f"configurations.{name} must be an integer in {low}..{high}")
    return value


def _float_knob(conf: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = conf.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        _bad("invalid_configuration", f"configurations.{name} must be a number in {low}..{high}")
    return float(value)


def _choice_knob(conf: dict[str, Any], name: str, choices: tuple[str, ...]) -> str | None:
    value = conf.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        _bad("invalid_configuration", f"configurations.{name} must be one of: {', '.join(choices)}")
    return value


def _parse_knobs(conf: dict[str, Any], config: MockScannerConfig) -> Knobs:
    step_delay = _float_knob(conf, "step_delay", 0.0, config.max_step_delay)
    steps = _int_knob(conf, "steps", 1, config.max_steps)
    heartbeat = _float_knob(conf, "heartbeat", _MIN_HEARTBEAT, _MAX_HEARTBEAT)
    fmt = _choice_knob(conf, "format", _FORMATS)
    field_name = _choice_knob(conf, "progress_field", _PROGRESS_FIELDS)
    ending = _choice_knob(conf, "line_ending", tuple(_LINE_ENDINGS))
    content_type = conf.get("content_type")
    if content_type is not None and (
        not isinstance(content_type, str)
        or not content_type.strip()
        or len(content_type) > 200
        or not content_type.isprintable()
    ):
        _bad(
            "invalid_configuration",
            "configurations.content_type must be a non-empty printable string of at most 200 "
            "characters",
        )
    bom = conf.get("bom")
    if bom is not None and not isinstance(bom, bool):
        _bad("invalid_configuration", "configurations.bom must be true or false")
    bench = conf.get("bench")
    if bench is not None and not isinstance(bench, bool):
        _bad("invalid_configuration", "configurations.bench must be true or false")
    if bench and fmt not in (None, "sse"):
        _bad("invalid_configuration", "configurations.bench needs format sse")
    stamp_emit = conf.get("stamp_emit")
    if stamp_emit is not None and (not isinstance(stamp_emit, bool) or (stamp_emit and not bench)):
        _bad(
            "invalid_configuration",
            "configurations.stamp_emit must be a bool, true only with bench",
        )
    return Knobs(
        step_delay=config.step_delay if step_delay is None else step_delay,
        steps=config.steps if steps is None else steps,
        fail_at=_int_knob(conf, "fail_at", 0, 100),
        drop_at=_int_knob(conf, "drop_at", 0, 100),
        stall_at=_int_knob(conf, "stall_at", 0, 100),
        heartbeat=heartbeat,
        malformed=_int_knob(conf, "malformed", 0, config.max_malformed) or 0,
        format=cast(Format, "sse" if fmt is None else fmt),
        progress_field="progress_percent" if field_name is None else field_name,
        line_ending=_LINE_ENDINGS["lf" if ending is None else ending],
        status_code=_int_knob(conf, "status_code", 400, 599),
        content_type=content_type,
        bom=bool(bom),
        bench=bool(bench),
        stamp_emit=bool(stamp_emit),
        findings_of=_choice_knob(conf, "findings_of", scenario.SCANNER_KINDS),
    )


def parse_scan(
    raw: bytes, path_kind: str | None, query_kind: str | None, config: MockScannerConfig
) -> tuple[Scan | None, BadRequest | None, dict[str, Any]]:
    """The scan a request asks for, or what is wrong with it, and its ``/requests`` entry."""
    body: Any = None
    error: BadRequest | None = None
    try:
        body = json.loads(raw)
    except ValueError:
        error = BadRequest("invalid_json", "the request body is not valid JSON")
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    kind: Any = path_kind
    if kind is None:
        kind = fields.get("scanner", query_kind)
        if kind is None:
            kind = config.default_kind
    scan_id = fields.get("scan_id")
    entry = {
        "scan_id": scan_id if isinstance(scan_id, str) else None,
        "kind": kind if isinstance(kind, str) else None,
        "received_at": datetime.now(UTC).isoformat(),
    }
    if error is not None:
        return None, error, entry
    try:
        return validate(body, kind, config), None, entry
    except BadRequest as exc:
        return None, exc, entry


def validate(body: Any, kind: Any, config: MockScannerConfig) -> Scan:
    if not isinstance(body, dict):
        _bad("invalid_body", "the request body must be a JSON object")
    for name in ("scan_id", "repository_name"):
        value = body.get(name)
        if value is None:
            _bad("missing_field", f"{name} is required")
        if not isinstance(value, str) or not value.strip():
            _bad("invalid_field", f"{name} must be a non-empty string")
    conf = body.get("configurations")
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        _bad("invalid_field", "configurations must be a JSON object")
    if not isinstance(kind, str):
        _bad("invalid_field", "scanner must be a string")
    if kind not in scenario.SCANNER_KINDS:
        _bad(
            "unknown_scanner",
            f"unknown scanner kind {kind!r}; expected one of: {', '.join(scenario.SCANNER_KINDS)}",
        )
    return Scan(body["scan_id"], body["repository_name"], kind, _parse_knobs(conf, config))


def error_response(exc: BadRequest) -> web.Response:
    return web.json_response({"error": exc.error, "message": exc.message}, status=400)
