"""What pages and callbacks need at run time: settings, the read API, the signed-in user,
the audit trail.

``create_app`` calls ``init`` once per process; pages import the accessors below instead
of reaching for globals of their own. Who may open what is ``streams.core.access`` (the one
home of the access rules); these helpers apply it to the current request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dashboard import audit
from dashboard.auth import per_request
from streams.core import access
from streams.core.access import User
from streams.core.settings import Settings

if TYPE_CHECKING:
    from dashboard.auth import Auth
    from dashboard.auth.sessions import Session
    from dashboard.history import HistoryStore
    from dashboard.readapi import LiveReader

__all__ = ["User", "auth", "current_session", "current_user", "history", "init", "may_open",
           "reader", "require_page", "settings"]

_objects: dict[str, Any] = {}


def init(settings: Settings, reader: LiveReader, history: HistoryStore | None = None) -> None:
    """Install this process's settings, read API and response-time history."""
    _objects["settings"] = settings
    _objects["reader"] = reader
    _objects["history"] = history


def settings() -> Settings:
    return _objects["settings"]  # type: ignore[no-any-return]


def reader() -> LiveReader:
    return _objects["reader"]  # type: ignore[no-any-return]


def auth() -> Auth:
    """Users, sessions and the sign-in gate of this app (for /admin and the audit)."""
    return per_request.auth()


def current_session() -> Session | None:
    """The signed-in session of this request (None when nobody is signed in)."""
    return per_request.current_session()


def history() -> HistoryStore:
    """The closed-call history (DuckDB over the history writer's files)."""
    found = _objects.get("history")
    if found is None:
        raise RuntimeError("no history store: create_app installs one")
    return found  # type: ignore[no-any-return]


def current_user() -> User | None:
    """The user signed in on this request (session cookie or trusted SSO header)."""
    session = per_request.current_session()
    return session.user if session is not None else None


def may_open(user: User | None, path: str) -> bool:
    """True when ``user`` may see the page at ``path`` (unknown paths: nobody)."""
    return access.may_open(user, path)


def record(action: str, /, call_id: str | None = None, **detail: Any) -> str:
    """Record in the audit trail that this request's user did ``action`` (on ``call_id``);
    see ``dashboard.audit.record``."""
    return audit.record(action, call_id, **detail)


def require_page(path: str) -> User:
    """The current user, or PermissionError (answered 403) if they may not use ``path``.

    Every callback that returns police data starts with this.
    """
    user = current_user()
    if not access.may_open(user, path):
        raise PermissionError(f"{user.role if user else 'anonymous'} may not use {path}")
    assert user is not None
    return user
