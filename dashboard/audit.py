"""The audit trail from the web side: ``record(action, call_id=None, **detail)`` in any
request, and searching and exporting the trail (itself recorded).

``create_app`` calls ``init`` once per worker. ``record`` takes the user, role and district
from the signed-in session and the address from the request, and appends one entry to the
audit stream (entry rules: ``streams.core.audit``). It raises when Redis is unreachable:
callers record *before* they return what was asked for, so nothing audited is shown
unrecorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import flask
import redis

from streams.core import audit as rules
from streams.core.audit import Actor, AuditQuery
from streams.core.keys import Keys

log = logging.getLogger(__name__)

READ_CHUNK = 2_000
"""Entries per XRANGE/XREVRANGE while searching or exporting."""
SEARCH_SCAN_LIMIT = 500_000
"""A search reads at most this many entries (newest first) before saying it stopped."""

_installed: dict[str, AuditLog] = {}


@dataclass(frozen=True)
class SearchResult:
    entries: list[dict[str, Any]]
    """Matching entries, newest first, at most the limit asked for."""
    complete: bool
    """False when the limit or the scan limit stopped the search before the range's start."""
    reached: float | None
    """Time (epoch s) of the oldest entry read, when the search stopped early."""


class AuditLog:
    """Append to, search and export the audit stream on one Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, max_age_s: float) -> None:
        self.client = client
        self.keys = keys
        self.max_age_s = max_age_s

    def append(self, action: str, actor: Actor, call_id: str | None = None,
               detail: Mapping[str, Any] | None = None) -> str:
        """Record one entry; returns its stream id (its time)."""
        fields = rules.entry(action, actor, call_id, detail)
        # Exact MINID (not "~"): the trail keeps precisely its age, a compliance promise;
        # at audit rates its cost over approximate trimming is nil.
        entry_id = self.client.xadd(self.keys.audit, fields,  # type: ignore[arg-type]
                                    minid=rules.trim_min_id(time.time(), self.max_age_s),
                                    approximate=False)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def search(self, query: AuditQuery, by: Actor, limit: int = 500,
               scan_limit: int = SEARCH_SCAN_LIMIT) -> SearchResult:
        """Entries matching ``query``, newest first; the search is recorded as ``by``'s."""
        self.append("audit_search", by, detail=query.described())
        low, high = query.id_bounds()
        found: list[dict[str, Any]] = []
        scanned = 0
        reached: float | None = None
        while scanned < scan_limit:
            batch = self.client.xrevrange(self.keys.audit, high, low,
                                          count=min(READ_CHUNK, scan_limit - scanned))
            if not batch:
                return SearchResult(found, True, None)
            scanned += len(batch)
            for entry_id, fields in batch:
                decoded = rules.decode(entry_id, fields)
                if query.matches(decoded):
                    found.append(decoded)
                    if len(found) == limit:
                        return SearchResult(found, False, decoded["time"])
            oldest = rules.decode(*batch[-1])
            reached = oldest["time"]
            high = f"({oldest['id']}"
        return SearchResult(found, False, reached)

    def export(self, query: AuditQuery, by: Actor) -> Iterator[dict[str, Any]]:
        """Every entry matching ``query``, oldest first; the export is recorded as ``by``'s
        before the first entry is read."""
        self.append("audit_export", by, detail=query.described())
        low, high = query.id_bounds()
        while True:
            batch = self.client.xrange(self.keys.audit, low, high, count=READ_CHUNK)
            for entry_id, fields in batch:
                decoded = rules.decode(entry_id, fields)
                if query.matches(decoded):
                    yield decoded
            if len(batch) < READ_CHUNK:
                return
            low = f"({rules.decode(*batch[-1])['id']}"


EXTENSION = "dispatch_audit"


def init(client: redis.Redis, keys: Keys, max_age_s: float,
         server: flask.Flask | None = None) -> AuditLog:
    """Install this worker's audit log (``create_app`` calls this, with its Flask server:
    requests of that app use its log, even when one process builds several apps)."""
    made = AuditLog(client, keys, max_age_s)
    _installed["log"] = made
    if server is not None:
        server.extensions[EXTENSION] = made
    return made


def installed() -> AuditLog:
    """The audit log of the current app (else the one installed last)."""
    if flask.has_app_context() and EXTENSION in flask.current_app.extensions:
        found: AuditLog = flask.current_app.extensions[EXTENSION]
        return found
    return _installed["log"]


def request_actor(user_name: str | None = None) -> Actor:
    """Who is making this request: the signed-in user (or ``user_name``, e.g. the name a
    failed sign-in typed), their role and district, and the client's address."""
    from dashboard import runtime  # noqa: PLC0415 - runtime imports the auth package
    from dashboard.auth import per_request  # noqa: PLC0415

    user = runtime.current_user()
    address = per_request.client_address() if flask.has_request_context() else "unknown"
    if user is None:
        return Actor(user_name or "", "", None, address)
    return Actor(user_name or user.name, user.role, user.district, address)


def record(action: str, /, call_id: str | None = None, **detail: Any) -> str:
    """Record that the user of the current request did ``action`` (on ``call_id``)."""
    return installed().append(action, request_actor(), call_id, detail)


def record_as(actor: Actor, action: str, /, call_id: str | None = None, **detail: Any) -> str:
    """Record an action of someone not (yet) in the session, e.g. a failed sign-in."""
    return installed().append(action, actor, call_id, detail)
