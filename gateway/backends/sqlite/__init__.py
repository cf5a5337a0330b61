"""The embedded backend: one SQLite file (``store``), written by one writer (``writer``), laid
out as ``schema`` says."""

from gateway.backends.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
