"""Users file, password hashes, demo users, sign-in limit rule, tokens, status-page maths."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import auth
from dashboard.live import push_url
from dashboard.runtime import ROLES, User
from layouts.status import feed_rows, feed_state
from streams.core import tokens
from streams.core.keys import SOURCES, Keys
from streams.core.settings import PROJECT_ROOT, Settings


def test_passwords_are_stored_only_as_salted_argon2_hashes(tmp_path: Path) -> None:
    """The users file holds argon2id hashes, different for the same password twice."""
    users = tmp_path / "users.json"
    auth.add_user(users, "alice", "supervisor", "correct horse")
    auth.add_user(users, "bob", "supervisor", "correct horse")
    text = users.read_text()
    assert "correct horse" not in text
    stored = json.loads(text)["users"]
    assert stored["alice"]["hash"].startswith("$argon2id$")
    assert stored["alice"]["hash"] != stored["bob"]["hash"]


def test_users_file_is_owner_only(tmp_path: Path) -> None:
    """Nobody but the owner can read the users file."""
    users = tmp_path / "users.json"
    auth.add_user(users, "alice", "admin", "long enough")
    assert stat.S_IMODE(users.stat().st_mode) == 0o600


def test_authenticate_accepts_only_the_right_password(tmp_path: Path) -> None:
    """Right password -> the user with role and district; wrong password or name -> None."""
    users = tmp_path / "users.json"
    auth.add_user(users, "cso-7", "cso", "patrol-north", "North")
    assert auth.authenticate(users, "cso-7", "patrol-north") == User("cso-7", "cso", "North")
    assert auth.authenticate(users, "cso-7", "patrol-south") is None
    assert auth.authenticate(users, "nobody", "patrol-north") is None
    assert auth.authenticate(tmp_path / "missing.json", "cso-7", "patrol-north") is None


def test_adding_a_user_again_replaces_the_password(tmp_path: Path) -> None:
    """adduser on an existing name changes its password and role."""
    users = tmp_path / "users.json"
    auth.add_user(users, "alice", "commander", "first-password")
    auth.add_user(users, "alice", "supervisor", "second-password")
    assert auth.authenticate(users, "alice", "first-password") is None
    assert auth.authenticate(users, "alice", "second-password") == User("alice", "supervisor")


@pytest.mark.parametrize(("name", "role", "district", "password", "message"), [
    ("alice", "chief", None, "long enough", "is not one of"),
    ("cso-1", "cso", None, "long enough", "give --district"),
    ("sro-1", "sro", "", "long enough", "give --district"),
    ("bad name!", "admin", None, "long enough", "user name"),
    ("", "admin", None, "long enough", "user name"),
    ("alice", "admin", None, "short", "at least 8"),
])
def test_add_user_rejects_bad_fields(tmp_path: Path, name: str, role: str,
                                     district: str | None, password: str, message: str) -> None:
    """Unknown roles, tablet roles without a district, odd names and short passwords fail."""
    with pytest.raises(ValueError, match=message):
        auth.add_user(tmp_path / "users.json", name, role, password, district)
    assert not (tmp_path / "users.json").exists()


def test_demo_users_are_created_once_with_printed_credentials(tmp_path: Path) -> None:
    """First run creates one user per role and an owner-only credentials file; later runs
    leave the users file alone."""
    settings = Settings(data_dir=tmp_path)
    passwords = auth.ensure_demo_users(settings)
    assert sorted(passwords) == sorted(name for name, _, _ in auth.DEMO_USERS)
    roles = {auth.authenticate(settings.resolved_users_file, name, pw).role  # type: ignore[union-attr]
             for name, pw in passwords.items()}
    assert roles == set(ROLES)
    credentials = tmp_path / "demo-credentials.txt"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    for name, password in passwords.items():
        assert f"{name}" in credentials.read_text() and password in credentials.read_text()
    assert auth.ensure_demo_users(settings) == {}


def test_adduser_command_reads_the_password_from_stdin(tmp_path: Path) -> None:
    """`python -m dashboard adduser` stores a user that can then sign in."""
    env = {"DISPATCH_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", "adduser", "sro-9", "--role", "sro",
         "--district", "South", "--password-stdin"], input="school-beat-9\n", env=env,
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert auth.authenticate(tmp_path / "users.json", "sro-9", "school-beat-9") == \
        User("sro-9", "sro", "South")
    refused = subprocess.run(
        [sys.executable, "-m", "dashboard", "adduser", "sro-10", "--role", "sro",
         "--password-stdin"], input="school-beat-10\n", env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2
    assert "--district" in refused.stderr


@pytest.mark.parametrize(("failures", "allowed", "limited"), [
    (0, 5, False), (4, 5, False), (5, 5, True), (9, 5, True), (1, 1, True), (0, 1, False)])
def test_limit_is_reached_at_the_allowed_number_of_failures(failures: int, allowed: int,
                                                            limited: bool) -> None:
    """With N allowed failures a minute, the N+1th attempt is refused."""
    assert auth.limit_reached(failures, allowed) is limited


def test_login_failure_key_is_per_user_and_address() -> None:
    """The counter key separates users and addresses under the deployment prefix."""
    keys = Keys("p")
    assert keys.login_failures("alice", "10.0.0.1") == "p:login-failures:alice:10.0.0.1"
    assert keys.login_failures("alice", "10.0.0.1") != keys.login_failures("bob", "10.0.0.1")


@pytest.mark.parametrize(("target", "expected"), [
    ("/wall", "/wall"), ("/queues?district=North", "/queues?district=North"), (None, "/"),
    ("", "/"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), ("wall", "/")])
def test_only_same_site_paths_are_followed_after_sign_in(target: str | None,
                                                         expected: str) -> None:
    """The next parameter cannot send a signed-in person to another site."""
    assert auth.safe_next(target) == expected


def test_secret_key_is_required() -> None:
    """Without DISPATCH_SECRET_KEY the app refuses to start and says what to set."""
    with pytest.raises(RuntimeError, match="DISPATCH_SECRET_KEY"):
        auth.require_secret_key(Settings(secret_key=None))
    assert auth.require_secret_key(Settings(secret_key="s3cret")) == "s3cret"


def test_ws_token_round_trip_carries_the_user() -> None:
    """A token made for a user verifies back to that user, role and district."""
    settings = Settings(secret_key="token-secret", ws_token_seconds=300)
    token = auth.make_ws_token(settings, User("cso-north", "cso", "North"))
    claims = tokens.verify_token("token-secret", token, 300)
    assert (claims.user, claims.role, claims.district) == ("cso-north", "cso", "North")
    with pytest.raises(tokens.TokenInvalid):
        tokens.verify_token("other-secret", token, 300)


@pytest.mark.parametrize(("configured", "host_url", "expected"), [
    (None, "http://127.0.0.1:8050/", "ws://127.0.0.1:8765/live"),
    (None, "http://wall.example.org/", "ws://wall.example.org:8765/live"),
    (None, "https://dispatch.example.org/", "wss://dispatch.example.org:8765/live"),
    (None, "http://[::1]:8050/", "ws://[::1]:8765/live"),
    ("wss://push.example.org/live", "http://127.0.0.1:8050/", "wss://push.example.org/live"),
])
def test_push_url_uses_the_page_host_unless_configured(configured: str | None, host_url: str,
                                                       expected: str) -> None:
    """Browsers reach the push service on the page's host and the push port."""
    assert push_url(Settings(push_public_url=configured, push_port=8765), host_url) == expected


@pytest.mark.parametrize(("seen", "state"), [
    (None, (False, "no events yet")), (1000.0, (True, "live")), (700.0, (True, "live")),
    (699.0, (False, "stale for 5 min")), (1000.0 - 3600, (False, "stale for 60 min"))])
def test_feed_state_turns_stale_after_the_threshold(seen: float | None,
                                                    state: tuple[bool, str]) -> None:
    """A feed is live up to stale_after seconds after its last applied event."""
    assert feed_state(seen, now=1000.0, stale_after_s=300) == state


def test_feed_state_under_a_minute_stale_says_seconds() -> None:
    """A short threshold reads in seconds rather than '0 min'."""
    assert feed_state(950.0, now=1000.0, stale_after_s=10) == (False, "stale for 50 s")


def test_feed_rows_cover_every_source_in_order() -> None:
    """One row per source, missing sources shown as never seen with zero counts."""
    freshness = {"cad": {"event_time": 900.0, "seen": 990.0, "count": 12, "rejected": 2}}
    rows = feed_rows(freshness, {"cad": 3}, now=1000.0, stale_after_s=300)
    assert [row["source"] for row in rows] == list(SOURCES)
    assert rows[0] == {"source": "cad", "live": True, "state": "live", "event_time": 900.0,
                       "applied": 12, "rejected": 2, "duplicate": 3}
    assert rows[1] == {"source": "avl", "live": False, "state": "no events yet",
                       "event_time": None, "applied": 0, "rejected": 0, "duplicate": 0}
