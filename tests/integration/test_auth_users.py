"""Users in Redis: the store /admin is built on, the one-time users.json import, `adduser`
and the demo users, on a real Redis."""

from __future__ import annotations

import dataclasses
import json
import logging
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from dashboard import auth
from dashboard.auth import passwords
from dashboard.auth.users import UnknownUser, UserStore
from streams.core.access import ROLES, User
from streams.core.keys import Keys
from streams.core.sessions import Revocation
from streams.core.settings import PROJECT_ROOT, Settings


@pytest.fixture
def store(settings: Settings, r: redis.Redis) -> UserStore:
    return auth.open_users(settings)


def test_passwords_are_stored_only_as_salted_argon2_hashes(store: UserStore, r: redis.Redis,
                                                           keys: Keys) -> None:
    """Redis holds argon2id hashes, different for the same password twice."""
    store.add("alice", "supervisor", "correct horse")
    store.add("bob", "supervisor", "correct horse")
    alice, bob = r.hgetall(keys.user("alice")), r.hgetall(keys.user("bob"))
    assert b"correct horse" not in b"".join(alice.values())
    assert alice[b"hash"].startswith(b"$argon2id$") and alice[b"hash"] != bob[b"hash"]
    assert r.smembers(keys.users) == {b"alice", b"bob"}


def test_two_workers_see_the_same_users(settings: Settings, redis_factory: object) -> None:
    """A user added through one client (worker) signs in through another."""
    first, second = auth.open_users(settings), auth.open_users(settings)
    assert first.client is not second.client
    first.add("cso-7", "cso", "patrol-north", "North")
    record = second.authenticate("cso-7", "patrol-north")
    assert record is not None and record.user == User("cso-7", "cso", "North")


def test_authenticate_accepts_only_the_right_password(store: UserStore) -> None:
    """Right password -> the record; wrong password or unknown name -> None."""
    store.add("cso-7", "cso", "patrol-north", "North")
    assert store.authenticate("cso-7", "patrol-north") is not None
    assert store.authenticate("cso-7", "patrol-south") is None
    assert store.authenticate("nobody", "patrol-north") is None
    assert store.authenticate("bad name!", "patrol-north") is None


def test_adding_again_replaces_but_create_refuses(store: UserStore) -> None:
    """adduser on an existing name changes its password and role; the admin's create
    (replace=False) refuses an existing name."""
    store.add("alice", "commander", "first-password")
    store.add("alice", "supervisor", "second-password")
    assert store.authenticate("alice", "first-password") is None
    record = store.authenticate("alice", "second-password")
    assert record is not None and record.role == "supervisor"
    with pytest.raises(ValueError, match="already exists"):
        store.add("alice", "admin", "third-password", replace=False)
    assert [user.name for user in store.list()] == ["alice"]


@pytest.mark.parametrize(("name", "role", "district", "password", "message"), [
    ("alice", "chief", None, "long enough", "is not one of"),
    ("cso-1", "cso", None, "long enough", "give --district"),
    ("sro-1", "sro", "", "long enough", "give --district"),
    ("bad name!", "admin", None, "long enough", "user name"),
    ("", "admin", None, "long enough", "user name"),
    ("alice", "admin", None, "short", "at least 8"),
])
def test_add_user_rejects_bad_fields(store: UserStore, name: str, role: str,
                                     district: str | None, password: str, message: str) -> None:
    """Unknown roles, tablet roles without a district, odd names and short passwords fail
    and store nothing."""
    with pytest.raises(ValueError, match=message):
        store.add(name, role, password, district)
    assert store.count() == 0


def test_admin_changes_take_effect_and_end_sessions(store: UserStore, r: redis.Redis,
                                                    keys: Keys) -> None:
    """Disable, role/district change and password reset each end the user's sessions
    (recorded for push); enable restores sign-in; a reset password must be changed."""
    store.add("cso-7", "cso", "patrol-north", "North")
    sessions = store.sessions
    _, first = sessions.create(User("cso-7", "cso", "North"), "password", "10.0.0.1", "ua")
    disabled = store.set_disabled("cso-7", True)
    assert disabled.disabled and sessions.get(first.sid) is None
    assert not store.set_disabled("cso-7", False).disabled
    _, second = sessions.create(User("cso-7", "cso", "North"), "password", "10.0.0.1", "ua")
    changed = store.set_role("cso-7", "sro", "South")
    assert (changed.role, changed.district) == ("sro", "South")
    assert sessions.get(second.sid) is None
    with pytest.raises(ValueError, match="give --district"):
        store.set_role("cso-7", "cso", None)
    temporary = store.reset_password("cso-7")
    record = store.authenticate("cso-7", temporary)
    assert record is not None and record.must_change
    assert store.authenticate("cso-7", "patrol-north") is None
    entries = [Revocation.from_fields(fields)
               for _, fields in r.xrange(keys.session_revocations)]
    assert [(e.sid, e.user, e.reason) for e in entries] == [
        (first.sid, "cso-7", "user_changed"), (second.sid, "cso-7", "user_changed")]
    with pytest.raises(UnknownUser):
        store.set_disabled("nobody", True)
    assert not r.exists(keys.user("nobody"))


def test_change_password_clears_must_change_and_ends_other_sessions(store: UserStore) -> None:
    """The user's own change keeps the session it was made in and ends the others."""
    store.add("sup", "supervisor", "old-password", must_change=True)
    user = User("sup", "supervisor")
    _, here = store.sessions.create(user, "password", "10.0.0.1", "ua", must_change=True)
    _, elsewhere = store.sessions.create(user, "password", "10.0.0.2", "ua")
    store.change_password("sup", "new-password", keep_session=here.sid)
    record = store.authenticate("sup", "new-password")
    assert record is not None and not record.must_change
    assert store.sessions.get(here.sid) is not None
    assert store.sessions.get(elsewhere.sid) is None


def test_users_file_is_imported_once_then_no_longer_read(
        settings: Settings, r: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    """An older version's users.json is imported at first start (hashes kept, so the same
    passwords work), the log says the file is no longer read, and later edits to the file
    change nothing."""
    path = settings.resolved_users_file
    path.parent.mkdir(parents=True)
    old = {"users": {
        "cmdr": {"hash": passwords.hash_password("old-version-pw"), "role": "commander",
                 "district": None},
        "cso-n": {"hash": passwords.hash_password("old-version-pw"), "role": "cso",
                  "district": "North"},
        "broken": {"hash": "x", "role": "chief", "district": None}}}
    path.write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING, logger="dashboard.auth.users"):
        store = auth.open_users(settings)
    assert [user.name for user in store.list()] == ["cmdr", "cso-n"]
    assert store.authenticate("cso-n", "old-version-pw") is not None
    assert "imported 2 users" in caplog.text and "no longer read" in caplog.text
    assert "'broken' skipped" in caplog.text
    old["users"]["intruder"] = {"hash": passwords.hash_password("intruder-pw"),
                                "role": "admin", "district": None}
    path.write_text(json.dumps(old))
    again = auth.open_users(settings)
    assert again.get("intruder") is None and again.count() == 2
    path.unlink()
    assert auth.open_users(settings).authenticate("cmdr", "old-version-pw") is not None
    assert json.loads(r.get(keys.users_imported) or b"{}")["file"] == str(path)


def test_adduser_command_writes_to_redis(settings: Settings, store: UserStore) -> None:
    """`python -m dashboard adduser` stores a user in Redis that can then sign in, and
    refuses a tablet role without a district."""
    env = {"DISPATCH_DATA_DIR": str(settings.data_dir), "PATH": "/usr/bin:/bin",
           "REDIS_URL": settings.redis_address, "DISPATCH_KEY_PREFIX": settings.key_prefix}
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "adduser", "sro-9", "--role", "sro",
         "--district", "South", "--password-stdin"], input="school-beat-9\n", env=env,
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "saved in Redis" in done.stdout
    record = store.authenticate("sro-9", "school-beat-9")
    assert record is not None and record.user == User("sro-9", "sro", "South")
    refused = subprocess.run(
        [sys.executable, "-m", "dashboard", "adduser", "sro-10", "--role", "sro",
         "--password-stdin"], input="school-beat-10\n", env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "--district" in refused.stderr
    assert not settings.resolved_users_file.exists()


def test_demo_users_are_created_once_with_printed_credentials(settings: Settings,
                                                              store: UserStore) -> None:
    """First start (no users in Redis) creates one user per role and an owner-only
    credentials file; later starts leave the users alone."""
    created = auth.ensure_demo_users(settings)
    assert sorted(created) == sorted(name for name, _, _ in auth.DEMO_USERS)
    roles = set()
    for name, password in created.items():
        record = store.authenticate(name, password)
        assert record is not None
        roles.add(record.role)
    assert roles == set(ROLES)
    credentials = settings.data_dir / "demo-credentials.txt"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert all(password in credentials.read_text() for password in created.values())
    assert auth.ensure_demo_users(settings) == {}
    assert auth.ensure_demo_users(dataclasses.replace(settings)) == {}


def test_users_file_path_is_only_an_import_source(settings: Settings) -> None:
    """Nothing writes a users file any more."""
    auth.open_users(settings).add("alice", "admin", "long enough")
    assert not Path(settings.resolved_users_file).exists()
