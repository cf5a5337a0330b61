"""Xployt scan gateway: starts security scans and streams their progress over SSE."""

from gateway.app import create_app
from gateway.config import Config, load_config

__all__ = ["Config", "create_app", "load_config"]
