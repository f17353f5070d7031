"""Who may see and do what: roles, tablet roles, pages, district scope and caller data.

The one home of these rules (pure, no I/O): the dashboard's pages and callbacks, the push
service, the websocket tokens, actions on calls and the audit all import them from here,
so a rule cannot drift between two copies. ``tests/unit/test_access.py`` holds the table of
cases.

- Roles: commander (wall), cso and sro (tablets in the field), supervisor, admin.
- Tablet roles work in one district: their queues, pushed calls and call details are
  limited to it, and they never see a caller's name or phone number.
- Caller data is shown only to the roles in ``CALLER_DATA_ROLES`` (deny by default: a role
  added later sees none until it is listed there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

ROLES: Final = ("commander", "cso", "sro", "supervisor", "admin")
TABLET_ROLES: Final = frozenset({"cso", "sro"})
"""Roles on tablets in the field: one district each, never shown caller data."""
CALLER_DATA_ROLES: Final = frozenset({"commander", "supervisor", "admin"})
"""Roles that may see a caller's name and phone number."""
ACTION_ROLES: Final = frozenset({"cso", "sro", "supervisor", "admin"})
"""Roles that may act on a call: claim, release, add a note, mark handled."""
OVERRIDE_ROLES: Final = frozenset({"supervisor", "admin"})
"""Roles that may release, or mark handled, a call someone else has claimed."""
ADMIN_ROLES: Final = frozenset({"admin"})
"""Roles that may manage users and sessions and read the audit trail."""

CALLER_FIELDS: Final = ("caller_name", "caller_phone")
"""Fields of a call that identify the person who called."""
INTERNAL_FIELDS: Final = ("applied",)
"""Bookkeeping fields of live state that no browser ever receives."""

PAGE_ROLES: Final[Mapping[str, frozenset[str]]] = {
    "/": frozenset(ROLES),
    "/wall": frozenset({"commander", "supervisor", "admin"}),
    "/queues": frozenset({"cso", "sro", "commander", "supervisor", "admin"}),
    "/response": frozenset({"commander", "supervisor", "admin"}),
    "/admin": ADMIN_ROLES,
}
"""Which roles may open each page (and call its callbacks); other paths: nobody."""


@dataclass(frozen=True)
class User:
    """Who is signed in: a name, one role, and a district for tablet roles."""

    name: str
    role: str
    district: str | None = None

    @property
    def on_tablet(self) -> bool:
        return is_tablet(self.role)


def check_role(role: str, district: str | None) -> None:
    """Raise ValueError saying what is wrong with a role and district pair."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role in TABLET_ROLES and not district:
        raise ValueError(f"a {role} works in one district: give --district (e.g. North)")


def is_tablet(role: str) -> bool:
    return role in TABLET_ROLES


def may_open(user: User | None, path: str) -> bool:
    """True when ``user`` may open the page at ``path`` (unknown paths: nobody)."""
    return user is not None and user.role in PAGE_ROLES.get(path, frozenset())


def may_act(user: User | None) -> bool:
    """True when ``user`` may claim, release, note or close calls."""
    return user is not None and user.role in ACTION_ROLES


def may_override(user: User | None) -> bool:
    """True when ``user`` may release or close a call someone else has claimed."""
    return user is not None and user.role in OVERRIDE_ROLES and user.role in ACTION_ROLES


def may_administer(user: User | None) -> bool:
    return user is not None and user.role in ADMIN_ROLES


def district_scope(role: str, district: str | None) -> str | None:
    """The one district a user is limited to (a tablet role's own); None: every district."""
    return district if role in TABLET_ROLES and district else None


def in_scope(call: Mapping[str, Any], scope: str | None) -> bool:
    """True when a user limited to ``scope`` (None: everywhere) may see ``call``."""
    return scope is None or call.get("district") == scope


def sees_caller(role: str) -> bool:
    """True when ``role`` may see a caller's name and phone number."""
    return role in CALLER_DATA_ROLES


def view_kind(role: str) -> str:
    """'full' for roles that see caller data, 'tablet' (no caller data) for every other."""
    return "full" if sees_caller(role) else "tablet"


def without_internals(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity without live state's bookkeeping fields (still with caller data)."""
    return {name: value for name, value in entity.items() if name not in INTERNAL_FIELDS}


def public_view(entity: Mapping[str, Any], role: str) -> dict[str, Any]:
    """The entity as ``role`` may see it: no internals, and no caller data unless the role
    may see it."""
    if sees_caller(role):
        return without_internals(entity)
    hidden = INTERNAL_FIELDS + CALLER_FIELDS
    return {name: value for name, value in entity.items() if name not in hidden}
