"""A mock security scanner that speaks the scanner protocol the Xployt gateway calls.

It serves all four scanner kinds (``secret_scanner``, ``sast_scanner``, ``llm_scanner``,
``dast_scanner``) from one process: ``POST /scan`` or ``POST /scanners/{kind}/scan`` with
``{"scan_id", "repository_name", "configurations"}`` answers with an SSE stream of progress
events ending in a ``completed`` event that carries canned findings. Knobs in
``configurations`` make it misbehave on purpose (fail, drop, stall, malformed lines, odd
framing) so the gateway's handling of each fault can be tested. See :mod:`mock_scanner.app`.

Run it with ``python -m mock_scanner [--host 127.0.0.1] [--port 8001] [--step-delay S]``.
"""

from mock_scanner.app import create_app
from mock_scanner.config import MockScannerConfig

__all__ = ["MockScannerConfig", "create_app"]
