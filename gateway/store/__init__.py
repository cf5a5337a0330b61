"""Durable scan storage: records, per-scan event logs and results."""

from .base import Store
from .redis import RedisStore
from .sqlite import SQLiteStore

__all__ = ["RedisStore", "SQLiteStore", "Store"]
