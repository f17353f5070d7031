"""The access rules, as one table of cases: roles, pages, district scope and caller data."""

from __future__ import annotations

import pytest

from streams.core import access
from streams.core.access import User

CALL = {"call_id": "C1", "district": "North", "caller_name": "Pat", "caller_phone": "860",
        "applied": ["e1"], "address": "1 Main St"}

# role -> (sees caller data, pages it may open, may act on calls, view kind)
TABLE = {
    "commander": (True, {"/", "/wall", "/queues", "/response"}, False, "full"),
    "cso": (False, {"/", "/queues"}, True, "tablet"),
    "sro": (False, {"/", "/queues"}, True, "tablet"),
    "supervisor": (True, {"/", "/wall", "/queues", "/response"}, True, "full"),
    "admin": (True, {"/", "/wall", "/queues", "/response", "/admin"}, True, "full"),
}


def test_the_table_covers_every_role() -> None:
    """Every role has a row below; a new role must be added to the table."""
    assert set(TABLE) == set(access.ROLES)


@pytest.mark.parametrize("role", access.ROLES)
def test_each_role_opens_exactly_its_pages(role: str) -> None:
    """A role opens the pages of its row and no other (unknown paths: nobody)."""
    user = User("someone", role, "North" if access.is_tablet(role) else None)
    opened = {path for path in access.PAGE_ROLES if access.may_open(user, path)}
    assert opened == TABLE[role][1]
    assert not access.may_open(user, "/no-such-page")


def test_nobody_anonymous_opens_anything() -> None:
    """Without a user no page opens, no action is allowed."""
    assert not any(access.may_open(None, path) for path in access.PAGE_ROLES)
    assert not access.may_act(None) and not access.may_administer(None)


@pytest.mark.parametrize("role", access.ROLES)
def test_caller_data_only_for_roles_that_may_see_it(role: str) -> None:
    """Caller name and phone reach only the roles of CALLER_DATA_ROLES; internals nobody."""
    sees, _, acts, kind = TABLE[role]
    shown = access.public_view(CALL, role)
    assert ("caller_name" in shown and "caller_phone" in shown) is sees
    assert "applied" not in shown and shown["address"] == "1 Main St"
    assert access.sees_caller(role) is sees
    assert access.view_kind(role) == kind
    assert access.may_act(User("x", role, "North")) is acts
    assert "applied" in CALL  # the input is not modified


@pytest.mark.parametrize("role", access.ROLES)
def test_only_supervisors_and_admins_override_a_claim(role: str) -> None:
    """Releasing or closing someone else's claim: supervisor and admin, nobody else."""
    assert access.may_override(User("x", role, "North")) is (role in {"supervisor", "admin"})
    assert not access.may_override(None)


def test_unknown_roles_see_no_caller_data() -> None:
    """Deny by default: a role nobody listed sees no caller data."""
    assert "caller_name" not in access.public_view(CALL, "chief")
    assert access.view_kind("chief") == "tablet"


def test_without_internals_keeps_caller_data() -> None:
    """The read API's view drops bookkeeping only (pages filter per role after it)."""
    assert access.without_internals(CALL) == {k: v for k, v in CALL.items() if k != "applied"}


@pytest.mark.parametrize(("role", "district", "scope"), [
    ("cso", "North", "North"), ("sro", "South", "South"), ("cso", None, None),
    ("supervisor", "North", None), ("commander", None, None), ("admin", "Central", None),
])
def test_only_tablet_users_with_a_district_are_scoped(role: str, district: str | None,
                                                      scope: str | None) -> None:
    """A cso/sro with a district is limited to it; everyone else sees every district."""
    assert access.district_scope(role, district) == scope


def test_in_scope_hides_other_districts() -> None:
    """A call of another district is out of scope for a scoped user, in scope otherwise."""
    assert access.in_scope({"district": "North"}, "North")
    assert not access.in_scope({"district": "South"}, "North")
    assert not access.in_scope({}, "North")
    assert access.in_scope({"district": "South"}, None)


@pytest.mark.parametrize(("role", "district", "message"), [
    ("chief", None, "is not one of"), ("cso", None, "give --district"),
    ("sro", "", "give --district")])
def test_check_role_names_the_problem(role: str, district: str | None, message: str) -> None:
    """Unknown roles and tablet roles without a district are refused with a sentence."""
    with pytest.raises(ValueError, match=message):
        access.check_role(role, district)
    access.check_role("cso", "North")
    access.check_role("admin", None)
