"""Command line: ``python -m gateway [serve]`` runs the gateway; ``token`` prints a JWT;
``scan`` starts a scan and ``watch`` follows one to its end."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from gateway import cli, serving
from gateway.app import create_app
from gateway.config import Config, ConfigError, load_config, merged
from gateway.http.auth import TokenVerifier
from gateway.http.logs import configure_logging

log = logging.getLogger("gateway")

CLIENT_COMMANDS = ("scan", "watch")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit with ``usage_exit_code`` (argparse: 2).

    ``scan`` and ``watch`` use 2 for a cancelled scan, so their usage errors exit 4.
    """

    usage_exit_code = 2

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_exit_code, f"{self.prog}: error: {message}\n")


def _client_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--url", help="gateway URL (default: $XPLOYT_URL, else http://127.0.0.1:<config port>)"
    )
    command.add_argument(
        "--token", help="bearer token (default: $XPLOYT_TOKEN, else one minted locally)"
    )
    command.add_argument(
        "--sub", default="cli", help="subject of a locally minted token (default: cli)"
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line (every event, then a summary) instead of a bar",
    )
    command.add_argument(
        "--max-attempts",
        type=int,
        default=10,
        help="consecutive failed stream attempts before giving up (default: 10)",
    )
    command.add_argument("--config", dest="client_config", metavar="FILE", help="YAML config file")


def _client_parser(
    commands: argparse._SubParsersAction[_Parser], name: str, summary: str
) -> argparse.ArgumentParser:
    command = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=cli.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.usage_exit_code = cli.EXIT_ERROR
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--config", help="YAML config file (default: the repo's config.yaml)")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    serve = commands.add_parser("serve", help="run the gateway (the default)")
    for target in (parser, serve):
        target.add_argument("--host", help="address to listen on (overrides config)")
        target.add_argument("--port", type=int, help="port to listen on (overrides config)")
    token = commands.add_parser("token", help="print a token signed with the configured secret")
    token.add_argument("--sub", required=True, help="subject: the user who will own scans")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--config", dest="token_config", help="YAML config file")
    scan = _client_parser(commands, "scan", "start a scan; print its id, or watch it (--watch)")
    scan.add_argument("--scanner", required=True, help="scanner name, e.g. secret_scanner")
    scan.add_argument("--repo", required=True, help="repository, e.g. owner/name")
    scan.add_argument(
        "--sse", action="store_true", help="call the real scanner (default: simulated, mock mode)"
    )
    scan.add_argument(
        "--config-json", help="scanner configurations as a JSON object, e.g. '{\"fail_at\": 50}'"
    )
    scan.add_argument("--watch", action="store_true", help="then follow it like `watch`")
    _client_arguments(scan)
    watch = _client_parser(commands, "watch", "follow a scan's progress to its end")
    watch.add_argument("scan_id", help="the scan to watch")
    watch.add_argument(
        "--last-event-id", help="resume after this event id (as printed by an earlier run)"
    )
    _client_arguments(watch)
    return parser


def _client(args: argparse.Namespace) -> int:
    """``scan`` and ``watch``: settings from arguments, environment, then config."""
    path = args.client_config or args.config
    config = functools.cache(lambda: load_config(path, os.environ))
    try:
        if args.max_attempts < 1:
            raise cli.CliError("--max-attempts must be at least 1")
        url = cli.resolve_url(args.url, os.environ, config)
        token, minted = cli.resolve_token(args.token, os.environ, config, args.sub)
        options = cli.Options(
            url=url,
            token=token,
            json=args.json,
            token_minted=minted,
            max_attempts=args.max_attempts,
        )
        if args.command == "scan":
            command = cli.ScanCommand(
                scanner=args.scanner,
                repository=args.repo,
                use_sse=args.sse,
                configurations=cli.parse_configurations(args.config_json),
                watch=args.watch,
            )
    except (cli.CliError, ConfigError) as exc:
        message = exc.message if isinstance(exc, cli.CliError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return cli.EXIT_ERROR
    try:
        if args.command == "scan":
            return asyncio.run(cli.run_scan(options, command))
        return asyncio.run(cli.run_watch(options, args.scan_id, args.last_event_id))
    except KeyboardInterrupt:
        return cli.EXIT_INTERRUPTED


def _event_loop(want_uvloop: bool) -> asyncio.AbstractEventLoop:
    """uvloop when installed (the ``fast`` extra) and not turned off; asyncio's otherwise."""
    if want_uvloop:
        try:
            import uvloop
        except ImportError:
            log.info("event loop: asyncio (install the 'fast' extra for uvloop)")
        else:
            log.info("event loop: uvloop %s", metadata.version("uvloop"))
            return uvloop.new_event_loop()
    else:
        log.info("event loop: asyncio (server.uvloop is false)")
    return asyncio.new_event_loop()


def _bind(config: Config, host: str | None, port: int | None) -> Config:
    """The config with ``--host``/``--port`` applied (and checked again: the port's bounds,
    dev_mode)."""
    server = {"host": host, "port": port}
    return merged(config, {"server": {key: v for key, v in server.items() if v is not None}})


def _serve(config: Config) -> None:
    loop = _event_loop(config.server.uvloop)
    serving.run(create_app(config), config.server, loop)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return _client(args)
    config_path = getattr(args, "token_config", None) or args.config
    try:
        config = load_config(config_path, os.environ)
        if args.command != "token":
            config = _bind(config, args.host, args.port)
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
    configure_logging(
        config.logging.level, json_lines=config.logging.json, cookie_name=config.auth.cookie_name
    )
    _serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
