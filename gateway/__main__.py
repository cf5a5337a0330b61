"""Command line: ``python -m gateway [serve]`` runs the gateway; ``token`` prints a JWT."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from aiohttp import web

from .app import create_app
from .auth import TokenVerifier
from .config import Config, ConfigError, load_config
from .logs import ContextFilter, JSONFormatter, RedactingAccessLogger, TokenFilter

log = logging.getLogger("gateway")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--config", help="YAML config file (default: the repo's config.yaml)")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the gateway (the default)")
    for target in (parser, serve):
        target.add_argument("--host", help="address to listen on (overrides config)")
        target.add_argument("--port", type=int, help="port to listen on (overrides config)")
    token = commands.add_parser("token", help="print a token signed with the configured secret")
    token.add_argument("--sub", required=True, help="subject: the user who will own scans")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--config", dest="token_config", help="YAML config file")
    return parser


def _serve(config: Config, host: str | None, port: int | None) -> None:
    server = replace(
        config.server,
        host=host if host is not None else config.server.host,
        port=port if port is not None else config.server.port,
    )
    config = replace(config, server=server)
    web.run_app(
        create_app(config),
        host=server.host,
        port=server.port,
        handler_cancellation=True,  # a client that goes away ends its stream at once
        access_log_class=RedactingAccessLogger,
        shutdown_timeout=server.shutdown_grace_seconds,
        print=lambda message: log.info("%s", message.strip()),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config_path = getattr(args, "token_config", None) or args.config
    try:
        config = load_config(config_path, os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        try:
            print(TokenVerifier(config.jwt).issue(args.sub, args.ttl))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    logging.basicConfig(
        level=config.logging.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(TokenFilter())
        handler.addFilter(ContextFilter())
        if config.logging.json:
            handler.setFormatter(JSONFormatter())
    _serve(config, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
