"""What /admin does, apart from drawing it: user and session changes (each one audited),
the audit search from the page's filters, the rows of its tables and the CSV export route.

Built on identity's stores (``dashboard.auth.users.UserStore``, ``sessions.SessionStore``):
a change of role, district, password or a disabling ends the user's sessions there, and
ending a session appends it to ``Keys.session_revocations`` so push closes its sockets.
Every function that changes something checks the admin role first (``require_admin``) and
records the change in the audit trail with who made it; no password is ever recorded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import flask

from dashboard import audit, runtime
from dashboard.auth import errors, passwords
from dashboard.auth.sessions import Session
from dashboard.auth.users import UnknownUser, UserRecord
from streams.core import audit as rules
from streams.core.access import User

PATH = "/admin"
SEARCH_LIMIT = 200
"""Entries one search shows (newest first); the CSV export has them all."""
EXPORT_PATH = "/admin/audit.csv"
FILTERS = ("user", "call_id", "action", "since", "until")
"""Audit filter fields, as the page's form names them (search and export alike)."""
ANY_ACTION = "any"
"""The action filter's "no filter" choice."""


class Refused(ValueError):
    """An admin change that is not allowed (the sentence says why)."""


def require_admin() -> User:
    """The signed-in admin, or PermissionError (a 403, recorded as a refusal)."""
    return runtime.require_page(PATH)


def _not_self(admin: User, name: str, what: str) -> None:
    # An admin who disables or demotes themself (or the last admin) locks everyone out of
    # /admin; their own password is changed on /password, where the old one is asked.
    if admin.name == name:
        raise Refused(f"You cannot {what} your own account here.")


# --- changes ----------------------------------------------------------------------------
def add_user(name: str, role: str, district: str | None) -> str:
    """Add a user with a temporary password (returned, to hand over once), which they must
    change at their first sign-in."""
    require_admin()
    password = passwords.temporary_password()
    made = runtime.auth().users.add(name.strip(), role, password, district or None,
                                    must_change=True, replace=False)
    audit.record("admin_user_add", target=made.name, new_role=made.role,
                 new_district=made.district or "")
    return password


def set_disabled(name: str, disabled: bool) -> UserRecord:
    """Disable (ending the user's sessions) or enable a user."""
    admin = require_admin()
    if disabled:
        _not_self(admin, name, "disable")
    record = runtime.auth().users.set_disabled(name, disabled)
    audit.record("admin_user_disable" if disabled else "admin_user_enable", target=name)
    return record


def change_role(name: str, role: str, district: str | None) -> UserRecord:
    """Give a user another role or district (their sessions end: they sign in again)."""
    admin = require_admin()
    _not_self(admin, name, "change the role of")
    before = runtime.auth().users.get(name)
    if before is None:
        raise UnknownUser(f"no user named {name!r}")
    record = runtime.auth().users.set_role(name, role, district or None)
    audit.record("admin_user_change", target=name, old_role=before.role,
                 old_district=before.district or "", new_role=record.role,
                 new_district=record.district or "")
    return record


def reset_password(name: str) -> str:
    """A temporary password for ``name`` (returned once, never stored or recorded); the
    user's sessions end and they must choose a new password at the next sign-in."""
    admin = require_admin()
    _not_self(admin, name, "reset the password of")
    temporary = runtime.auth().users.reset_password(name)
    audit.record("admin_password_reset", target=name)
    return temporary


def end_session(sid: str) -> bool:
    """End one session now (push closes its sockets); False when it had already ended."""
    require_admin()
    sessions = runtime.auth().sessions
    found = sessions.get(sid)
    ended = sessions.end(sid, "ended_by_admin")
    if ended:
        audit.record("admin_session_end", target=found.user.name if found else "",
                     session=short_sid(sid))
    return ended


# --- audit search -------------------------------------------------------------------------
def zone() -> ZoneInfo:
    return ZoneInfo(runtime.settings().timezone)


def query_of(values: Mapping[str, Any]) -> rules.AuditQuery:
    """The audit query the page's filters ask for (ValueError naming what is wrong)."""
    def text(name: str) -> str:
        return str(values.get(name) or "").strip()

    since, until = text("since"), text("until")
    return rules.AuditQuery(
        user=text("user"), call_id=text("call_id"),
        action="" if text("action") == ANY_ACTION else text("action"),
        start=rules.parse_time(since, zone()) if since else None,
        end=rules.parse_time(until, zone(), end_of_day=True) if until else None)


def search(values: Mapping[str, Any]) -> audit.SearchResult:
    """The newest SEARCH_LIMIT entries matching the filters (the search is recorded)."""
    require_admin()
    return audit.installed().search(query_of(values), audit.request_actor(),
                                    limit=SEARCH_LIMIT)


def export_csv() -> flask.Response:
    """POST /admin/audit.csv: every entry matching the form's filters, formula-safe CSV,
    streamed (a year of trail is millions of lines); the export is recorded first."""
    require_admin()
    try:
        query = query_of(flask.request.form)
    except ValueError as error:
        return errors.refusal(400, str(error))
    entries = audit.installed().export(query, audit.request_actor())
    stamp = datetime.now(zone()).strftime("%Y%m%d-%H%M")
    return flask.Response(rules.csv_lines(entries, zone()), mimetype="text/csv",
                          headers={"Content-Disposition":
                                   f'attachment; filename="audit-{stamp}.csv"'})


def install_routes(server: flask.Flask) -> None:
    server.add_url_rule(EXPORT_PATH, "admin_audit_csv", export_csv, methods=["POST"])


# --- table rows ---------------------------------------------------------------------------
def clock(epoch: float | None) -> str:
    """A time as the page shows it (local, to the second); "—" when not known."""
    if not epoch:
        return "\u2014"
    return datetime.fromtimestamp(epoch, UTC).astimezone(zone()).strftime("%Y-%m-%d %H:%M:%S")


def short_sid(sid: str) -> str:
    """Enough of a session id to tell sessions apart on screen and in the trail."""
    return sid[:8]


def user_rows(records: Iterable[UserRecord]) -> list[dict[str, Any]]:
    return [{"name": r.name, "role": r.role, "district": r.district or "",
             "state": "disabled" if r.disabled else "active",
             "must_change": r.must_change, "updated": clock(r.updated)} for r in records]


def session_rows(sessions: Iterable[Session], own_sid: str | None,
                 now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    return [{"sid": s.sid, "short": short_sid(s.sid), "user": s.user.name,
             "role": s.user.role, "district": s.user.district or "", "via": s.via,
             "address": s.address, "agent": s.agent, "started": clock(s.created),
             "last_active": clock(s.last_active), "ends": clock(s.deadline),
             "minutes_left": max(0, int((s.deadline - now) // 60)), "own": s.sid == own_sid}
            for s in sorted(sessions, key=lambda s: (s.user.name, s.created))]


def detail_text(detail: Mapping[str, Any]) -> str:
    """An entry's detail as one short line: ``key=value, ...``."""
    return ", ".join(f"{name}={value}" for name, value in sorted(detail.items()))


def audit_rows(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"time": clock(e["time"]), "action": rules.ACTIONS.get(e["action"], e["action"]),
             "code": e["action"], "user": e["user"], "role": e["role"],
             "district": e["district"], "address": e["address"], "call_id": e["call_id"],
             "detail": detail_text(e["detail"])} for e in entries]
