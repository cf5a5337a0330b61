"""``python -m mock_scanner [--host 127.0.0.1] [--port 8001] [--step-delay S] [--steps N]``."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from mock_scanner.app import create_app
from mock_scanner.config import MockScannerConfig
from mock_scanner.scenario import SCANNER_KINDS

log = logging.getLogger("mock_scanner")


def main(argv: list[str] | None = None) -> None:
    defaults = MockScannerConfig()
    parser = argparse.ArgumentParser(
        prog="python -m mock_scanner",
        description="Mock security scanner serving the Xployt scanner protocol.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port to bind (default 8001)")
    parser.add_argument(
        "--step-delay",
        type=float,
        default=defaults.step_delay,
        help=f"seconds between progress events (default {defaults.step_delay})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=defaults.steps,
        help=f"progress events per scan (default {defaults.steps})",
    )
    args = parser.parse_args(argv)
    try:
        config = MockScannerConfig(step_delay=args.step_delay, steps=args.steps)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log.info(
        "starting mock scanner on http://%s:%d (kinds: %s; POST /scan or /scanners/{kind}/scan)",
        args.host,
        args.port,
        ", ".join(SCANNER_KINDS),
    )
    web.run_app(
        create_app(config),
        host=args.host,
        port=args.port,
        print=None,
        handler_cancellation=True,
        shutdown_timeout=5.0,
    )


if __name__ == "__main__":
    main()
