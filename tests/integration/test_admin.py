"""/admin's work on real Redis: user and session changes through identity's stores, each
one audited (never a password), the revocation stream for push, the admin's own account
protected, the role check on every step and the CSV export route."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterator
from typing import Any

import flask
import pytest
import redis

from dashboard import adminview as view
from dashboard import auth
from dashboard.app import create_app
from dashboard.audit import AuditLog
from dashboard.auth.sessions import Session
from streams.core.access import User
from streams.core.audit import Actor, AuditQuery
from streams.core.keys import Keys
from streams.core.settings import Settings

DAY = 86400.0
BOSS = User("boss", "admin")
PASSWORD = "boss-password-1"


@pytest.fixture
def app(settings: Settings) -> Any:
    ready = dataclasses.replace(settings, secret_key="admin-test-secret")
    users = auth.open_users(ready)
    users.add("boss", "admin", PASSWORD)
    users.add("sup", "supervisor", "sup-password-1")
    users.client.close()
    return create_app(ready)


def services(app: Any) -> Any:
    return app.server.extensions["dispatch_auth"]


def session_of(app: Any, user: User, address: str = "10.1.1.1") -> Session:
    return services(app).sessions.create(user, "password", address, "pytest")[1]


@pytest.fixture
def as_boss(app: Any) -> Iterator[None]:
    """A request of the signed-in admin ``boss`` from 10.1.1.1."""
    with app.server.test_request_context("/admin", environ_base={"REMOTE_ADDR": "10.1.1.1"}):
        flask.g.session = session_of(app, BOSS)
        yield


def trail(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    log = AuditLog(r, keys, DAY)
    return [e for e in reversed(log.search(AuditQuery(),
                                           Actor("t", "admin", None, "t")).entries)
            if e["action"] != "audit_search"]


def revocations(r: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in r.xrange(keys.session_revocations)]


def test_each_change_is_made_audited_and_ends_the_users_sessions(
        app: Any, as_boss: None, r: redis.Redis, keys: Keys) -> None:
    """Add (temporary password, must change), disable, enable, change role, reset and end
    a session: the store changes, the user's sessions end on the revocation stream, and
    the trail says who did what to whom, never with a password in it."""
    store = services(app).users
    first = view.add_user("field-1", "cso", "North")
    made = store.get("field-1")
    assert made is not None and made.must_change and made.role == "cso"
    assert store.authenticate("field-1", first) is not None
    tablet = session_of(app, User("field-1", "cso", "North"), "10.2.2.2")
    view.set_disabled("field-1", True)
    assert store.get("field-1").disabled  # type: ignore[union-attr]
    assert services(app).sessions.get(tablet.sid) is None
    view.set_disabled("field-1", False)
    view.change_role("field-1", "sro", "South")
    second = view.reset_password("field-1")
    assert store.authenticate("field-1", second) is not None
    again = session_of(app, User("field-1", "sro", "South"), "10.2.2.2")
    assert view.end_session(again.sid) is True
    assert view.end_session(again.sid) is False  # already ended: nothing more to record
    assert {"sid": tablet.sid, "user": "field-1", "reason": "user_changed"} in \
        revocations(r, keys)
    assert revocations(r, keys)[-1] == {"sid": again.sid, "user": "field-1",
                                        "reason": "ended_by_admin"}
    entries = trail(r, keys)
    assert [(e["action"], e["user"], e["role"], e["address"], e["detail"]) for e in entries] == [
        ("admin_user_add", "boss", "admin", "10.1.1.1",
         {"target": "field-1", "new_role": "cso", "new_district": "North"}),
        ("admin_user_disable", "boss", "admin", "10.1.1.1", {"target": "field-1"}),
        ("admin_user_enable", "boss", "admin", "10.1.1.1", {"target": "field-1"}),
        ("admin_user_change", "boss", "admin", "10.1.1.1",
         {"target": "field-1", "old_role": "cso", "old_district": "North",
          "new_role": "sro", "new_district": "South"}),
        ("admin_password_reset", "boss", "admin", "10.1.1.1", {"target": "field-1"}),
        ("admin_session_end", "boss", "admin", "10.1.1.1",
         {"target": "field-1", "session": again.sid[:8]}),
    ]
    stored = str(r.xrange(keys.audit))
    assert first not in stored and second not in stored


def test_an_admin_cannot_lock_themself_out_and_bad_input_is_refused(
        app: Any, as_boss: None) -> None:
    """Disabling, demoting or resetting one's own account is refused with a sentence (the
    last admin would lock everyone out); so are a taken name, a bad role and a tablet
    role without a district, and nothing is changed."""
    with pytest.raises(view.Refused, match="your own account"):
        view.set_disabled("boss", True)
    with pytest.raises(view.Refused, match="your own account"):
        view.change_role("boss", "cso", "North")
    with pytest.raises(view.Refused, match="your own account"):
        view.reset_password("boss")
    with pytest.raises(ValueError, match="already exists"):
        view.add_user("sup", "cso", "North")
    with pytest.raises(ValueError, match="one district"):
        view.add_user("field-2", "cso", None)
    with pytest.raises(ValueError, match="user name"):
        view.add_user("bad name!", "cso", "North")
    record = services(app).users.get("boss")
    assert record is not None and record.role == "admin" and not record.disabled
    assert services(app).users.get("field-2") is None


def test_every_step_checks_the_admin_role(app: Any, r: redis.Redis, keys: Keys) -> None:
    """A supervisor (or anyone but an admin) can change nothing and search nothing."""
    with app.server.test_request_context("/admin", environ_base={"REMOTE_ADDR": "10.3.3.3"}):
        flask.g.session = session_of(app, User("sup", "supervisor"))
        for step in (lambda: view.add_user("x-1", "cso", "North"),
                     lambda: view.set_disabled("boss", True),
                     lambda: view.change_role("boss", "cso", "North"),
                     lambda: view.reset_password("boss"),
                     lambda: view.end_session("nope"),
                     lambda: view.search({})):
            with pytest.raises(PermissionError):
                step()
    record = services(app).users.get("boss")
    assert record is not None and record.role == "admin" and not record.disabled
    assert services(app).users.get("x-1") is None
    assert r.xlen(keys.audit) == 0


def _signed_in(app: Any, name: str, password: str) -> Any:
    client = app.server.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.4.4.4"
    page = client.get("/login").get_data(True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce
    reply = client.post("/login", data={"name": name, "password": password,
                                        "nonce": nonce.group(1), "next": "/"})
    assert reply.status_code == 302
    return client


def test_the_csv_export_is_formula_safe_filtered_recorded_and_admin_only(
        app: Any, r: redis.Redis, keys: Keys) -> None:
    """POST /admin/audit.csv streams the matching entries as CSV whose cells no spreadsheet
    runs; the export is recorded; a supervisor gets 403 (recorded), a missing CSRF token
    403, a bad date 400."""
    log = AuditLog(r, keys, DAY)
    log.append("call_detail", Actor("=HYPERLINK(\"x\")", "cso", "North", "10.9.9.9"), "C-77")
    log.append("call_detail", Actor("cso-north", "cso", "North", "10.9.9.9"), "C-78")
    boss = _signed_in(app, "boss", PASSWORD)
    csrf = boss.get_cookie("_csrf_token")
    assert csrf is not None
    reply = boss.post(view.EXPORT_PATH, data={"csrf": csrf.value, "call_id": "C-77"})
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert re.match(r'attachment; filename="audit-\d{8}-\d{4}\.csv"',
                    reply.headers["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(reply.get_data(True))))
    assert [(row["user"], row["call_id"]) for row in rows] == [("'=HYPERLINK(\"x\")", "C-77")]
    exports = [e for e in trail(r, keys) if e["action"] == "audit_export"]
    assert [(e["user"], e["detail"]) for e in exports] == [("boss", {"call_id": "C-77"})]
    assert boss.post(view.EXPORT_PATH, data={"call_id": "C-77"}).status_code == 403
    assert boss.post(view.EXPORT_PATH, data={"csrf": csrf.value,
                                             "since": "June"}).status_code == 400
    sup = _signed_in(app, "sup", "sup-password-1")
    sup_csrf = sup.get_cookie("_csrf_token")
    assert sup_csrf is not None
    assert sup.post(view.EXPORT_PATH, data={"csrf": sup_csrf.value}).status_code == 403
    refusals = [e for e in trail(r, keys) if e["action"] == "refused"]
    assert [(e["user"], e["detail"]["path"]) for e in refusals] == [("sup", view.EXPORT_PATH)]
