"""What pages and callbacks need at run time: settings, the read API, the signed-in user,
the audit trail.

``create_app`` calls ``init`` once per process; pages import the accessors below instead
of reaching for globals of their own. Who may open what is ``streams.core.access`` (the one
home of the access rules); these helpers apply it to the current request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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

__all__ = ["User", "auth", "current_session", "current_user", "history", "init",
           "live_snapshot", "may_open", "reader", "require_page", "settings"]

_objects: dict[str, Any] = {}

SNAPSHOT_MAX_AGE_S = 0.5
"""How old a live snapshot one poll reuses may be. The polling wall asks every second;
20 of them each reading the whole live state from Redis took a third of a core."""


class SharedSnapshot:
    """One live snapshot a process reads for every request within ``max_age_s``; requests
    arriving while it is read wait for that read instead of making their own. The snapshot
    is the same for every role that may ask for it (pages check the role first) and
    carries the changes-stream id it is consistent with."""

    def __init__(self, read: Callable[[], dict[str, Any]], max_age_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._taken = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._value is None or self._clock() - self._taken > self._max_age_s:
                self._taken = self._clock()
                self._value = self._read()
            return self._value


def init(settings: Settings, reader: LiveReader, history: HistoryStore | None = None) -> None:
    """Install this process's settings, read API and response-time history."""
    _objects["settings"] = settings
    _objects["reader"] = reader
    _objects["history"] = history
    _objects["snapshot"] = SharedSnapshot(reader.snapshot, SNAPSHOT_MAX_AGE_S)


def settings() -> Settings:
    return _objects["settings"]  # type: ignore[no-any-return]


def reader() -> LiveReader:
    return _objects["reader"]  # type: ignore[no-any-return]


def live_snapshot() -> dict[str, Any]:
    """Everything a live page needs (``LiveReader.snapshot``), at most
    ``SNAPSHOT_MAX_AGE_S`` old and read once for all requests of this process meanwhile.
    Never mutate it: other requests are sending it too."""
    return _objects["snapshot"].get()  # type: ignore[no-any-return]


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
