"""The gateway's OpenAPI 3.1 document, assembled from its route table.

``build_openapi(config, routes)`` walks the routes (``app.router.routes()``), as starlette's
``SchemaGenerator`` does, and writes each one's operation from the declaration beside its
handler (``operations``: how to declare one): the method and the path come from the router,
the rest from the declaration. A route without one fails the build (``UndeclaredRoute``). The
components are the Structs ``schemas`` and ``collection_schemas`` register, in one registry
(``DOCUMENT_COMPONENTS``, see ``components``); the parts every operation shares (error
responses by status, security schemes, the config-bound schemas) come from ``openapi_shared``;
texts may name config values, filled here from the gateway's config.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from importlib import metadata
from typing import Any, Final

from aiohttp import web

from gateway.config import Config
from gateway.http import openapi_shared as shared
from gateway.http.collection_schemas import COLLECTION_COMPONENTS
from gateway.http.components import Components
from gateway.http.operations import Answer, Operation, Param, Undocumented, declaration
from gateway.http.schemas import COMPONENTS

__all__ = [
    "DOCS_PATH",
    "DOCUMENT_COMPONENTS",
    "OPENAPI_PATH",
    "TAGS",
    "UndeclaredRoute",
    "build_openapi",
]

OPENAPI_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/v1/docs"
# The groups of operations, in the order the docs page shows them: each declaration names one.
TAGS: Final = {
    "scans": "Start, list, read and cancel scans.",
    "collections": "Several scanners on one repository, watched and reported as one.",
    "stream": "Watch a scan's events as they happen.",
    "auth": "The session cookie, for browsers.",
    "operations": "Probes and metrics (no token).",
    "pages": "HTML pages.",
    "development": "Development conveniences.",
    "documentation": "This document.",
}

Schema = dict[str, Any]
_PATH_VARIABLE = re.compile(r"\{(\w+)")
# Every Struct the document names, from both modules of shapes (the collections' listed first,
# as the document always has them).
DOCUMENT_COMPONENTS: Final[Components] = COLLECTION_COMPONENTS | COMPONENTS


class UndeclaredRoute(LookupError):
    """A route whose handler declares no operation (and is not marked undocumented), or whose
    declaration does not fit its path."""


@functools.cache
def _generated() -> dict[str, Schema]:
    """The components declared once in ``gateway.http.schemas`` and ``collection_schemas``:
    the same for every config."""
    return DOCUMENT_COMPONENTS.schemas()


def _schemas(config: Config) -> dict[str, Schema]:
    schemas = copy.deepcopy(_generated())
    scanners = sorted(config.scanners)
    if scanners:
        schemas["ScanCreate"]["properties"]["scanner_name"]["enum"] = scanners
        listed = schemas["CollectionCreate"]["properties"]["scanners"]
        listed["items"]["enum"] = scanners
        listed.update(maxItems=len(scanners), uniqueItems=True)
    for name in ("Results", "CollectionResults"):
        schemas[name]["properties"]["vulnerabilities"]["maxItems"] = config.findings.max_page_size
    schemas["Results"]["properties"]["vulnerabilities"]["items"] = shared.ref("Vulnerability")
    return schemas | shared.schemas(config)


def _fill(text: str, config: Config) -> str:
    """A declared text with its ``{config.section.key}`` values filled in."""
    return text.format(config=config)


def _shape(data: type | str | Schema | None) -> Schema:
    """A declared shape: a Struct of ``schemas``, a component's name, a schema, or null."""
    if data is None:
        return {"type": "null"}
    if isinstance(data, type):
        return shared.ref(DOCUMENT_COMPONENTS.name(data))
    if isinstance(data, str):
        return shared.ref(data)
    return data


def _envelope(data: Schema) -> Schema:
    """The success envelope (``schemas.Envelope``) with ``data`` of the given schema."""
    envelope = _generated()["Envelope"]
    fields = {**envelope["properties"], "data": data}
    return {
        key: value for key, value in envelope.items() if key not in ("title", "description")
    } | {"properties": fields}


def _answer(answer: Answer, config: Config) -> Schema:
    response: Schema = {"description": _fill(answer.description, config)}
    if answer.media_type is not None:
        schema = _shape(answer.data)
        schema = _envelope(schema) if answer.envelope else schema
        response["content"] = {answer.media_type: {"schema": schema}}
        response["content"] |= {media: {"schema": also} for media, also in answer.also.items()}
    if answer.headers:
        response["headers"] = {
            name: shared.header(_fill(text, config), {"type": "string"})
            for name, text in answer.headers.items()
        }
    return response


def _responses(declared: Operation, config: Config) -> Schema:
    responses = {status: _answer(answer, config) for status, answer in declared.answers.items()}
    for entry in declared.errors:
        if isinstance(entry, int):
            responses[entry] = {"$ref": f"#/components/responses/{shared.ERROR_RESPONSES[entry]}"}
        else:
            status, why = entry
            responses[status] = shared.error(_fill(why, config))
    return {str(status): responses[status] for status in sorted(responses)}


def _parameter(param: Param, config: Config) -> Schema:
    schema = param.schema(config) if callable(param.schema) else param.schema
    return {
        "name": param.name,
        "in": param.where,
        "required": param.where == "path",
        "description": _fill(param.description, config),
        "schema": schema,
    }


def _param_ref(param: Param) -> Schema:
    return {"$ref": f"#/components/parameters/{param.component}"}


def _operation(declared: Operation, method: str, op_id: str, config: Config) -> Schema:
    operation: Schema = {"operationId": op_id, "summary": declared.summary, "tags": [declared.tag]}
    if declared.description:
        operation["description"] = _fill(declared.description, config)
    others = [_param_ref(param) for param in declared.params if param.where != "path"]
    if others:
        operation["parameters"] = others
    if declared.body is not None:
        operation["requestBody"] = {
            "required": declared.body_required,
            "content": {"application/json": {"schema": _shape(declared.body)}},
        }
    security = shared.security(config, declared.auth, method, declared.permission)
    if security is not None:
        operation["security"] = security
    operation["responses"] = _responses(declared, config)
    return operation


def _documented(routes: Iterable[web.AbstractRoute]) -> list[tuple[str, str, Operation]]:
    """(method, path, declaration) of every documented route, in the router's order."""
    routed = [(route.method, route.resource, route.handler) for route in routes]
    gets = {(resource, handler) for method, resource, handler in routed if method == "GET"}
    documented = []
    for method, resource, handler in routed:
        if resource is None or (method == "HEAD" and (resource, handler) in gets):
            continue  # aiohttp's HEAD beside each GET
        declared = declaration(handler)
        if declared is None:
            raise UndeclaredRoute(
                f"{method} {resource.canonical}: {handler.__qualname__} declares no operation "
                "(see gateway.http.operations)"
            )
        if isinstance(declared, Operation) and declared.tag not in TAGS:
            raise UndeclaredRoute(f"{method} {resource.canonical}: no tag {declared.tag!r}")
        if isinstance(declared, Operation) and (
            (declared.permission is None) == declared.needs_credential
        ):
            raise UndeclaredRoute(
                f"{method} {resource.canonical}: a route that needs a credential declares the "
                "permission it needs (or 'none'), and only such a route does"
            )
        if not isinstance(declared, Undocumented):
            documented.append((method, resource.canonical, declared))
    return documented


def _operation_id(declared: Operation, method: str, path: str, served: set[tuple[str, str]]) -> str:
    """The declared id; a path that is another's without its trailing slash adds ``NoSlash``."""
    return declared.id + ("NoSlash" if (method, path + "/") in served else "")


def _path_params(declared: Operation, method: str, path: str) -> list[Param]:
    params = [param for param in declared.params if param.where == "path"]
    if sorted(param.name for param in params) != sorted(_PATH_VARIABLE.findall(path)):
        raise UndeclaredRoute(f"{method} {path}: its declared path parameters do not match it")
    return params


def _paths(config: Config, routes: Iterable[web.AbstractRoute]) -> tuple[Schema, Schema]:
    """The paths, and the parameters they name (``components.parameters``)."""
    documented = _documented(routes)
    served = {(method, path) for method, path, _ in documented}
    paths: dict[str, Schema] = {}
    parameters: dict[str, Schema] = {}
    for method, path, declared in documented:
        for param in declared.params:
            written = _parameter(param, config)
            if parameters.setdefault(param.component, written) != written:
                raise UndeclaredRoute(f"two parameters are named {param.component!r}")
        item = paths.setdefault(path, {})
        path_params = _path_params(declared, method, path)
        if path_params:
            item["parameters"] = [_param_ref(param) for param in path_params]
        op_id = _operation_id(declared, method, path, served)
        item[method.lower()] = _operation(declared, method, op_id, config)
    return paths, parameters


def _version() -> str:
    try:
        return metadata.version("xployt-gateway")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def build_openapi(config: Config, routes: Iterable[web.AbstractRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway ``config`` describes, serving ``routes``."""
    paths, parameters = _paths(config, routes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Xployt scan gateway",
            "version": _version(),
            "summary": "Start security scans and watch their progress over Server-Sent Events.",
            "description": (
                "Every `/api/` route needs a credential (a bearer JWT, the session cookie or, "
                "where enabled, a query token) except the ones marked public here. Every JSON "
                "answer has one envelope, `{success, data, message, timestamp}`, and every "
                "error the same shape `{success: false, data: null, error, message, detail, "
                "timestamp}` (`components.schemas.Error`) with the matching status. A method "
                "a path does not have is 405 with `Allow`; a path that does not exist is 404 "
                "(401 first under `/api/` without a credential). Origins listed in "
                "`cors.allowed_origins` get `Access-Control-Allow-Origin` (their own) with "
                "credentials on every answer; CORS preflights (`OPTIONS` with "
                "`Access-Control-Request-Method`) are answered 204 before routing. Static files "
                "of the demo page are served under `/static/` and not described here."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "security": shared.api_security(config),
        "paths": paths,
        "components": {
            "schemas": _schemas(config),
            "responses": shared.responses(config),
            "parameters": parameters,
            "securitySchemes": shared.security_schemes(config),
        },
    }
