"""What the current log records are about: the request and the scan, set per request and per
scan task (contextvars, so each task sees its own). ``logs`` stamps them on every record."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["request_id_var", "scan_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
scan_id_var: ContextVar[str | None] = ContextVar("scan_id", default=None)
