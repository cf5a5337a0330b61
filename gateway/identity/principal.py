"""Who is calling and what they may do: the ``Principal`` a verified credential gives, and the
permissions read from a token's claims.

A token's permissions come from the claims config names (``auth.permission_claims``): a
space-separated string (OAuth 2 ``scope``) or a list of strings (``scp``, ``permissions``,
``roles``). Only the ``scans:*`` values below mean anything here; others are ignored.

- ``scans:read``: read, list and watch one's own scans; ``scans:write``: start scans;
  ``scans:cancel``: cancel one's own scans.
- ``scans:admin``, the operator's: read, list and cancel any subject's scans (not start them).
- A token that carries none of the configured claims (the Xployt server's tokens carry only
  ``sub`` and ``exp``) keeps the rights every token had before permissions existed: all of
  them over its own scans, nothing over others'; unless ``auth.require_permissions``.
- A stream ticket carries ``scans:read`` on its one scan and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "MAX_CLAIM_ENTRIES",
    "MAX_CLAIM_TEXT",
    "OWNER_RIGHTS",
    "Permission",
    "Principal",
    "permissions_from",
]


class Permission(StrEnum):
    READ = "scans:read"
    WRITE = "scans:write"
    CANCEL = "scans:cancel"
    ADMIN = "scans:admin"


# What a token without a permission claim may do with its own scans.
OWNER_RIGHTS: Final = frozenset({Permission.READ, Permission.WRITE, Permission.CANCEL})
# What the operator permission allows on any subject's scans.
_ADMIN_RIGHTS: Final = frozenset({Permission.READ, Permission.CANCEL})
# Bounds on a permission claim (a token is at most a header's 8 KiB anyway): entries in a
# list, and characters of one string.
MAX_CLAIM_ENTRIES: Final = 256
MAX_CLAIM_TEXT: Final = 8192


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    expires_at: float | None = None  # epoch seconds; open streams end when it passes
    via: str = "bearer"  # bearer, cookie, query or ticket
    # None: the token carries no permission claim (the owner's rights over its own scans).
    permissions: frozenset[Permission] | None = None
    scan_id: str | None = None  # a stream ticket's one scan
    token_id: str | None = None  # the token's jti, for the audit log
    client_id: str | None = None  # its azp (the client it was issued to), for the audit log

    def may(self, permission: Permission, *, own: bool = True) -> bool:
        """Whether this caller may do ``permission``'s action on its own scan (``own``) or on
        another subject's."""
        if self.permissions is None:
            return own and permission in OWNER_RIGHTS
        if own and permission in self.permissions:
            return True
        return Permission.ADMIN in self.permissions and permission in _ADMIN_RIGHTS

    @property
    def is_admin(self) -> bool:
        return self.permissions is not None and Permission.ADMIN in self.permissions


def permissions_from(
    claims: Mapping[str, object], names: Sequence[str]
) -> frozenset[Permission] | None:
    """The permissions the claims ``names`` grant together; None when none of them is there.
    ValueError (naming the claim) for one of another type or past the bounds."""
    present = [name for name in names if name in claims]
    if not present:
        return None
    granted: set[Permission] = set()
    for name in present:
        granted.update(_known(_entries(name, claims[name])))
    return frozenset(granted)


def _entries(name: str, value: object) -> list[str]:
    if isinstance(value, str):
        if len(value) > MAX_CLAIM_TEXT:
            raise ValueError(f"claim {name!r} is longer than {MAX_CLAIM_TEXT} characters")
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise ValueError(f"claim {name!r} must be a space-separated string or a list of strings")
    if len(value) > MAX_CLAIM_ENTRIES:
        raise ValueError(f"claim {name!r} has more than {MAX_CLAIM_ENTRIES} entries")
    return value


def _known(entries: list[str]) -> set[Permission]:
    values = {permission.value: permission for permission in Permission}
    return {values[entry] for entry in entries if entry in values}
