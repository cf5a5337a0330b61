"""The OpenAPI document: valid 3.1, built from the routes' declarations, and honest about
errors."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import PurePosixPath
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the venv
import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from yarl import URL

import gateway.http.routes
from gateway.config import config_from_dict
from gateway.http.auth import PROTECTED_PREFIX, PUBLIC_ROUTES
from gateway.http.openapi import DOCS_PATH, OPENAPI_PATH, UndeclaredRoute, build_openapi
from gateway.http.operations import Operation, Permission, declaration, enveloped, operation
from gateway.http.routes import setup_routes
from gateway.http.routes.demo import DEFAULT_SUBJECT, MAX_SUBJECT, STATIC_DIR
from gateway.http.routes.openapi import openapi_document
from gateway.http.routes.scans import LIST_DEFAULT, LIST_MAX, SCAN_ID
from gateway.http.schemas import Health
from tests.helpers import auth, error_shape, openapi_for, start_scan, stream, token
from tests.keys import public_pem

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
DOC_URI = "urn:xployt:openapi"
GOOD = {"repository_name": "acme/web", "scanner_name": "secret_scanner"}


async def served(client) -> dict[str, Any]:
    response = await client.get(OPENAPI_PATH)  # no credential: the document is public
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A 2020-12 validator for a schema of the document, its references resolved there."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    rebased = json.loads(json.dumps(schema).replace('"#/components/', f'"{DOC_URI}#/components/'))
    return jsonschema.Draft202012Validator(
        rebased, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


# The demo page's files: a file tree served by name, not API operations. The document leaves
# them out (it says so in info.description), so the comparison leaves out that one prefix.
STATIC_PREFIX = "/static/"


def routed_operations(app: web.Application) -> set[tuple[str, str]]:
    operations = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        if resource.canonical.startswith(STATIC_PREFIX):
            continue
        # aiohttp adds HEAD to every GET; OPTIONS is the CORS preflight, answered before routing.
        if route.method in ("HEAD", "OPTIONS"):
            continue
        operations.add((route.method, resource.canonical))
    return operations


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


async def test_the_served_document_is_valid_openapi_3_1(client):
    document = await served(client)
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)
    # The same document the code builds: nothing is added or lost on the way out.
    assert document == json.loads(json.dumps(openapi_document(client.app)))


async def test_every_route_is_documented_and_every_documented_operation_is_routed(client):
    routed = routed_operations(client.app)
    documented = documented_operations(await served(client))
    # A catch-all ("*") route only answers the methods a path does not have (405, or 404 where
    # the path must look absent): no operation of its own, but its path must be documented.
    fallbacks = {(method, path) for method, path in routed if method == "*"}
    documented_paths = {path for _, path in documented}
    assert {path for _, path in fallbacks} <= documented_paths
    routed -= fallbacks
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations that no route serves"
    assert not any(path.startswith(STATIC_PREFIX) for path in documented_paths)


def test_the_document_follows_the_config():
    config = config_from_dict(
        {
            "scanners": {"zeta": "http://127.0.0.1:9/scan", "alpha": "http://127.0.0.1:9/scan"},
            "auth": {"cookie_name": "sid", "query_tokens": False},
        }
    )
    document = openapi_for(config)
    validate(document, cls=OpenAPIV31SpecValidator)
    scanner = document["components"]["schemas"]["ScanCreate"]["properties"]["scanner_name"]
    assert scanner["enum"] == ["alpha", "zeta"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["sessionCookie"] == {**schemes["sessionCookie"], "in": "cookie", "name": "sid"}
    assert "queryToken" not in schemes and "queryAccessToken" not in schemes
    assert {"queryToken": []} not in document["security"]

    default = openapi_for(config_from_dict({}))
    names = {
        scheme["name"]
        for scheme in default["components"]["securitySchemes"].values()
        if scheme["type"] == "apiKey"
    }
    assert names == {"xployt_session", "ticket", "token", "access_token"}


async def test_the_document_states_the_bounds_of_the_routes(client):
    document = await served(client)
    limit = document["components"]["parameters"]["Limit"]
    assert (limit["schema"]["maximum"], limit["schema"]["default"]) == (LIST_MAX, LIST_DEFAULT)
    assert f"outside 1-{LIST_MAX} is 400" in limit["description"]
    subject = document["components"]["schemas"]["DevTokenRequest"]["properties"]["subject"]
    assert (subject["maxLength"], subject["default"]) == (MAX_SUBJECT, DEFAULT_SUBJECT)


def test_declared_texts_and_parameters_follow_the_config():
    config = config_from_dict(
        {"findings": {"page_size": 7, "max_page_size": 70, "max_per_scan": 1234}}
    )
    document = openapi_for(config)
    validate(document, cls=OpenAPIV31SpecValidator)
    page = document["components"]["parameters"]["ResultsLimit"]
    assert (page["schema"]["maximum"], page["schema"]["default"]) == (70, 7)
    assert "(`findings.page_size`, 7, when absent); outside 1-70 " in page["description"]
    results = document["paths"]["/api/v1/scans/{scan_id}/results"]["get"]
    assert "`findings.max_per_scan` findings (1234)" in results["description"]
    cookie = document["paths"]["/api/v1/auth/session"]["post"]["responses"]["200"]["headers"]
    assert cookie["Set-Cookie"]["description"].startswith("`xployt_session=<the token>;")


def routed_app(*extra: tuple[str, str, Any]) -> web.Application:
    """An app with the gateway's routes and ``extra`` ones (method, path, handler)."""
    app = web.Application()
    setup_routes(app)
    for method, path, handler in extra:
        app.router.add_route(method, path, handler)
    return app


async def undeclared(request: web.Request) -> web.Response:
    return web.Response()


@operation(
    "health2", "Liveness again", "operations", {200: enveloped(Health, "ok")}, permission="none"
)
async def declared_elsewhere(request: web.Request) -> web.Response:
    return web.Response()


@operation(
    "getThing",
    "Read a thing",
    "scans",
    {200: enveloped(Health, "ok")},
    params=(SCAN_ID,),
    permission=Permission.READ,
)
async def needs_scan_id(request: web.Request) -> web.Response:
    return web.Response()


@operation("untagged", "A thing", "no-such-tag", {200: enveloped(Health, "ok")}, permission="none")
async def untagged(request: web.Request) -> web.Response:
    return web.Response()


@operation("unguarded", "A thing", "scans", {200: enveloped(Health, "ok")})
async def no_permission(request: web.Request) -> web.Response:
    return web.Response()


@operation(
    "overguarded",
    "A thing",
    "operations",
    {200: enveloped(Health, "ok")},
    auth="public",
    permission="none",
)
async def public_with_permission(request: web.Request) -> web.Response:
    return web.Response()


def test_a_route_without_a_declaration_fails_the_document():
    config = config_from_dict({})
    for method in ("GET", "POST", "*"):
        app = routed_app((method, "/api/v1/undeclared", undeclared))
        expected = re.escape(f"{method} /api/v1/undeclared: undeclared declares no operation")
        with pytest.raises(UndeclaredRoute, match=expected):
            build_openapi(config, app.router.routes())
    # A declared one is written, under the router's method and path.
    app = routed_app(("GET", "/api/v1/health2", declared_elsewhere))
    document = build_openapi(config, app.router.routes())
    assert document["paths"]["/api/v1/health2"]["get"]["operationId"] == "health2"


def test_a_declaration_that_does_not_fit_its_path_fails_the_document():
    config = config_from_dict({})
    for path in ("/api/v1/things", "/api/v1/things/{thing_id}"):
        app = routed_app(("GET", path, needs_scan_id))
        expected = re.escape(f"GET {path}: its declared path parameters do not match")
        with pytest.raises(UndeclaredRoute, match=expected):
            build_openapi(config, app.router.routes())
    app = routed_app(("GET", "/api/v1/things", untagged))
    with pytest.raises(UndeclaredRoute, match="GET /api/v1/things: no tag 'no-such-tag'"):
        build_openapi(config, app.router.routes())
    app = routed_app(("GET", "/api/v1/things/{scan_id}", needs_scan_id))
    item = build_openapi(config, app.router.routes())["paths"]["/api/v1/things/{scan_id}"]
    assert item["parameters"] == [{"$ref": "#/components/parameters/ScanId"}]


def test_a_protected_route_declares_its_permission_and_only_it_does():
    config = config_from_dict({})
    for handler in (no_permission, public_with_permission):
        app = routed_app(("GET", "/api/v1/things", handler))
        with pytest.raises(UndeclaredRoute, match="GET /api/v1/things: a route that needs a cre"):
            build_openapi(config, app.router.routes())
    # The permission is the role every security requirement of the operation names.
    app = routed_app(("GET", "/api/v1/things/{scan_id}", needs_scan_id))
    operation = build_openapi(config, app.router.routes())["paths"]["/api/v1/things/{scan_id}"]
    assert operation["get"]["security"] == [
        {"bearerAuth": ["scans:read"]},
        {"sessionCookie": ["scans:read"]},
        {"queryToken": ["scans:read"]},
        {"queryAccessToken": ["scans:read"]},
    ]


def declared_handlers() -> dict[str, Any]:
    """Every handler in the route modules that declares an operation, by qualified name."""
    handlers = {}
    for module_info in pkgutil.iter_modules(gateway.http.routes.__path__):
        module = importlib.import_module(f"gateway.http.routes.{module_info.name}")
        for name, value in vars(module).items():
            if callable(value) and isinstance(declaration(value), Operation):
                handlers[f"{module.__name__}.{name}"] = value
    return handlers


def test_every_declared_operation_is_on_the_router():
    handlers = declared_handlers()
    assert len(handlers) >= 16  # the walk finds them
    routed = {route.handler for route in routed_app().router.routes()}
    unrouted = {name for name, handler in handlers.items() if handler not in routed}
    assert unrouted == set(), "operations declared for handlers that no route serves"
    ids = [declaration(handler).id for handler in handlers.values()]  # type: ignore[union-attr]
    assert len(ids) == len(set(ids)), "two declarations share an operation id"


def test_public_operations_are_the_routes_the_auth_middleware_lets_through():
    for route in routed_app().router.routes():
        declared = declaration(route.handler)
        resource = route.resource
        assert resource is not None
        if not isinstance(declared, Operation) or not resource.canonical.startswith(
            PROTECTED_PREFIX
        ):
            continue
        assert (declared.auth == "public") == (route.name in PUBLIC_ROUTES), resource.canonical


async def test_public_and_protected_operations_are_marked(client):
    document = await served(client)
    public = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and operation.get("security") == []
    }
    assert ("GET", OPENAPI_PATH) in public and ("GET", DOCS_PATH) in public
    assert ("DELETE", "/api/v1/auth/session") in public
    # Every protected /api/ operation documents its 401, with the challenge header.
    for method, path in documented_operations(document) - public:
        if not path.startswith("/api/"):
            continue
        responses = document["paths"][path][method.lower()]["responses"]
        assert responses["401"] == {"$ref": "#/components/responses/Unauthorized"}, (method, path)
    unauthorized = document["components"]["responses"]["Unauthorized"]
    assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True


def linked(page: str, base: URL) -> dict[str, list[str]]:
    """The paths the page's ``<script src>`` and ``<link href>`` point at, as the browser
    resolves them against the page's URL."""
    return {
        kind: [base.join(URL(target)).path for target in re.findall(pattern, page, re.I)]
        for kind, pattern in (
            ("script", r'<script\b[^>]*\ssrc="([^"]*)"'),
            ("link", r'<link\b[^>]*\shref="([^"]*)"'),
        )
    }


async def test_the_docs_page_renders_the_document_with_its_own_assets_only(client):
    response = await client.get(DOCS_PATH)  # no credential: public
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    # Its script and stylesheet are the gateway's own files; no image, frame or inline code.
    assert linked(page, client.make_url(DOCS_PATH)) == {
        "script": ["/static/docs.js"],
        "link": ["/static/docs.css"],
    }
    assert not re.search(r"<(img|iframe|object|embed|style)\b", page, re.IGNORECASE)
    for attributes in re.findall(r"<script\b([^>]*)>", page):  # a file, or data that never runs
        assert ' src="' in attributes or ' type="application/json"' in attributes, attributes
    assert "http://" not in page and "https://" not in page
    # The browser is held to that too.
    csp = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == "'self'"
    assert "unsafe" not in csp and "http" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # The document is embedded as data, escaped so that it cannot end its <script> element.
    embedded = re.search(
        r'<script type="application/json" id="openapi">(.*?)</script>', page, re.DOTALL
    )
    assert embedded is not None
    assert json.loads(embedded.group(1)) == await served(client)
    assert "</" not in embedded.group(1)


# A JavaScript MIME type (the HTML standard accepts both); with nosniff, a browser runs a
# script or applies a stylesheet only under one of these.
ASSET_TYPES = {".js": {"text/javascript", "application/javascript"}, ".css": {"text/css"}}


async def test_the_docs_page_assets_are_served_with_their_content_types(client):
    page = await (await client.get(DOCS_PATH)).text()
    assets = [path for paths in linked(page, client.make_url(DOCS_PATH)).values() for path in paths]
    assert sorted(assets) == ["/static/docs.css", "/static/docs.js"]
    for path in assets:
        response = await client.get(path)  # no credential, as the browser asks for it
        assert response.status == 200, path
        assert response.content_type in ASSET_TYPES[PurePosixPath(path).suffix], path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        body = await response.read()
        assert body == (STATIC_DIR / PurePosixPath(path).name).read_bytes()
        # Nothing from elsewhere here either.
        assert not re.search(rb"https?://|@import|url\(", body), path


async def test_the_error_schema_is_what_the_error_middleware_produces(client):
    document = await served(client)
    errors = validator(document, {"$ref": "#/components/schemas/Error"})
    samples = [
        await client.get("/api/v1/scans/no-such-scan", headers=auth()),  # 404 scan_not_found
        await client.get("/no/such/route"),  # 404 from the router
        await client.get("/api/v1/scans/"),  # 401, no credential
        await client.put("/api/v1/scans/", headers=auth()),  # 405
        await client.post(
            "/api/v1/scans/", data=b"{", headers={**auth(), "Content-Type": "application/json"}
        ),  # 400 invalid_json
        await client.post("/api/v1/scans/", json={"repository_name": "a/b"}, headers=auth()),
    ]
    assert [response.status for response in samples] == [404, 404, 401, 405, 400, 422]
    for response in samples:
        body = await response.json()
        error_shape(body)
        errors.validate(body)
    # The schema is not vacuous: a success envelope is not an error.
    ok = await (await client.get("/healthz")).json()
    assert not errors.is_valid(ok)
    assert not errors.is_valid({**body, "extra": 1})


def conforms(document: dict[str, Any], method: str, path: str, status: int, headers, body):
    """The answer is one the document gives for that operation: status, headers and body."""
    operation = document["paths"][path][method.lower()]
    assert str(status) in operation["responses"], (method, path, status)
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    for name, header in response.get("headers", {}).items():
        assert not header.get("required") or name in headers, (method, path, status, name)
    (media_type, content), *_ = response["content"].items()
    assert headers["Content-Type"].split(";")[0] == media_type
    validator(document, content["schema"]).validate(body)


async def test_answers_the_fuzzing_cannot_reach_match_the_document(gateway, scanner):
    """Limits, readiness, metrics and origin checks, each under the config that causes it."""
    client = await gateway(
        limits={"max_running_scans_per_subject": 1, "max_streams_per_subject": 1},
        readiness={"scanner_health_urls": {"secret_scanner": str(scanner.make_url("/nope"))}},
        metrics={"token": "metrics-secret"},
        server={"max_body_bytes": 1024},
    )
    document = await served(client)
    running = await start_scan(client, use_sse=True, configurations={"step_delay": 5})
    scans, scan = "/api/v1/scans/", "/api/v1/scans/{scan_id}"
    stream = f"/api/v1/scans/{running}/stream"
    form = {**auth(), "Content-Type": "application/x-www-form-urlencoded"}
    foreign_cookie = {"Cookie": f"xployt_session={token()}", "Origin": "https://else.example"}
    big = {**GOOD, "configurations": {"x": "y" * 2000}}
    # (documented operation, request, expected status)
    cases: list[tuple[str, str, tuple[str, str, dict[str, Any]], int]] = [
        ("POST", scans, ("POST", scans, {"json": GOOD, "headers": auth()}), 429),
        ("POST", scans, ("POST", scans, {"json": big, "headers": auth()}), 413),
        ("POST", scans, ("POST", scans, {"data": "a=b", "headers": form}), 415),
        ("GET", "/readyz", ("GET", "/readyz", {}), 503),
        ("GET", "/metrics", ("GET", "/metrics", {}), 401),
        ("POST", "/api/v1/dev/token", ("POST", "/api/v1/dev/token", {"headers": auth()}), 404),
        ("POST", "/api/v1/dev/token", ("POST", "/api/v1/dev/token", {}), 401),
        ("DELETE", scan, ("DELETE", f"{scans}{running}", {"headers": foreign_cookie}), 403),
        (
            "POST",
            "/api/v1/auth/session",
            ("POST", "/api/v1/auth/session", {"headers": foreign_cookie}),
            403,
        ),
    ]
    async with client.get(stream, headers=auth()) as first:  # the subject's one stream
        assert first.status == 200
        cases.append(
            ("GET", "/api/v1/scans/{scan_id}/stream", ("GET", stream, {"headers": auth()}), 429)
        )
        for method, path, (verb, url, options), expected in cases:
            response = await client.request(verb, url, **options)
            assert response.status == expected, (verb, url, await response.text())
            body = await response.json()
            conforms(document, method, path, response.status, response.headers, body)
            if path == "/readyz":
                assert body["data"]["checks"]["scanner:secret_scanner"] == "HTTP 404"


def test_the_document_describes_the_identity_providers_tokens():
    oidc = {"algorithms": ["RS256", "ES256"], "oidc_issuer": "https://id.example/realms/x/"}
    document = openapi_for(config_from_dict({"jwt": oidc}))
    validate(document, cls=OpenAPIV31SpecValidator)
    schemes = document["components"]["securitySchemes"]
    assert schemes["openIdConnect"]["openIdConnectUrl"] == (
        "https://id.example/realms/x/.well-known/openid-configuration"
    )
    assert "OpenID provider `https://id.example/realms/x/`" in schemes["bearerAuth"]["description"]
    assert "`scans:admin`" in schemes["bearerAuth"]["description"]
    start = document["paths"]["/api/v1/scans/"]["post"]
    assert {"openIdConnect": ["scans:write"]} in start["security"]
    assert {"queryToken": ["scans:write"]} not in start["security"]  # no change by URL
    stream = document["paths"]["/api/v1/scans/{scan_id}/stream"]["get"]
    assert {"streamTicket": ["scans:read"]} in stream["security"]
    for style, needle in (
        ({"jwks_url": "https://id.example/certs"}, "the identity provider's key set"),
        ({"public_key": public_pem("rsa")}, "the key whose public half is `jwt.public_key`"),
        ({}, "the shared secret `jwt.secret`"),
    ):
        jwt_config = {"algorithms": ["RS256"], **style} if style else {}
        schemes = openapi_for(config_from_dict({"jwt": jwt_config}))["components"]
        assert needle in schemes["securitySchemes"]["bearerAuth"]["description"]
        assert "openIdConnect" not in schemes["securitySchemes"]


async def test_results_against_a_baseline_match_the_document(client):
    """Each finding against a baseline carries ``fingerprint`` and ``baseline_state``: the
    document's finding allows them (it allows nothing else it does not name)."""
    document = await served(client)
    before = await start_scan(client, use_sse=True)
    after = await start_scan(client, use_sse=True, scanner="sast_scanner")
    await stream(client, before)
    await stream(client, after)
    response = await client.get(
        f"/api/v1/scans/{after}/results", params={"baseline": before}, headers=auth()
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    findings = body["data"]["vulnerabilities"]
    assert findings and {f["baseline_state"] for f in findings} == {"new"}
    path = "/api/v1/scans/{scan_id}/results"
    conforms(document, "GET", path, 200, response.headers, body)
    plain = await client.get(f"/api/v1/scans/{after}/results", headers=auth())
    conforms(document, "GET", path, 200, plain.headers, await plain.json())
    findings[0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        conforms(document, "GET", path, 200, response.headers, body)
