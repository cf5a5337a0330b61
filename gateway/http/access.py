"""What the caller may do: the permission each action needs, and which scans and scan
collections it can see.

A caller sees its own scans and collections; with ``scans:admin`` any subject's; with a stream
ticket the one scan or collection the ticket names. One it cannot see is 404, exactly as one
that does not exist; an action it may not take on one it can see, or on none at all (starting
one, listing), is 403 with RFC 6750's ``insufficient_scope`` challenge naming the permission.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.domain.collections import CollectionRecord
from gateway.domain.errors import BadRequest, CollectionNotFound, Forbidden, ScanNotFound
from gateway.domain.models import ScanRecord
from gateway.http.appkeys import COLLECTIONS, PRINCIPAL, STORE
from gateway.identity.principal import Permission, Principal

__all__ = [
    "MAX_SUBJECT",
    "SUBJECT_PARAM",
    "listed_subject",
    "require",
    "visible_collection",
    "visible_scan",
]

SUBJECT_PARAM: Final = "subject"
MAX_SUBJECT: Final = 255  # as tokens' subjects (identity.tokens)


def _denied(permission: Permission, what: str) -> Forbidden:
    error = Forbidden(
        f"{what} needs the permission {permission.value}, which this credential does not carry"
    )
    error.headers["WWW-Authenticate"] = (
        f'Bearer realm="xployt", error="insufficient_scope", scope="{permission.value}"'
    )
    return error


def require(request: web.Request, permission: Permission, what: str) -> Principal:
    """The caller, if it may do ``permission``'s action on its own scans; 403 if not."""
    who = request[PRINCIPAL]
    if not who.may(permission):
        raise _denied(permission, what)
    return who


def _sees(who: Principal, owner: str, log_id: str) -> bool | None:
    """None if the caller cannot see an object of ``owner``'s whose log is ``log_id``; else
    whether it counts as the caller's own."""
    if who.scan_id is not None:  # a stream ticket: its one log, whoever owns it
        return True if log_id == who.scan_id else None
    own = owner == who.subject
    return own if own or who.is_admin else None


async def visible_scan(
    request: web.Request, permission: Permission, what: str, scan_id: str | None = None
) -> ScanRecord:
    """The scan named in the path (or ``scan_id``): 404 if the caller cannot see it, 403 if
    it may not do ``permission``'s action (``what``, for the message) on it."""
    scan_id = request.match_info["scan_id"] if scan_id is None else scan_id
    scan = await request.app[STORE].get_scan(scan_id)
    own = None if scan is None else _sees(request[PRINCIPAL], scan.owner, scan.scan_id)
    if scan is None or own is None:
        raise ScanNotFound(scan_id)
    _check(request, permission, what, own)
    return scan


async def visible_collection(
    request: web.Request, permission: Permission, what: str, collection_id: str | None = None
) -> CollectionRecord:
    """The scan collection named in the path (or ``collection_id``), as ``visible_scan``."""
    if collection_id is None:
        collection_id = request.match_info["collection_id"]
    record = await request.app[COLLECTIONS].get(collection_id)
    own = None if record is None else _sees(request[PRINCIPAL], record.owner, record.log_id)
    if record is None or own is None:
        raise CollectionNotFound(collection_id)
    _check(request, permission, what, own)
    return record


def _check(request: web.Request, permission: Permission, what: str, own: bool) -> None:
    if not request[PRINCIPAL].may(permission, own=own):
        raise _denied(permission, what)


def listed_subject(request: web.Request, what: str = "scans") -> str:
    """Whose scans (or collections: ``what``) a listing shows: the caller's, or with
    ``scans:admin`` the one ``?subject=`` names (400 if it is no subject, 403 without the
    permission)."""
    who = request[PRINCIPAL]
    wanted = request.query.get(SUBJECT_PARAM)
    if wanted is not None and not (0 < len(wanted) <= MAX_SUBJECT and wanted.isprintable()):
        raise BadRequest(
            f"query parameter {SUBJECT_PARAM!r} must be a subject of 1 to {MAX_SUBJECT} "
            "printable characters"
        )
    if wanted is None or wanted == who.subject:
        return require(request, Permission.READ, f"listing {what}").subject
    if not who.may(Permission.READ, own=False):
        raise _denied(Permission.ADMIN, f"listing another subject's {what}")
    return wanted
