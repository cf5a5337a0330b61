"""The mock scanner as the bench runs it: no access log, warnings only.

``python bench/mock_server.py --port P`` serves ``mock_scanner.create_app()`` on 127.0.0.1 with
handler cancellation, as ``python -m mock_scanner`` does, but without a log line per request
(the bench publishes hundreds of events per second through it).
"""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from mock_scanner import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    web.run_app(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handler_cancellation=True,
        shutdown_timeout=2.0,
        backlog=1024,
    )


if __name__ == "__main__":
    main()
