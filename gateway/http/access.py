"""What the caller may do: the permission each action needs, and which scans it can see.

A caller sees its own scans; with ``scans:admin`` any subject's; with a stream ticket the one
scan the ticket names. A scan it cannot see is 404, exactly as one that does not exist; an
action it may not take on a scan it can see, or on no scan at all (starting one, listing), is
403 with RFC 6750's ``insufficient_scope`` challenge naming the permission.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.domain.errors import BadRequest, Forbidden, ScanNotFound
from gateway.domain.models import ScanRecord
from gateway.http.appkeys import PRINCIPAL, STORE
from gateway.identity.principal import Permission, Principal

__all__ = ["MAX_SUBJECT", "SUBJECT_PARAM", "listed_subject", "require", "visible_scan"]

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


async def visible_scan(
    request: web.Request, permission: Permission, what: str, scan_id: str | None = None
) -> ScanRecord:
    """The scan named in the path (or ``scan_id``): 404 if the caller cannot see it, 403 if
    it may not do ``permission``'s action (``what``, for the message) on it."""
    scan_id = request.match_info["scan_id"] if scan_id is None else scan_id
    who = request[PRINCIPAL]
    scan = await request.app[STORE].get_scan(scan_id)
    if scan is None:
        raise ScanNotFound(scan_id)
    if who.scan_id is not None:  # a stream ticket: its one scan, whoever owns it
        if scan.scan_id != who.scan_id:
            raise ScanNotFound(scan_id)
        own = True
    else:
        own = scan.owner == who.subject
        if not own and not who.is_admin:
            raise ScanNotFound(scan_id)
    if not who.may(permission, own=own):
        raise _denied(permission, what)
    return scan


def listed_subject(request: web.Request) -> str:
    """Whose scans a listing shows: the caller's, or with ``scans:admin`` the one
    ``?subject=`` names (400 if it is no subject, 403 without the permission)."""
    who = request[PRINCIPAL]
    wanted = request.query.get(SUBJECT_PARAM)
    if wanted is not None and not (0 < len(wanted) <= MAX_SUBJECT and wanted.isprintable()):
        raise BadRequest(
            f"query parameter {SUBJECT_PARAM!r} must be a subject of 1 to {MAX_SUBJECT} "
            "printable characters"
        )
    if wanted is None or wanted == who.subject:
        return require(request, Permission.READ, "listing scans").subject
    if not who.may(Permission.READ, own=False):
        raise _denied(Permission.ADMIN, "listing another subject's scans")
    return wanted
