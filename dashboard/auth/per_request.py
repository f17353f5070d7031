"""Each request's session, cookies, client address and CSRF check (the Flask side).

``load_session`` runs before every request: it reads the session cookie, loads the
session from Redis (extending its idle deadline only when a person did something, see
``counts_as_activity``) and keeps it in ``flask.g``. ``finish`` runs after every response
and writes the cookies the request changed. Flask's own signed-cookie session is switched
off (``NoCookieSessions``): nothing about a user lives in a cookie any more.
"""

from __future__ import annotations

import logging
import secrets

import flask
from flask.sessions import SessionInterface, SessionMixin

from dashboard import audit
from dashboard.auth import Auth
from dashboard.auth.headers import STATIC_PREFIXES
from dashboard.auth.sessions import Session
from dashboard.auth.users import check_user_fields
from streams.core.access import User

log = logging.getLogger(__name__)

SESSION_COOKIE = "dispatch_session"
CSRF_COOKIE, CSRF_HEADER = "_csrf_token", "X-CSRFToken"
"""Dash's renderer copies this cookie into this header on every callback request."""
CSRF_FIELD = "csrf"
"""Form field carrying the session's CSRF token (sign-out, password change)."""
ACTIVITY_PATH = "/auth/activity"
"""assets/activity.js posts here, at most once a minute, when a person used the page."""
EXTENSION = "dispatch_auth"


class NoCookieSessions(SessionInterface):
    """Flask's ``session`` is never stored: sessions live in Redis (``SessionStore``)."""

    def open_session(self, app: flask.Flask, request: flask.Request) -> None:
        return None

    def save_session(self, app: flask.Flask, session: SessionMixin,
                     response: flask.Response) -> None:
        return None


def auth() -> Auth:
    """This app's sign-in services (installed by ``install``)."""
    found: Auth = flask.current_app.extensions[EXTENSION]
    return found


def install(server: flask.Flask, services: Auth) -> None:
    server.extensions[EXTENSION] = services
    # Sign-ins, refusals and every other audited step of a request write to this trail.
    audit.init(services.users.client, services.keys, services.settings.audit_max_age_s,
               server)
    server.session_interface = NoCookieSessions()


def current_session() -> Session | None:
    """The signed-in session of this request, if any."""
    if not flask.has_request_context():
        return None
    session: Session | None = flask.g.get("session")
    return session


def client_address() -> str:
    """The client's address (X-Forwarded-For believed only from a trusted proxy)."""
    request = flask.request
    return auth().proxies.client_address(request.remote_addr,
                                         request.headers.getlist("X-Forwarded-For"))


def is_https() -> bool:
    request = flask.request
    return auth().proxies.is_https(request.scheme, request.remote_addr,
                                   request.headers.get("X-Forwarded-Proto"))


def secure_cookies() -> bool:
    """The Secure flag for this response's cookies: the setting, else whether the page
    came over https."""
    configured = auth().settings.secure_cookies
    return is_https() if configured is None else configured


def counts_as_activity(method: str, path: str) -> bool:
    """True when a request shows a person using the dashboard: a page load or the page's
    activity ping. Callbacks, token refreshes and assets are what an unattended screen
    does by itself, so they never keep a session from going idle."""
    if method == "POST":
        return path == ACTIVITY_PATH
    return method == "GET" and not path.startswith(("/_dash-", "/auth/", "/healthz",
                                                    *STATIC_PREFIXES))


def load_session() -> None:
    """before_request: put this request's session (or None) in ``flask.g``."""
    services = auth()
    request = flask.request
    secret = request.cookies.get(SESSION_COOKIE, "")
    session = services.sessions.load(
        secret, active=counts_as_activity(request.method, request.path)) if secret else None
    flask.g.session = session
    flask.g.session_ended = bool(secret) and session is None
    services.sessions.maybe_sweep()
    sync_sso()


def start_session(user: User, via: str, must_change: bool = False) -> Session:
    """Sign ``user`` in on this browser with a new session (never reusing an old id)."""
    services = auth()
    old = current_session()
    if old is not None:
        services.sessions.end(old.sid, "signed_out")
    secret, session = services.sessions.create(
        user, via, client_address(), flask.request.headers.get("User-Agent", ""), must_change)
    flask.g.session = session
    flask.g.new_session_secret = secret
    audit.record("sign_in", via=via)
    return session


def end_session(reason: str) -> None:
    """End this request's session for good and have the browser forget its cookies."""
    session = current_session()
    if session is not None:
        auth().sessions.end(session.sid, reason)
    flask.g.session = None
    flask.g.clear_session_cookie = True


def csrf_ok() -> bool:
    """The request carries this session's CSRF token (header from Dash, or form field)."""
    session = current_session()
    given = flask.request.headers.get(CSRF_HEADER) or flask.request.form.get(CSRF_FIELD, "")
    return bool(session and given and secrets.compare_digest(session.csrf, given))


def sso_user() -> User | None:
    """The user a trusted proxy vouches for in headers, else None."""
    settings, request = auth().settings, flask.request
    if not settings.sso_user_header or not auth().proxies.trusts(request.remote_addr):
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


def sync_sso() -> None:
    """Sign in (or out) whoever the trusted proxy names in its headers."""
    if not auth().settings.sso_user_header:
        return
    user, session = sso_user(), current_session()
    if user is None:
        if session is not None and session.via == "sso":
            end_session("signed_out")
        return
    if session is None or session.user != user:
        start_session(user, "sso")


def set_cookie(response: flask.Response, name: str, value: str, http_only: bool = True,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=http_only, samesite="Lax",
                        secure=secure_cookies(), path="/")


def finish(response: flask.Response) -> flask.Response:
    """after_request: write the cookies this request changed."""
    new_secret: str | None = flask.g.get("new_session_secret")
    session = current_session()
    if new_secret and session is not None:
        set_cookie(response, SESSION_COOKIE, new_secret,
                   max_age=max(1, int(session.ends_at - session.created)))
    elif flask.g.get("clear_session_cookie") or flask.g.get("session_ended"):
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
    if session is not None and flask.request.cookies.get(CSRF_COOKIE) != session.csrf:
        set_cookie(response, CSRF_COOKIE, session.csrf, http_only=False)
    return response
