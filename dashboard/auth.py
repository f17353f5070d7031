"""Who may sign in: the users file, password hashes, sessions, SSO and the sign-in limit.

Users live in a JSON file (``settings.resolved_users_file``) holding argon2id hashes, which
are salted by construction. Sessions are Flask's signed cookie (HttpOnly, SameSite=Lax),
signed with ``settings.secret_key``. The sign-in form carries a signed nonce so a page on
another site cannot post it; the browser tests drive the real form.

Single sign-on: when ``DISPATCH_SSO_USER_HEADER`` is set, a request that comes from one of
``DISPATCH_SSO_TRUSTED_PROXIES`` (the reverse proxy that authenticated the person) and carries
that header is signed in as the named user, with the role and district from
``DISPATCH_SSO_ROLE_HEADER`` / ``DISPATCH_SSO_DISTRICT_HEADER``. Requests from any other
address never get their headers trusted. The proxy must strip these headers from what
clients send, and the dashboard must only be reachable through it.
"""

from __future__ import annotations

import html
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flask
import itsdangerous
import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dashboard.runtime import ROLES, TABLET_ROLES, User
from streams.core import tokens
from streams.core.keys import LOGIN_FAILURE_WINDOW_SECONDS, Keys
from streams.core.settings import Settings

log = logging.getLogger(__name__)

DEMO_USERS: tuple[tuple[str, str, str | None], ...] = (
    ("commander", "commander", None),
    ("cso-north", "cso", "North"),
    ("sro-south", "sro", "South"),
    ("supervisor", "supervisor", None),
    ("admin", "admin", None),
)
FORM_NONCE_SALT = "login-form"
FORM_NONCE_MAX_AGE_SECONDS = 3600
SESSION_HOURS = 12

_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# --- users file -------------------------------------------------------------------------
def load_users(path: Path) -> dict[str, dict[str, Any]]:
    """name -> {"hash", "role", "district"}; an absent file means no users."""
    if not path.exists():
        return {}
    users: dict[str, dict[str, Any]] = json.loads(path.read_text())["users"]
    return users


def save_users(path: Path, users: dict[str, dict[str, Any]]) -> None:
    """Write the users file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text(json.dumps({"users": users}, indent=1, sort_keys=True))
    os.replace(temporary, path)


def check_user_fields(name: str, role: str, district: str | None) -> None:
    """Raise ValueError saying what is wrong with a user's name, role or district."""
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(
            ".", "").isalnum():
        raise ValueError(f"user name {name!r}: use 1-64 letters, digits, '-', '_' or '.'")
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role in TABLET_ROLES and not district:
        raise ValueError(f"a {role} works in one district: give --district (e.g. North)")


def add_user(path: Path, name: str, role: str, password: str,
             district: str | None = None) -> User:
    """Add or replace a user in the users file, storing only a salted argon2 hash."""
    check_user_fields(name, role, district)
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    users = load_users(path)
    users[name] = {"hash": _hasher.hash(password), "role": role, "district": district}
    save_users(path, users)
    return User(name, role, district)


def authenticate(path: Path, name: str, password: str) -> User | None:
    """The user when ``password`` is theirs, else None."""
    record = load_users(path).get(name)
    try:
        _hasher.verify(record["hash"] if record else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if record is None:
        return None
    return User(name, record["role"], record.get("district"))


def ensure_demo_users(settings: Settings) -> dict[str, str]:
    """On first run (no users file), create one demo user per role with a random password.

    The passwords go to <data dir>/demo-credentials.txt (owner-only) for the launcher to
    print; returns name -> password, or {} when a users file already exists.
    """
    path = settings.resolved_users_file
    if path.exists():
        return {}
    passwords = {name: secrets.token_urlsafe(9) for name, _, _ in DEMO_USERS}
    users = {name: {"hash": _hasher.hash(passwords[name]), "role": role, "district": district}
             for name, role, district in DEMO_USERS}
    save_users(path, users)
    credentials = settings.data_dir / "demo-credentials.txt"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.touch(mode=0o600)
    credentials.chmod(0o600)
    credentials.write_text("".join(
        f"{name:<11} password {passwords[name]}  ({role}{', ' + district if district else ''})\n"
        for name, role, district in DEMO_USERS))
    return passwords


# --- secrets and tokens -----------------------------------------------------------------
def require_secret_key(settings: Settings) -> str:
    """The signing secret, or RuntimeError telling how to set one."""
    if not settings.secret_key:
        raise RuntimeError("no secret key: set DISPATCH_SECRET_KEY to a long random string, "
                           "the same for every web worker and the push service (`make run` "
                           "sets one for you)")
    return settings.secret_key


def make_ws_token(settings: Settings, user: User) -> str:
    """A short-lived websocket token for ``user`` (the push service verifies it)."""
    return tokens.make_ws_token(require_secret_key(settings), user.name, user.role,
                                user.district)


# --- sign-in rate limit -----------------------------------------------------------------
def limit_reached(failures: int, allowed_per_minute: int) -> bool:
    """True when this many recent failures block further sign-in attempts."""
    return failures >= allowed_per_minute


class LoginLimiter:
    """Failed sign-ins per user and address, counted in Redis so every worker shares them."""

    def __init__(self, client: redis.Redis, keys: Keys, allowed_per_minute: int) -> None:
        self.client = client
        self.keys = keys
        self.allowed = allowed_per_minute

    def failures(self, name: str, address: str) -> int:
        value = self.client.get(self.keys.login_failures(name, address))
        return int(value) if value else 0

    def blocked(self, name: str, address: str) -> bool:
        return limit_reached(self.failures(name, address), self.allowed)

    def record_failure(self, name: str, address: str) -> int:
        """Count one failure; the window starts at the first failure and lasts a minute."""
        key = self.keys.login_failures(name, address)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(key, 0, ex=LOGIN_FAILURE_WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        return int(pipe.execute()[1])

    def clear(self, name: str, address: str) -> None:
        self.client.delete(self.keys.login_failures(name, address))


# --- Flask side ---------------------------------------------------------------------------
def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no //host or scheme)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/"
    return target


def sso_user(settings: Settings, request: flask.Request) -> User | None:
    """The user a trusted proxy vouches for in headers, else None."""
    if not settings.sso_user_header or request.remote_addr not in settings.sso_trusted_proxies:
        return None
    name = request.headers.get(settings.sso_user_header, "").strip()
    role = request.headers.get(settings.sso_role_header, "").strip()
    district = request.headers.get(settings.sso_district_header, "").strip() or None
    if not name:
        return None
    try:
        check_user_fields(name, role, district)
    except ValueError as error:
        log.warning("SSO headers from %s refused: %s", request.remote_addr, error)
        return None
    return User(name, role, district)


def sign_in(user: User, via: str) -> None:
    flask.session.clear()
    flask.session.permanent = True
    flask.session["user"] = {"name": user.name, "role": user.role, "district": user.district,
                             "via": via}


def _nonce_signer(settings: Settings) -> itsdangerous.URLSafeTimedSerializer:
    return itsdangerous.URLSafeTimedSerializer(require_secret_key(settings), salt=FORM_NONCE_SALT)


LOGIN_PAGE = """<!doctype html>
<html lang="en" data-bs-theme="dark"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - Hartford dispatch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/vendor/bootstrap.min.css"></head>
<body class="d-flex align-items-center justify-content-center" style="min-height:100vh">
<main class="card p-4" style="width:22rem">
<h1 class="h4 mb-3">Hartford dispatch</h1>
{message}
<form method="post" action="/login" id="login-form">
<input type="hidden" name="nonce" value="{nonce}">
<input type="hidden" name="next" value="{next}">
<label class="form-label" for="login-name">User name</label>
<input class="form-control form-control-lg mb-3" id="login-name" name="name" value="{name}"
 autocomplete="username" autocapitalize="none" required autofocus>
<label class="form-label" for="login-password">Password</label>
<input class="form-control form-control-lg mb-3" id="login-password" name="password"
 type="password" autocomplete="current-password" required>
<button class="btn btn-primary btn-lg w-100" id="login-submit" type="submit">Sign in</button>
</form></main></body></html>"""


def render_login(settings: Settings, message: str = "", name: str = "", target: str = "/",
                 status: int = 200) -> flask.Response:
    box = (f'<div class="alert alert-danger" role="alert" id="login-error">{html.escape(message)}'
           "</div>") if message else ""
    page = LOGIN_PAGE.format(message=box, nonce=_nonce_signer(settings).dumps(secrets.token_hex(8)),
                             next=html.escape(safe_next(target)), name=html.escape(name))
    return flask.Response(page, status=status, mimetype="text/html")


def install_routes(server: flask.Flask, settings: Settings, limiter: LoginLimiter) -> None:
    """Add /login, /logout and /auth/ws-token to the Flask server."""
    users_file = settings.resolved_users_file

    @server.get("/login")
    def login_form() -> flask.Response:
        return render_login(settings, target=flask.request.args.get("next", "/"))

    @server.post("/login")
    def login_submit() -> flask.Response | Any:
        form = flask.request.form
        name, target = form.get("name", "").strip(), form.get("next", "/")
        address = flask.request.remote_addr or "unknown"
        try:
            _nonce_signer(settings).loads(form.get("nonce", ""),
                                          max_age=FORM_NONCE_MAX_AGE_SECONDS)
        except itsdangerous.BadData:
            return render_login(settings, "The form expired; please sign in again.", name,
                                target, 400)
        if limiter.blocked(name, address):
            log.warning("sign-in refused (rate limited): user %r from %s", name, address)
            return render_login(settings, "Too many failed sign-ins: wait a minute and "
                                "try again.", name, target, 429)
        user = authenticate(users_file, name, form.get("password", ""))
        if user is None:
            failures = limiter.record_failure(name, address)
            log.warning("failed sign-in %d: user %r from %s", failures, name, address)
            return render_login(settings, "Wrong user name or password.", name, target, 401)
        limiter.clear(name, address)
        sign_in(user, "password")
        log.info("signed in: user %r (%s) from %s", user.name, user.role, address)
        return flask.redirect(safe_next(target))

    @server.route("/logout", methods=["GET", "POST"])
    def logout() -> Any:
        flask.session.clear()
        return flask.redirect("/login")

    @server.get("/auth/ws-token")
    def ws_token() -> Any:
        from dashboard.runtime import current_user  # noqa: PLC0415 - guard already ran

        user = current_user()
        if user is None:
            return flask.jsonify(error="sign in first"), 403
        return flask.jsonify(token=make_ws_token(settings, user))
