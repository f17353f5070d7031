"""What pages and callbacks need at run time: settings, the read API, the signed-in user.

``create_app`` calls ``init`` once per process; pages import the accessors below instead
of reaching for globals of their own. Access rules are data (``PAGE_ROLES``) so the
browser tests, the page registry and the callbacks all read the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import flask

from streams.core.settings import Settings

if TYPE_CHECKING:
    from dashboard.readapi import LiveReader

ROLES = ("commander", "cso", "sro", "supervisor", "admin")
TABLET_ROLES = frozenset({"cso", "sro"})
"""Roles on tablets in the field: never shown caller names or phone numbers."""

PAGE_ROLES: dict[str, frozenset[str]] = {
    "/": frozenset(ROLES),
    "/wall": frozenset({"commander", "supervisor", "admin"}),
    "/queues": frozenset({"cso", "sro", "commander", "supervisor", "admin"}),
    "/response": frozenset({"supervisor", "admin"}),
}
"""Which roles may open each page (and call its callbacks)."""

_objects: dict[str, Any] = {}


@dataclass(frozen=True)
class User:
    name: str
    role: str
    district: str | None = None

    @property
    def on_tablet(self) -> bool:
        return self.role in TABLET_ROLES


def init(settings: Settings, reader: LiveReader) -> None:
    """Install this process's settings and read API."""
    _objects["settings"] = settings
    _objects["reader"] = reader


def settings() -> Settings:
    return _objects["settings"]  # type: ignore[no-any-return]


def reader() -> LiveReader:
    return _objects["reader"]  # type: ignore[no-any-return]


def current_user() -> User | None:
    """The user signed in on this request (session cookie or trusted SSO header)."""
    stored = flask.session.get("user")
    if not stored:
        return None
    return User(stored["name"], stored["role"], stored.get("district"))


def may_open(user: User | None, path: str) -> bool:
    """True when ``user`` may see the page at ``path`` (unknown paths: nobody)."""
    return user is not None and user.role in PAGE_ROLES.get(path, frozenset())


def require_page(path: str) -> User:
    """The current user, or PermissionError if they may not use the page at ``path``.

    Every callback that returns police data starts with this.
    """
    user = current_user()
    if not may_open(user, path):
        raise PermissionError(f"{user.role if user else 'anonymous'} may not use {path}")
    assert user is not None
    return user
