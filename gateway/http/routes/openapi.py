"""The API description: the OpenAPI document and a page that renders it.

Both are public (``auth.PUBLIC_ROUTES`` names them). The page needs nothing from elsewhere: the
document is embedded in it as data, and a script and a stylesheet from ``gateway/static``
(``docs.js``, ``docs.css``, served under ``/static/``) render it. So it works offline, and its
Content-Security-Policy allows the gateway's own files and nothing else: no other origin, no
inline code.
"""

from __future__ import annotations

import html
import json
import posixpath
from typing import Any, Final

from aiohttp import web

from gateway.http.appkeys import CONFIG
from gateway.http.openapi import DOCS_PATH, OPENAPI_PATH, build_openapi
from gateway.http.operations import operation, text, unwrapped
from gateway.http.responses import json_response

__all__ = ["openapi_document", "routes"]

routes = web.RouteTableDef()

# The page's script and stylesheet, served with the demo page's files (``demo.ASSETS``). Relative
# to the page, as its link to openapi.json is, so that it works under any path prefix.
SCRIPT: Final = posixpath.relpath("/static/docs.js", posixpath.dirname(DOCS_PATH))
STYLESHEET: Final = posixpath.relpath("/static/docs.css", posixpath.dirname(DOCS_PATH))

# The page runs the gateway's own script and style only: no other origin, no inline code.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The document ``app`` serves: its config, its routes."""
    return build_openapi(app[CONFIG], app.router.routes())


def _embedded_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docs_page(document: dict[str, Any]) -> str:
    title = html.escape(str(document.get("info", {}).get("title", "API")))
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} · API</title>\n"
        f'<link rel="stylesheet" href="{STYLESHEET}">\n</head>\n<body>\n'
        '<main id="root">\n<noscript><p>This page renders the API description with '
        'JavaScript. The document itself is <a href="openapi.json">openapi.json</a>.</p>'
        "</noscript>\n</main>\n"
        f'<script type="application/json" id="openapi">{_embedded_json(document)}</script>\n'
        f'<script src="{SCRIPT}"></script>\n</body>\n</html>\n'
    )


@routes.get(OPENAPI_PATH, name="openapi-json")
@operation(
    "getOpenAPI",
    "This OpenAPI document",
    "documentation",
    {200: unwrapped({"type": "object"}, "The OpenAPI 3.1 document (not wrapped in an envelope).")},
    auth="public",
)
async def openapi_json(request: web.Request) -> web.Response:
    # Built per request: it is cheap, and the config and routes it reads are the app's own.
    return json_response(openapi_document(request.app))


@routes.get(DOCS_PATH, name="openapi-docs")
@operation(
    "getDocs",
    "This API's documentation, readable",
    "documentation",
    {200: text("text/html", "An HTML page that renders this document.")},
    auth="public",
)
async def openapi_docs(request: web.Request) -> web.Response:
    page = docs_page(openapi_document(request.app))
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"},
    )
