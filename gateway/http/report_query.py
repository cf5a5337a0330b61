"""What a results route is asked for: JSON or SARIF, and against which baseline.

``report_query`` reads it once for every results route (a scan's, a collection's):

* ``?format=json`` or ``?format=sarif`` decides, whatever ``Accept`` says (RFC 9110 lets a
  server disregard it); another ``format`` is 400 naming it.
* Without ``format``, ``Accept`` does (RFC 9110 section 12.5.1): each of JSON and SARIF gets
  the q-value of the most specific range that matches it (exact, ``application/*``, ``*/*``),
  the higher wins, and on a tie the one named outright, else JSON. No header, an empty one or
  one that does not parse means JSON; one that accepts neither (``text/html``,
  ``application/json;q=0``) is 406.
* ``?baseline=ID`` names the report to compare with: an id of at most ``MAX_BASELINE_ID``
  letters, digits, ``-`` and ``_`` (400 otherwise). Whose it is, and whether it has results,
  is for the route to check.

Errors are the JSON error envelope whatever was asked for.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import hdrs, web

from gateway.domain.errors import BadRequest, NotAcceptable
from gateway.domain.models import strict_json
from gateway.http.operations import Param
from gateway.http.validation import excerpt

__all__ = [
    "BASELINE",
    "FORMAT",
    "FORMATS",
    "JSON_MEDIA_TYPE",
    "MAX_BASELINE_ID",
    "NOT_ACCEPTABLE",
    "SARIF_LOG",
    "SARIF_MEDIA_TYPE",
    "ReportQuery",
    "information_uri",
    "report_query",
    "sarif_response",
]

JSON_MEDIA_TYPE: Final = "application/json"
SARIF_MEDIA_TYPE: Final = "application/sarif+json"
FORMATS: Final = ("json", "sarif")
MAX_BASELINE_ID: Final = 100
_MEDIA = {"json": JSON_MEDIA_TYPE, "sarif": SARIF_MEDIA_TYPE}
_ID = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
# What a results route declares in the OpenAPI document (the scan's and a collection's alike).
FORMAT = Param(
    "ReportFormat",
    "format",
    "query",
    "`json` (the default) or `sarif` (SARIF 2.1.0, `application/sarif+json`, one document of "
    "all the results); it wins over `Accept`. Anything else is 400.",
    {"type": "string", "enum": list(FORMATS)},
)
BASELINE = Param(
    "Baseline",
    "baseline",
    "query",
    "the id of an earlier report of the caller's to compare with, by fingerprint: each finding "
    "gets `baseline_state` (`new` or `unchanged`) and the baseline's findings gone are listed "
    f"as fixed (`absent`). At most {MAX_BASELINE_ID} letters, digits, `-` or `_` (else 400); "
    "one that is not the caller's is 404, one without results 409.",
    {"type": "string", "pattern": f"^[A-Za-z0-9_-]{{1,{MAX_BASELINE_ID}}}$"},
)
NOT_ACCEPTABLE = (
    406,
    f"`Accept` names neither `{JSON_MEDIA_TYPE}` nor `{SARIF_MEDIA_TYPE}` (`not_acceptable`).",
)
# The SARIF log's outline; the OASIS schema (`$schema`) says the rest.
SARIF_LOG = {
    "type": "object",
    "description": "A SARIF 2.1.0 log, valid against the OASIS schema its `$schema` names: one "
    "run per scanner, one result per finding (see the README's Reports section).",
    "required": ["$schema", "version", "runs"],
    "properties": {
        "$schema": {"type": "string"},
        "version": {"type": "string", "enum": ["2.1.0"]},
        "runs": {"type": "array", "items": {"type": "object"}},
    },
}
_MAX_RANGES = 64  # of an Accept header (aiohttp bounds its length); the rest are not read
_Q = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)", re.ASCII)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """The answer a results route is to give."""

    format: Literal["json", "sarif"]
    baseline: str | None = None

    @property
    def sarif(self) -> bool:
        return self.format == "sarif"


def report_query(request: web.Request) -> ReportQuery:
    """The format and baseline ``request`` asks for (see the module docstring)."""
    raw = request.query.get("format")
    if raw is None or raw == "":
        chosen = _negotiate(request.headers.get(hdrs.ACCEPT, ""))
    elif raw in FORMATS:
        chosen = "sarif" if raw == "sarif" else "json"
    else:
        raise BadRequest(f"query parameter 'format' must be json or sarif, got {excerpt(raw)!r}")
    return ReportQuery(chosen, _baseline(request.query.get("baseline")))


def _baseline(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_BASELINE_ID or not _ID.fullmatch(raw):
        raise BadRequest(
            f"query parameter 'baseline' must be a scan id (at most {MAX_BASELINE_ID} letters, "
            f"digits, '-' or '_'), got {excerpt(raw)!r}"
        )
    return raw


def _negotiate(accept: str) -> Literal["json", "sarif"]:
    ranges = [_media_range(item) for item in accept.split(",")[:_MAX_RANGES]]
    read = [item for item in ranges if item is not None]
    if not read:  # no header, or nothing in it that reads as a media range
        return "json"
    json_match, sarif_match = (_best(read, _MEDIA[name]) for name in FORMATS)
    if json_match[1] <= 0 and sarif_match[1] <= 0:
        raise _not_acceptable(accept)
    # Equal q: SARIF when it is named outright (no client names it by chance).
    if sarif_match[1] > json_match[1] or (sarif_match[1] == json_match[1] and sarif_match[0] == 3):
        return "sarif"
    return "json"


def _media_range(item: str) -> tuple[str, float] | None:
    kind, _, params = item.partition(";")
    q = _quality(params)
    kind = kind.strip().lower()
    return (kind, q) if kind and q is not None else None


def _best(ranges: list[tuple[str, float]], media: str) -> tuple[int, float]:
    """(specificity, q) of the most specific range that matches ``media``; (0, 0) for none."""
    found = (0, 0.0)
    for kind, q in ranges:
        specificity = _matches(kind, media)
        if specificity > found[0]:
            found = (specificity, q)
    return found


def _matches(kind: str, media: str) -> int:
    """3 for the media type itself, 2 for its ``type/*``, 1 for ``*/*``, 0 for no match."""
    if kind == media:
        return 3
    if kind == media.split("/")[0] + "/*":
        return 2
    return 1 if kind == "*/*" else 0


def _quality(params: str) -> float | None:
    """The range's q (1 without one); ``None`` when it does not parse."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            value = value.strip()
            return float(value) if _Q.fullmatch(value) else None
    return 1.0


def _not_acceptable(accept: str) -> NotAcceptable:
    return NotAcceptable(
        f"cannot answer with any media type Accept names ({excerpt(accept)!r}); "
        f"results are {JSON_MEDIA_TYPE} or {SARIF_MEDIA_TYPE} (or pass ?format=json|sarif)"
    )


async def sarif_response(document: dict[str, Any]) -> web.Response:
    """A SARIF log as the answer, ``application/sarif+json`` (strict JSON: no NaN), encoded in
    a worker thread: the log of a scan at its bounds is tens of MiB (README, Reports)."""
    body = await asyncio.to_thread(strict_json, document)
    return web.Response(text=body, content_type=SARIF_MEDIA_TYPE, charset="utf-8")


def information_uri(request: web.Request) -> str:
    """The gateway's API docs as the client reached them: what a SARIF driver points at."""
    return str(request.url.origin().with_path("/api/v1/docs"))
