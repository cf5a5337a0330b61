"""The floor under the gateway's memory per idle stream: a bare aiohttp SSE server, on uvloop as
the gateway is, that keeps per stream only what aiohttp keeps and one future.

    GET  /sub/{ch}  -> text/event-stream (chunked), a retry hint, then each published body
    POST /pub/{ch}  -> the body, sent as one ``data:`` event to every subscriber of ``ch``

Run by the shared harness like any anchor (see docs/BENCHMARKS.md, "Memory per idle stream"):

    python bench/bare_aiohttp_sse.py --port 18090
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from aiohttp import web

SUBSCRIBERS: web.AppKey[dict[str, set[web.StreamResponse]]] = web.AppKey("subscribers", dict)


async def subscribe(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"retry: 3000\n\n")
    channel = request.app[SUBSCRIBERS].setdefault(request.match_info["ch"], set())
    channel.add(response)
    try:
        await asyncio.get_running_loop().create_future()  # until the client goes away
    finally:
        channel.discard(response)
    return response


async def publish(request: web.Request) -> web.Response:
    frame = b"data: " + await request.read() + b"\n\n"
    subscribers = list(request.app[SUBSCRIBERS].get(request.match_info["ch"], ()))
    for response in subscribers:
        with contextlib.suppress(ConnectionResetError):  # gone; its handler ends with it
            await response.write(frame)
    return web.json_response({"subscribers": len(subscribers)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    app = web.Application()
    app[SUBSCRIBERS] = {}
    app.router.add_get("/sub/{ch}", subscribe)
    app.router.add_post("/pub/{ch}", publish)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
