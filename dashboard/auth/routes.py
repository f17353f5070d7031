"""The sign-in routes: /login, /logout, /password, /auth/ws-token, /auth/activity.

The sign-in form is bound to the browser: GET /login gives the browser a pre-session
cookie (a random id) and the form a signed token naming that id and a fresh form id. A
POST is accepted only with the same browser's cookie, within LOGIN_FORM_SECONDS, and once
(the gate spends the form id), so another site cannot sign a browser in and one form cannot
be replayed. Sign-out is a POST carrying the session's CSRF token; GET /logout only asks.
"""

from __future__ import annotations

import html
import logging
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

import flask
import itsdangerous
from werkzeug.exceptions import BadRequest

from dashboard import audit
from dashboard.auth import make_ws_token, passwords
from dashboard.auth import per_request as current
from dashboard.auth.limits import DEVICE_COOKIE, DEVICE_DAYS, Verdict, read_devices, remember_device
from streams.core.keys import LOGIN_FORM_SECONDS

log = logging.getLogger(__name__)

PRE_COOKIE = "dispatch_pre"
FORM_SALT = "login-form"
NAME_CHARS_MAX = 64

PAGE = """<!doctype html>
<html lang="en" data-bs-theme="dark"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Hartford dispatch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/vendor/bootstrap.min.css"></head>
<body class="d-flex align-items-center justify-content-center" style="min-height:100vh">
<main class="card p-4" style="width:22rem">
<h1 class="h4 mb-3">Hartford dispatch</h1>
{message}
{body}
</main></body></html>"""

LOGIN_FORM = """<form method="post" action="/login" id="login-form">
<input type="hidden" name="nonce" value="{nonce}">
<input type="hidden" name="next" value="{next}">
<label class="form-label" for="login-name">User name</label>
<input class="form-control form-control-lg mb-3" id="login-name" name="name" value="{name}"
 autocomplete="username" autocapitalize="none" required autofocus>
<label class="form-label" for="login-password">Password</label>
<input class="form-control form-control-lg mb-3" id="login-password" name="password"
 type="password" autocomplete="current-password" required>
<button class="btn btn-primary btn-lg w-100" id="login-submit" type="submit">Sign in</button>
</form>"""

PASSWORD_FORM = """<p>{intro}</p>
<form method="post" action="/password" id="password-form">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label class="form-label" for="password-current">Current password</label>
<input class="form-control form-control-lg mb-3" id="password-current" name="current"
 type="password" autocomplete="current-password" required autofocus>
<label class="form-label" for="password-new">New password (at least {minimum} characters)</label>
<input class="form-control form-control-lg mb-3" id="password-new" name="new"
 type="password" autocomplete="new-password" minlength="{minimum}" required>
<label class="form-label" for="password-again">New password again</label>
<input class="form-control form-control-lg mb-3" id="password-again" name="again"
 type="password" autocomplete="new-password" minlength="{minimum}" required>
<button class="btn btn-primary btn-lg w-100" id="password-submit" type="submit">
Change password</button>
</form>"""

LOGOUT_FORM = """<p>Sign out {name} on this device?</p>
<form method="post" action="/logout" id="logout-form">
<input type="hidden" name="csrf" value="{csrf}">
<button class="btn btn-primary btn-lg w-100" id="logout-submit" type="submit">Sign out</button>
</form>
<p class="mt-3 mb-0"><a href="/">Stay signed in</a></p>"""


# --- helpers ------------------------------------------------------------------------------
def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no //host or scheme); a control
    character (a CR LF trying to add a header) is a bad request."""
    if target and any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        raise BadRequest("The address to return to holds control characters.")
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/"
    return target


def _alert(message: str, kind: str = "danger", element_id: str = "login-error") -> str:
    if not message:
        return ""
    return (f'<div class="alert alert-{kind}" role="alert" id="{element_id}">'
            f"{html.escape(message)}</div>")


def page(title: str, body: str, message: str = "", status: int = 200,
         kind: str = "danger") -> flask.Response:
    return flask.Response(PAGE.format(title=title, body=body, message=_alert(message, kind)),
                          status=status, mimetype="text/html")


def _form_signer() -> itsdangerous.URLSafeTimedSerializer:
    return itsdangerous.URLSafeTimedSerializer(current.auth().secret, salt=FORM_SALT)


def _pre_session_id() -> str:
    """This browser's pre-session id (from its cookie, else a new one set by render)."""
    given = flask.request.cookies.get(PRE_COOKIE, "")
    if 16 <= len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        return given
    fresh: str = flask.g.get("new_pre_session") or secrets.token_urlsafe(16)
    flask.g.new_pre_session = fresh
    return fresh


def _form_id_of(token: str) -> str | None:
    """The form id of a sign-in token made for this browser and not too old, else None."""
    try:
        value = _form_signer().loads(token, max_age=LOGIN_FORM_SECONDS)
    except itsdangerous.BadData:
        return None
    pre = flask.request.cookies.get(PRE_COOKIE, "")
    if not isinstance(value, dict) or not pre or not secrets.compare_digest(
            str(value.get("pre", "")), pre):
        return None
    form_id = value.get("form")
    return form_id if isinstance(form_id, str) else None


def render_login(message: str = "", name: str = "", target: str = "/", status: int = 200,
                 kind: str = "danger", retry_after: int | None = None) -> flask.Response:
    """The sign-in page with a fresh form bound to this browser."""
    pre = _pre_session_id()
    token = _form_signer().dumps({"pre": pre, "form": secrets.token_urlsafe(12)})
    body = LOGIN_FORM.format(nonce=token, next=html.escape(safe_next(target)),
                             name=html.escape(name[:NAME_CHARS_MAX]))
    response = page("Sign in", body, message, status, kind)
    if flask.g.get("new_pre_session"):
        current.set_cookie(response, PRE_COOKIE, pre)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


REFUSALS = {
    "form_used": (400, "This sign-in form was already used; please sign in again."),
    "device": (429, "Too many failed sign-ins on this device: wait {wait} s and try again."),
    "address": (429, "Too many failed sign-ins from this address: wait {wait} s and try "
                "again."),
    "user": (429, "Too many failed sign-ins for this user: wait {wait} s and try again."),
    "busy": (503, "Sign-in is busy: try again in {wait} s."),
}
"""What a refused attempt is told (the gate's reason -> status, sentence)."""


def _typed(name: str) -> audit.Actor:
    """Who a refused sign-in claimed to be (the name typed, no role), and from where."""
    return audit.Actor(name, "", None, current.client_address())


def _refused(verdict: Verdict, name: str, target: str) -> flask.Response:
    status, text = REFUSALS[verdict.reason]
    log.warning("sign-in refused (%s): user %r from %s", verdict.reason, name,
                current.client_address())
    if verdict.reason != "form_used":
        audit.record_as(_typed(name), "sign_in_limited", reason=verdict.reason)
    return render_login(text.format(wait=max(1, verdict.wait_s)), name, target, status,
                        retry_after=max(1, verdict.wait_s))


# --- routes -------------------------------------------------------------------------------
def login_form() -> flask.Response:
    ended = flask.g.get("session_ended") or flask.request.args.get("ended") == "1"
    message = "Your session has ended; please sign in again." if ended else ""
    return render_login(message, target=flask.request.args.get("next", "/"), kind="info")


def login_submit() -> Any:
    services, form = current.auth(), flask.request.form
    name = form.get("name", "").strip()[:NAME_CHARS_MAX]
    target = safe_next(form.get("next", "/"))
    form_id = _form_id_of(form.get("nonce", ""))
    if form_id is None:
        return render_login("The form expired; please sign in again.", name, target, 400)
    devices = read_devices(services.secret, flask.request.cookies.get(DEVICE_COOKIE))
    address = current.client_address()
    verdict = services.gate.admit(form_id, name, address, devices.get(name))
    if not verdict.admitted:
        return _refused(verdict, name, target)
    record = services.users.authenticate(name, form.get("password", ""))
    if record is None:
        log.warning("failed sign-in: user %r from %s", name, address)
        audit.record_as(_typed(name), "sign_in_failed", reason="wrong_password")
        return render_login("Wrong user name or password.", name, target, 401)
    services.gate.succeeded(verdict)
    if record.disabled:
        log.warning("sign-in of disabled user %r from %s refused", name, address)
        audit.record_as(_typed(name), "sign_in_failed", reason="disabled")
        return render_login("This account is disabled; ask an administrator.", name, target,
                            403)
    current.start_session(record.user, "password", must_change=record.must_change)
    log.info("signed in: user %r (%s) from %s", record.name, record.role, address)
    landing = f"/password?next={quote(target)}" if record.must_change else target
    response = flask.redirect(landing)
    current.set_cookie(response, DEVICE_COOKIE, remember_device(services.secret, devices, name),
                       max_age=DEVICE_DAYS * 86400)
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


def logout_page() -> Any:
    """GET /logout never signs anyone out (a link or image on another site could); it asks."""
    session = current.current_session()
    if session is None:
        return flask.redirect("/login")
    return page("Sign out", LOGOUT_FORM.format(name=html.escape(session.user.name),
                                               csrf=html.escape(session.csrf)))


def logout_submit() -> Any:
    session = current.current_session()
    if session is not None:
        if not current.csrf_ok():
            log.warning("sign-out without CSRF token refused for %r", session.user.name)
            return page("Sign out", "", "The sign-out form expired; reload the page.", 403)
        audit.record("sign_out")
        current.end_session("signed_out")
        log.info("signed out: user %r from %s", session.user.name, current.client_address())
    return flask.redirect("/login")


def _password_page(message: str = "", status: int = 200) -> flask.Response:
    session = current.current_session()
    assert session is not None
    intro = ("Choose a new password before you go on." if session.must_change
             else f"Change the password of {session.user.name}.")
    body = PASSWORD_FORM.format(intro=html.escape(intro), csrf=html.escape(session.csrf),
                                next=html.escape(safe_next(flask.request.values.get("next"))),
                                minimum=passwords.MIN_LENGTH)
    return page("Change password", body, message, status)


def password_form() -> Any:
    session = current.current_session()
    if session is None:
        return flask.redirect("/login?next=/password")
    if session.via != "password":
        return page("Change password", "", "Your password is managed by your single sign-on.",
                    404)
    return _password_page()


def password_submit() -> Any:
    services, session, form = current.auth(), current.current_session(), flask.request.form
    if session is None or session.via != "password":
        return flask.redirect("/login?next=/password")
    if not current.csrf_ok():
        return _password_page("The form expired; please try again.", 403)
    new, again = form.get("new", ""), form.get("again", "")
    try:
        passwords.check_new_password(new)
    except ValueError as error:
        return _password_page(str(error).capitalize() + ".", 400)
    if new != again:
        return _password_page("The two new passwords differ.", 400)
    verdict = services.gate.admit(secrets.token_urlsafe(12), session.user.name,
                                  current.client_address(), None)
    if not verdict.admitted:
        status, text = REFUSALS[verdict.reason]
        return _password_page(text.format(wait=max(1, verdict.wait_s)), status)
    record = services.users.authenticate(session.user.name, form.get("current", ""))
    if record is None:
        return _password_page("The current password is wrong.", 401)
    services.gate.succeeded(verdict)
    if passwords.verify(record.password_hash, new):
        return _password_page("Choose a password different from the current one.", 400)
    services.users.change_password(session.user.name, new, keep_session=session.sid)
    services.sessions.set_must_change(session.sid, False)
    log.info("password changed: user %r from %s", session.user.name, current.client_address())
    audit.record("password_changed")
    return flask.redirect(safe_next(form.get("next", "/")))


def ws_token() -> Any:
    session = current.current_session()
    if session is None:
        return flask.jsonify(error="sign in first"), 403
    return flask.jsonify(token=make_ws_token(current.auth().settings, session.user,
                                             session.sid))


def activity() -> Any:
    """The page says a person used it (load_session has already moved the idle deadline)."""
    if current.current_session() is None:
        return flask.jsonify(error="sign in first"), 403
    return "", 204


def session_state() -> Any:
    """Whether this browser is still signed in, and until when if nobody uses it."""
    session = current.current_session()
    if session is None:
        return flask.jsonify(error="sign in first"), 403
    return flask.jsonify(user=session.user.name, deadline=session.deadline)


def install_routes(server: flask.Flask) -> None:
    """Add the sign-in routes to the Flask server."""
    server.add_url_rule("/login", "login_form", login_form, methods=["GET"])
    server.add_url_rule("/login", "login_submit", login_submit, methods=["POST"])
    server.add_url_rule("/logout", "logout_page", logout_page, methods=["GET"])
    server.add_url_rule("/logout", "logout_submit", logout_submit, methods=["POST"])
    server.add_url_rule("/password", "password_form", password_form, methods=["GET"])
    server.add_url_rule("/password", "password_submit", password_submit, methods=["POST"])
    server.add_url_rule("/auth/ws-token", "ws_token", ws_token, methods=["GET"])
    server.add_url_rule(current.ACTIVITY_PATH, "activity", activity, methods=["POST"])
    server.add_url_rule("/auth/session", "session_state", session_state, methods=["GET"])
