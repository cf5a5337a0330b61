"""How a route declares its OpenAPI operation: once, beside its handler.

``http.openapi`` walks the app's router and writes each route's operation from the declaration
its handler carries, as starlette's ``SchemaGenerator`` walks its routes; the method and the
path come from the router, everything else from here. A route whose handler carries none makes
the document fail to build (and the tests fail), so a new route cannot be left out. Declare
below the route decorator::

    SCAN_ID = Param("ScanId", "scan_id", "path", "the scan's id", {"type": "string"})

    @routes.delete(API + "/{scan_id}")
    @operation(
        "cancelScan",
        "Cancel a running scan",
        "scans",
        {200: enveloped(ScanDetail, "Cancelled: ...")},
        errors=(401, 403, 404, (409, "The scan already ended (`conflict`)."), 503),
        params=(SCAN_ID,),
    )
    async def cancel_scan(request: web.Request) -> web.Response: ...

- the operation id (unique), a one-line summary, and a tag (one of ``openapi.TAGS``).
- ``answers``: what the route sends on success, per status: ``enveloped(Struct, text)`` (the
  API's ``{success, data, ...}`` envelope around a Struct the document's components registry
  holds (``openapi.DOCUMENT_COMPONENTS``), a component's name, or None for ``data: null``),
  ``unwrapped(schema, text)`` (a JSON body as it is), ``text(media_type, text)`` (a string
  body) or ``no_content(text)``. ``headers`` name
  required response headers and say what they hold; ``enveloped(..., also={media: schema})``
  adds media types the status may answer with instead (``Accept``), each a whole-body schema.
- ``errors``: the error statuses it can answer. A bare status uses the document's shared
  response for it (``openapi_shared.ERROR_RESPONSES``: 400, 401, 403, 404 *scan* not found,
  408, 413, 415, 422, 429, 503); ``(status, text)`` an error envelope described for this
  route (e.g. ``(404, "No such collection ...")``).
- ``params``: ``Param``s, each a component (``components.parameters``) shared by every route
  that names it. Path parameters must match the path's ``{variables}``; they are written once
  per path.
- ``body``: the request body's Struct (``body_required=False`` when it may be absent).
- ``auth``: ``"api"`` (any credential; a method other than GET takes no query token),
  ``"public"``, ``"bearer"`` (the Authorization header only), ``"ticket"`` (any credential or
  a stream ticket), ``"metrics"`` (none, or the metrics token).
- ``permission``: what a credential must allow (``identity.principal.Permission``; the
  handler checks it with ``http.access``), or ``"none"`` for a route that acts on no scan
  (the session cookie). Every route that needs a credential declares one, the others none;
  the document lists it in the operation's security requirements.
- Texts (descriptions, header texts) may name config values as ``{config.section.key}``; they
  are filled from the gateway's config (write a literal brace twice). A parameter's schema may
  be a function of the config.

A route that is not an API operation (a static file, a catch-all for other methods) is marked
``@undocumented("why")``. One handler routed at ``/x/`` and ``/x`` gives two operations, the
second's id with ``NoSlash`` appended. ``tests/gateway/http/test_openapi.py`` checks that every
route is declared, every declared handler is routed, and ``auth="public"`` under ``/api/`` is
exactly ``auth.PUBLIC_ROUTES``; ``tests/gateway/http/test_access.py`` calls every protected
route with too few permissions, and with just the declared one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from gateway.config import Config
from gateway.identity.principal import Permission

__all__ = [
    "Answer",
    "Auth",
    "Operation",
    "Param",
    "Permission",
    "Undocumented",
    "declaration",
    "enveloped",
    "no_content",
    "operation",
    "text",
    "undocumented",
    "unwrapped",
]

Schema = dict[str, Any]
Auth = Literal["api", "public", "bearer", "ticket", "metrics"]
Handler = TypeVar("Handler", bound=Callable[..., Any])
_ATTRIBUTE: Final = "__openapi_operation__"


@dataclass(frozen=True, slots=True)
class Answer:
    """One non-error response. ``data``: what the envelope's ``data`` holds (``enveloped``)
    or the whole body's schema; ``media_type`` None: no body at all."""

    description: str
    data: type | str | Schema | None = None
    media_type: str | None = "application/json"
    envelope: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    # Other media types the same status may answer with (content negotiation), each with the
    # schema of its whole body.
    also: Mapping[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter, written once under ``components.parameters[component]``."""

    component: str
    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: Schema | Callable[[Config], Schema]


@dataclass(frozen=True, slots=True)
class Operation:
    id: str
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    errors: tuple[int | tuple[int, str], ...] = ()
    description: str | None = None
    params: tuple[Param, ...] = ()
    body: type | None = None
    body_required: bool = True
    auth: Auth = "api"
    permission: Permission | Literal["none"] | None = None  # None: not declared

    @property
    def needs_credential(self) -> bool:
        return self.auth in ("api", "bearer", "ticket")


@dataclass(frozen=True, slots=True)
class Undocumented:
    """A route the document leaves out, and why."""

    reason: str


def enveloped(
    data: type | str | Schema | None,
    description: str,
    headers: Mapping[str, str] | None = None,
    *,
    also: Mapping[str, Schema] | None = None,
) -> Answer:
    return Answer(description, data, headers=headers or {}, also=also or {})


def unwrapped(schema: type | str | Schema, description: str) -> Answer:
    return Answer(description, schema, envelope=False)


def text(media_type: str, description: str) -> Answer:
    return Answer(description, {"type": "string"}, media_type, envelope=False)


def no_content(description: str) -> Answer:
    return Answer(description, media_type=None, envelope=False)


def operation(
    id: str,
    summary: str,
    tag: str,
    answers: Mapping[int, Answer],
    *,
    errors: tuple[int | tuple[int, str], ...] = (),
    description: str | None = None,
    params: tuple[Param, ...] = (),
    body: type | None = None,
    body_required: bool = True,
    auth: Auth = "api",
    permission: Permission | Literal["none"] | None = None,
) -> Callable[[Handler], Handler]:
    """Attach this operation to the handler below it (see the module docstring)."""
    declared = Operation(
        id,
        summary,
        tag,
        answers,
        errors,
        description,
        params,
        body,
        body_required,
        auth,
        permission,
    )
    return _attach(declared)


def undocumented(reason: str) -> Callable[[Handler], Handler]:
    """Mark a routed handler as one the document leaves out, saying why."""
    return _attach(Undocumented(reason))


def _attach(declared: Operation | Undocumented) -> Callable[[Handler], Handler]:
    def attach(handler: Handler) -> Handler:
        setattr(handler, _ATTRIBUTE, declared)
        return handler

    return attach


def declaration(handler: object) -> Operation | Undocumented | None:
    """What ``handler`` declares, None if nothing."""
    declared = getattr(handler, _ATTRIBUTE, None)
    return declared if isinstance(declared, Operation | Undocumented) else None
