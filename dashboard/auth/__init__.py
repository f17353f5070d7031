"""Who may sign in, and how: users, sessions and the sign-in limits, all in Redis.

Everything is shared by every web worker on any machine through Redis, under one hash tag
(``streams.core.keys.AUTH_TAG``):

- ``users.UserStore``: users with argon2id hashes, roles and districts (what /admin uses);
  a ``users.json`` of an older version is imported once, then no longer read.
- ``sessions.SessionStore``: server-side sessions; the cookie carries only a random secret,
  sign-out and admins end sessions for good, idle timeout and lifetime come from settings.
- ``limits.SignInGate``: one atomic check-and-count per attempt (address, user, browser)
  and a password-hash budget shared by all workers.
- ``proxies``: client address and https from a trusted reverse proxy only.
- ``routes``: /login, /logout (POST), /password, /auth/ws-token, /auth/activity.
- ``requests``: each request's session, cookies and CSRF check.
- ``headers`` and ``errors``: security headers on every response; refusals, not crashes.

Single sign-on: when ``DISPATCH_SSO_USER_HEADER`` is set, a request from one of
``DISPATCH_TRUSTED_PROXIES`` carrying that header is signed in as the named user, with the
role and district from ``DISPATCH_SSO_ROLE_HEADER`` / ``DISPATCH_SSO_DISTRICT_HEADER``. The
proxy must strip these headers from what clients send, and the dashboard must only be
reachable through it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import redis

from dashboard.auth.limits import SignInGate
from dashboard.auth.sessions import Session, SessionStore
from dashboard.auth.users import UserStore, check_user_fields
from streams.clients import close as close_client
from streams.clients import sync_client
from streams.core import tokens
from streams.core.access import User
from streams.core.keys import Keys
from streams.core.proxies import TrustedProxies
from streams.core.settings import Settings

__all__ = ["DEMO_USERS", "Auth", "Session", "User", "UserStore", "check_user_fields",
           "ensure_demo_users", "make_ws_token", "open_users", "require_secret_key"]

log = logging.getLogger(__name__)

DEMO_USERS: tuple[tuple[str, str, str | None], ...] = (
    ("commander", "commander", None),
    ("cso-north", "cso", "North"),
    ("sro-south", "sro", "South"),
    ("supervisor", "supervisor", None),
    ("admin", "admin", None),
)


def require_secret_key(settings: Settings) -> str:
    """The signing secret, or RuntimeError telling how to set one."""
    if not settings.secret_key:
        raise RuntimeError("no secret key: set DISPATCH_SECRET_KEY to a long random string, "
                           "the same for every web worker and the push service (`make run` "
                           "sets one for you)")
    return settings.secret_key


@dataclass(frozen=True)
class Auth:
    """The sign-in services of one process, built once by ``Auth.open``."""

    settings: Settings
    secret: str
    keys: Keys
    users: UserStore
    sessions: SessionStore
    gate: SignInGate
    proxies: TrustedProxies

    @classmethod
    def open(cls, settings: Settings, client: redis.Redis | None = None) -> Auth:
        """Connect to ``settings``' Redis and import an older users file if one is there."""
        client = client if client is not None else sync_client(
            settings.redis_address)
        keys = settings.keys
        sessions = SessionStore(client, keys, settings.session_idle_minutes,
                                settings.session_hours)
        users = UserStore(client, keys, sessions)
        try:
            users.import_file_once(settings.resolved_users_file)
        except redis.ConnectionError as error:  # Redis still starting: the next start imports
            log.warning("users file not imported yet: redis unreachable: %s", error)
        gate = SignInGate(client, keys, settings.login_attempts_per_minute,
                          settings.login_user_failures, settings.login_hashes_per_second)
        return cls(settings, require_secret_key(settings), keys, users, sessions, gate,
                   TrustedProxies.parse(settings.trusted_proxies))


def open_users(settings: Settings) -> UserStore:
    """The user store on ``settings``' Redis, for the command line (no secret needed); an
    older version's users file is imported first if it was never imported."""
    client = sync_client(settings.redis_address)
    keys = settings.keys
    store = UserStore(client, keys, SessionStore(client, keys, settings.session_idle_minutes,
                                                 settings.session_hours))
    store.import_file_once(settings.resolved_users_file)
    return store


def make_ws_token(settings: Settings, user: User, sid: str) -> str:
    """A short-lived websocket token for ``user`` in session ``sid`` (push verifies it and
    closes the socket when that session ends)."""
    return tokens.make_ws_token(require_secret_key(settings), user.name, user.role,
                                user.district, sid=sid)


def ensure_demo_users(settings: Settings) -> dict[str, str]:
    """On first start (no users in Redis), create one demo user per role with a random
    password; the passwords go to <data dir>/demo-credentials.txt (owner-only) for the
    launcher to print. Returns name -> password, or {} when users exist."""
    store = open_users(settings)
    try:
        if store.count():
            return {}
        passwords = {name: secrets.token_urlsafe(9) for name, _, _ in DEMO_USERS}
        for name, role, district in DEMO_USERS:
            store.add(name, role, passwords[name], district, replace=False)
    finally:
        close_client(store.client)
    credentials = settings.data_dir / "demo-credentials.txt"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.touch(mode=0o600)
    credentials.chmod(0o600)
    credentials.write_text("".join(
        f"{name:<11} password {passwords[name]}  ({role}{', ' + district if district else ''})\n"
        for name, role, district in DEMO_USERS))
    log.info("created %d demo users (passwords in %s)", len(passwords), credentials)
    return passwords
