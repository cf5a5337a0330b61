"""Durable scan storage: records, per-scan event logs and results."""

from .base import Store
from .sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store"]
