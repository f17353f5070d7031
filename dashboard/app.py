"""The Dash app factory: pages registered explicitly, every route behind sign-in.

Who may open what is ``runtime.PAGE_ROLES``: the guard below refuses anonymous requests,
each page's layout is wrapped so a role that may not open it gets a refusal instead, and
callbacks that return police data start with ``runtime.require_page``.
"""

from __future__ import annotations

import importlib
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
import flask
import redis
from dash import html

from dashboard import auth, runtime
from dashboard.runtime import User
from streams.core.keys import Keys
from streams.core.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

PAGES: tuple[tuple[str, str, str], ...] = (
    ("/", "layouts.status", "Status"),
    ("/wall", "layouts.wall", "Wall"),
    ("/queues", "layouts.queues", "QoL queues"),
    ("/response", "layouts.response", "Response times"),
)
"""(path, module, navbar name) of every page; a module that is not written yet is skipped."""

OPEN_PATHS = frozenset({"/login", "/logout", "/healthz"})
OPEN_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon")
CSRF_COOKIE, CSRF_HEADER = "_csrf_token", "X-CSRFToken"
"""Dash's renderer copies this cookie into this header on every callback request."""

INDEX = """<!DOCTYPE html>
<html lang="en" data-bs-theme="dark"><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}
</head><body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"""


def create_app(settings: Settings, reader: Any = None) -> dash.Dash:
    """Build the dashboard for ``settings``; ``reader`` defaults to a LiveReader on Redis."""
    from dashboard.readapi import LiveReader  # noqa: PLC0415 - written alongside this

    secret = auth.require_secret_key(settings)
    client = redis.Redis.from_url(settings.redis_address)
    keys = Keys(settings.key_prefix)
    runtime.init(settings, reader if reader is not None else LiveReader(client, keys))
    app = dash.Dash(__name__, assets_folder=str(PROJECT_ROOT / "assets"), use_pages=True,
                    pages_folder="", suppress_callback_exceptions=True, index_string=INDEX,
                    title="Hartford dispatch", update_title=None, serve_locally=True)
    server = app.server
    server.config.update(SECRET_KEY=secret, SESSION_COOKIE_HTTPONLY=True,
                         SESSION_COOKIE_SAMESITE="Lax",
                         PERMANENT_SESSION_LIFETIME=timedelta(hours=auth.SESSION_HOURS))
    register_pages()
    app.layout = shell
    app.clientside_callback(NAV_TOGGLE_JS, dash.Output("nav-collapse", "is_open"),
                            dash.Input("nav-toggler", "n_clicks"),
                            dash.Input("_pages_location", "pathname"),
                            dash.State("nav-collapse", "is_open"), prevent_initial_call=True)
    auth.install_routes(server, settings, auth.LoginLimiter(
        client, keys, settings.login_attempts_per_minute))
    install_guard(server, settings)
    server.add_url_rule("/healthz", "healthz", lambda: healthz(client))
    return app


def register_pages() -> None:
    """Register each page module that exists, its layout wrapped by the role check."""
    for order, (path, module_name, name) in enumerate(PAGES):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            log.info("page %s skipped: %s is not written", path, module_name)
            continue
        dash.register_page(module_name, path=path, name=name, order=order,
                           title=f"{name} - Hartford dispatch",
                           layout=guarded(path, name, module.layout))


def guarded(path: str, name: str, layout: Callable[..., Any]) -> Callable[..., Any]:
    """``layout`` for roles that may open ``path``; a refusal for everyone else."""

    def page(**kwargs: Any) -> Any:
        user = runtime.current_user()
        if not runtime.may_open(user, path):
            return refusal(user, name)
        return layout(**kwargs)

    return page


def refusal(user: User | None, name: str) -> html.Div:
    role = user.role if user else "anonymous"
    return html.Div(dbc.Alert([
        html.H2("Not allowed for your role", className="h4"),
        html.P(f"The {name} page is not available to the {role} role. "
               "Ask an administrator if you need it."),
        html.A("Back to the status page", href="/", className="alert-link"),
    ], color="warning"), id="page-refused", className="container py-4")


def shell() -> html.Div:
    """Navbar (links to the pages this user may open) above the page container."""
    user = runtime.current_user() if flask.has_request_context() else None
    links = [dbc.NavItem(dbc.NavLink(page["name"], href=page["path"], active="exact"))
             for page in dash.page_registry.values() if runtime.may_open(user, page["path"])]
    who = f"{user.name} ({user.role}{', ' + user.district if user.district else ''})" \
        if user else ""
    # Below the lg breakpoint (992 px: every tablet in portrait) the links fold into a
    # menu behind a toggler, so the bar never wraps onto a second line.
    navbar = dbc.Navbar(dbc.Container([
        dbc.NavbarBrand("Hartford dispatch", href="/"),
        dbc.NavbarToggler([html.Span(className="navbar-toggler-icon"),
                           html.Span("Menu", className="visually-hidden")],
                          id="nav-toggler", n_clicks=0, className="app-nav-toggler"),
        dbc.Collapse([
            dbc.Nav(links, navbar=True, className="me-auto"),
            html.Span(who, className="navbar-text app-nav-user", id="nav-user"),
            dbc.Nav(dbc.NavItem(dbc.NavLink("Sign out", href="/logout", external_link=True,
                                            id="nav-signout", className="app-nav-signout")),
                    navbar=True),
        ], id="nav-collapse", navbar=True, is_open=False),
    ], fluid=True), color="dark", dark=True, expand="lg", className="app-navbar py-0")
    return html.Div([navbar, dash.page_container], className="app-shell")


NAV_TOGGLE_JS = """function (clicks, path, isOpen) {
    const trigger = (dash_clientside.callback_context.triggered[0] || {}).prop_id || "";
    return trigger.startsWith("nav-toggler") ? !isOpen : false;
}"""
"""The toggler opens/closes the menu; moving to another page closes it."""


def install_guard(server: flask.Flask, settings: Settings) -> None:
    """Refuse every route to anonymous requests except sign-in, health and static files."""

    @server.before_request
    def require_sign_in() -> Any:
        sync_sso_session(settings)
        path = flask.request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        if runtime.current_user() is None:
            if path.startswith(("/_dash-", "/auth/")):
                return flask.jsonify(error="sign in first"), 403
            return flask.redirect("/login?next=" + quote(flask.request.full_path.rstrip("?")))
        if flask.request.method == "POST" and not csrf_ok():
            log.warning("callback without CSRF token refused for %s", path)
            return flask.jsonify(error="missing or wrong CSRF token; reload the page"), 403
        return None

    @server.after_request
    def set_csrf_cookie(response: flask.Response) -> flask.Response:
        if runtime.current_user() is not None and "csrf" not in flask.session:
            flask.session["csrf"] = secrets.token_urlsafe(16)
        if "csrf" in flask.session and flask.request.cookies.get(CSRF_COOKIE) != \
                flask.session["csrf"]:
            response.set_cookie(CSRF_COOKIE, flask.session["csrf"], samesite="Lax",
                                httponly=False)
        return response


def csrf_ok() -> bool:
    """Double-submit check: the header Dash copies from our cookie equals the session's."""
    expected = flask.session.get("csrf")
    given = flask.request.headers.get(CSRF_HEADER)
    return bool(expected and given and secrets.compare_digest(expected, given))


def sync_sso_session(settings: Settings) -> None:
    """Sign in (or out) whoever the trusted proxy names in its headers."""
    if not settings.sso_user_header:
        return
    user = auth.sso_user(settings, flask.request)
    stored = flask.session.get("user")
    if user is None:
        if stored and stored.get("via") == "sso":
            flask.session.clear()
        return
    if runtime.current_user() != user:
        auth.sign_in(user, "sso")


def healthz(client: redis.Redis) -> tuple[str, int]:
    """200 when this worker can reach Redis, 503 otherwise."""
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as error:
        log.warning("health check: redis unreachable: %s", error)
        return "redis unreachable", 503
    return "ok", 200
