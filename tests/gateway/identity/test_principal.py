"""Permissions from a token's claims, and what each allows on one's own and others' scans."""

from __future__ import annotations

import pytest

from gateway.identity.principal import (
    MAX_CLAIM_ENTRIES,
    MAX_CLAIM_TEXT,
    Permission,
    Principal,
    permissions_from,
)

READ, WRITE, CANCEL, ADMIN = Permission.READ, Permission.WRITE, Permission.CANCEL, Permission.ADMIN


@pytest.mark.parametrize(
    ("claims", "names", "expected"),
    [
        ({"sub": "a", "exp": 1}, ("scope",), None),  # an Xployt token: no claim at all
        ({"scope": "openid scans:read  profile"}, ("scope",), {READ}),
        ({"scope": ""}, ("scope",), set()),  # a claim that grants nothing
        ({"scp": ["scans:write", "scans:cancel"]}, ("scp",), {WRITE, CANCEL}),
        ({"permissions": ["scans:admin", "users:delete"]}, ("permissions",), {ADMIN}),
        ({"roles": []}, ("roles",), set()),
        ({"scope": "scans:read", "roles": ["scans:admin"]}, ("scope", "roles"), {READ, ADMIN}),
        ({"roles": ["scans:admin"]}, ("scope",), None),  # a claim config does not name
        ({"scope": "SCANS:READ scans:read:all"}, ("scope",), set()),  # exact values only
    ],
)
def test_permissions_from_the_configured_claims(claims, names, expected):
    expected = None if expected is None else frozenset(expected)
    assert permissions_from(claims, names) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (7, "must be a space-separated string or a list of strings"),
        ({"scans:read": True}, "must be a space-separated string or a list of strings"),
        (["scans:read", 1], "must be a space-separated string or a list of strings"),
        (None, "must be a space-separated string or a list of strings"),
        ("x" * (MAX_CLAIM_TEXT + 1), f"longer than {MAX_CLAIM_TEXT} characters"),
        (["x"] * (MAX_CLAIM_ENTRIES + 1), f"more than {MAX_CLAIM_ENTRIES} entries"),
        (" x" * (MAX_CLAIM_ENTRIES + 1), f"more than {MAX_CLAIM_ENTRIES} entries"),
    ],
)
def test_a_claim_of_another_type_or_past_its_bounds_is_refused(value, message):
    with pytest.raises(ValueError, match=message):
        permissions_from({"scope": value}, ("scope",))


def test_claims_at_their_bounds_are_read():
    at_limit = ["scans:read"] + ["x"] * (MAX_CLAIM_ENTRIES - 1)
    assert permissions_from({"scp": at_limit}, ("scp",)) == frozenset({READ})
    text = "scans:write " + "y" * (MAX_CLAIM_TEXT - len("scans:write "))
    assert permissions_from({"scope": text}, ("scope",)) == frozenset({WRITE})


# (permissions, {permission: (on its own scan, on another's)})
RIGHTS = [
    (None, {READ: (1, 0), WRITE: (1, 0), CANCEL: (1, 0), ADMIN: (0, 0)}),
    (frozenset(), {READ: (0, 0), WRITE: (0, 0), CANCEL: (0, 0), ADMIN: (0, 0)}),
    (frozenset({READ}), {READ: (1, 0), WRITE: (0, 0), CANCEL: (0, 0), ADMIN: (0, 0)}),
    (frozenset({WRITE, CANCEL}), {READ: (0, 0), WRITE: (1, 0), CANCEL: (1, 0), ADMIN: (0, 0)}),
    # The operator reads and cancels anyone's scans, its own included; it starts none.
    (frozenset({ADMIN}), {READ: (1, 1), WRITE: (0, 0), CANCEL: (1, 1), ADMIN: (1, 0)}),
]


@pytest.mark.parametrize(("permissions", "rights"), RIGHTS)
def test_what_each_set_of_permissions_allows(permissions, rights):
    who = Principal("alice", permissions=permissions)
    for permission, (own, other) in rights.items():
        assert who.may(permission) is bool(own), (permission, "own")
        assert who.may(permission, own=False) is bool(other), (permission, "another's")
    assert who.is_admin is (permissions is not None and ADMIN in permissions)
