"""Xployt scan gateway: starts security scans and streams their progress over SSE."""

from .app import create_app
from .config import Config, load_config

__all__ = ["Config", "create_app", "load_config"]
