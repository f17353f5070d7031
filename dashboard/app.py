"""The Dash app factory: pages registered explicitly, every route behind sign-in.

Who may open what is ``streams.core.access.PAGE_ROLES``: the guard below refuses anonymous
requests, each page's layout is wrapped so a role that may not open it gets a refusal
instead, and callbacks that return police data start with ``runtime.require_page``
(a PermissionError there is answered 403). Every response carries the security headers
(``dashboard.auth.headers``); errors are refusals (``dashboard.auth.errors``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
import flask
import redis
from dash import dcc, html

from dashboard import actionroutes, runtime
from dashboard.auth import Auth, errors, headers, routes
from dashboard.auth import per_request as current
from dashboard.live import push_url
from streams.clients import sync_client
from streams.core.access import User
from streams.core.history import folder_of
from streams.core.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

PAGES: tuple[tuple[str, str, str], ...] = (
    ("/", "layouts.status", "Status"),
    ("/wall", "layouts.wall", "Wall"),
    ("/queues", "layouts.queues", "QoL queues"),
    ("/response", "layouts.response", "Response times"),
    ("/admin", "layouts.admin", "Admin"),
)
"""(path, module, navbar name) of every page; a module that is not written yet is skipped."""

OPEN_PATHS = frozenset({"/login", "/logout", "/healthz"})
OPEN_PREFIXES = headers.STATIC_PREFIXES
PASSWORD_CHANGE_PATHS = frozenset({"/password", "/logout", "/auth/session"})
"""All a session that must change its password may reach."""
API_PREFIXES = errors.API_PREFIXES

INDEX = """<!DOCTYPE html>
<html lang="en" data-bs-theme="dark"><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}
</head><body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"""


def create_app(settings: Settings, reader: Any = None, history: Any = None) -> dash.Dash:
    """Build the dashboard for ``settings``; ``reader`` defaults to a LiveReader on Redis,
    ``history`` to a HistoryStore on the history writer's folder."""
    from dashboard.history import HistoryStore  # noqa: PLC0415 - written alongside this
    from dashboard.readapi import LiveReader  # noqa: PLC0415

    client = sync_client(settings.redis_address)
    services = Auth.open(settings, client)
    keys = settings.keys
    if history is None:
        history = HistoryStore(
            client, keys, folder_of(settings.resolved_history_dir, settings.key_prefix),
            settings.timezone, settings.history_tail_limit, settings.history_memory_mb)
    runtime.init(settings, reader if reader is not None else LiveReader(client, keys), history)
    app = dash.Dash(__name__, assets_folder=str(PROJECT_ROOT / "assets"), use_pages=True,
                    pages_folder="", suppress_callback_exceptions=True, index_string=INDEX,
                    title="Hartford dispatch", update_title=None, serve_locally=True)
    server = app.server
    current.install(server, services)
    register_pages(server)
    app.layout = shell
    app.clientside_callback(NAV_TOGGLE_JS, dash.Output("nav-collapse", "is_open"),
                            dash.Input("nav-toggler", "n_clicks"),
                            dash.Input("_pages_location", "pathname"),
                            dash.State("nav-collapse", "is_open"), prevent_initial_call=True)
    routes.install_routes(server)
    install_guard(app)
    share_dependencies(app)
    errors.install_error_handlers(server)
    install_security_headers(app, settings)
    actionroutes.install(server, client, keys)
    server.add_url_rule("/healthz", "healthz", lambda: healthz(client))
    return app


def register_pages(server: flask.Flask) -> None:
    """Register each page module that exists, its layout wrapped by the role check, and
    the Flask routes a page brings (its ``install_routes``, e.g. a file export)."""
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
        if hasattr(module, "install_routes"):
            module.install_routes(server)


def guarded(path: str, name: str, layout: Callable[..., Any]) -> Callable[..., Any]:
    """``layout`` for roles that may open ``path``; a refusal for everyone else."""

    def page(**kwargs: Any) -> Any:
        user = runtime.current_user()
        if not runtime.may_open(user, path):
            runtime.record("refused", page=path)
            return refusal(user, name)
        runtime.record("page_view", page=path)
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
    # menu behind a toggler, so the bar never wraps onto a second line; sign-out stays on
    # the bar at every width (one tap), after the links on wide screens.
    navbar = dbc.Navbar(dbc.Container([
        dbc.NavbarBrand("Hartford dispatch", href="/"),
        html.Div([
            sign_out_form(),
            dbc.NavbarToggler([html.Span(className="navbar-toggler-icon"),
                               html.Span("Menu", className="visually-hidden")],
                              id="nav-toggler", n_clicks=0, className="app-nav-toggler"),
        ], className="app-nav-end order-lg-last"),
        dbc.Collapse([
            dbc.Nav(links, navbar=True, className="me-auto"),
            html.Span(who, className="navbar-text app-nav-user", id="nav-user"),
        ], id="nav-collapse", navbar=True, is_open=False),
    ], fluid=True), color="dark", dark=True, expand="lg", className="app-navbar py-0")
    return html.Div([navbar, dash.page_container], className="app-shell")


def sign_out_form() -> html.Form:
    """Sign-out is a POST with the session's CSRF token (a link could be followed by
    another site)."""
    session = runtime.current_session() if flask.has_request_context() else None
    return html.Form([
        dcc.Input(type="hidden", name=current.CSRF_FIELD, value=session.csrf if session else "",
                  id="nav-signout-csrf"),
        html.Button("Sign out", type="submit", id="nav-signout",
                    className="btn btn-link nav-link app-nav-signout"),
    ], method="POST", action="/logout", className="d-flex app-nav-signout-form")


NAV_TOGGLE_JS = """function (clicks, path, isOpen) {
    const trigger = (dash_clientside.callback_context.triggered[0] || {}).prop_id || "";
    return trigger.startsWith("nav-toggler") ? !isOpen : false;
}"""
"""The toggler opens/closes the menu; moving to another page closes it."""


def install_guard(app: dash.Dash) -> None:
    """Load each request's session; refuse every route to anonymous requests except
    sign-in, health and static files; keep a session that must change its password on
    /password; check the CSRF token of every signed-in POST and the shape of callbacks."""
    server = app.server

    @server.before_request
    def require_sign_in() -> Any:
        current.load_session()
        path = flask.request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        if is_unknown_page():
            return errors.refusal(404, "There is no such page.")
        session = current.current_session()
        if session is None:
            if path.startswith(API_PREFIXES):
                return flask.jsonify(error="sign in first"), 403
            ended = "&ended=1" if flask.g.get("session_ended") else ""
            return flask.redirect("/login?next=" + quote(flask.request.full_path.rstrip("?"))
                                  + ended)
        if session.must_change and path not in PASSWORD_CHANGE_PATHS:
            if path.startswith(API_PREFIXES):
                return flask.jsonify(error="change your password first"), 403
            return flask.redirect("/password?next=" + quote(flask.request.full_path.rstrip("?")))
        if flask.request.method == "POST" and not current.csrf_ok():
            log.warning("POST without CSRF token refused for %s", path)
            return flask.jsonify(error="missing or wrong CSRF token; reload the page"), 403
        if path == "/_dash-update-component":
            problem = errors.callback_problem(flask.request.get_json(silent=True),
                                              app.callback_map)
            if problem:
                return errors.refusal(400, problem)
        return None

    server.after_request(current.finish)


def share_dependencies(app: dash.Dash) -> None:
    """Answer /_dash-dependencies from one encoding per process. It is the list of
    callbacks (ids and properties, no data), the same for every user; Dash encoded it on
    every page load. The guard still runs first: only signed-in users get it."""
    endpoint = app.config.routes_pathname_prefix + "_dash-dependencies"
    encode = app.server.view_functions[endpoint]
    encoded: dict[int, tuple[bytes, str]] = {}

    def dependencies() -> flask.Response:
        # Keyed by the number of callbacks: Dash adds the pages' callbacks at its setup.
        found = encoded.get(len(app.callback_map))
        if found is None:
            reply = encode()
            found = encoded[len(app.callback_map)] = (reply.get_data(), reply.content_type)
        return flask.Response(found[0], content_type=found[1])

    app.server.view_functions[endpoint] = dependencies


def is_unknown_page() -> bool:
    """True for a GET that only Dash's catch-all route would answer (with its index page
    and a 200) although no page has that path."""
    rule = flask.request.url_rule
    if rule is None or rule.rule != "/<path:path>":
        return False
    paths = {page["path"] for page in dash.page_registry.values()}
    return flask.request.path.rstrip("/") not in paths


def install_security_headers(app: dash.Dash, settings: Settings) -> None:
    """Put the security headers on every response, errors and static files included."""
    hashes: list[str] = []

    @app.server.after_request
    def add_headers(response: flask.Response) -> flask.Response:
        if not hashes and app._got_first_request.get("setup_server"):  # noqa: SLF001
            hashes.extend(app.csp_hashes())  # Dash's inline scripts, known after setup
        policy = headers.content_security_policy(
            hashes, push_url(settings, flask.request.host_url), settings.tile_url)
        for name, value in headers.security_headers(policy, current.is_https(),
                                                    flask.request.path).items():
            if name != "Cache-Control" or "Cache-Control" not in response.headers:
                response.headers[name] = value
        return response


def healthz(client: redis.Redis) -> tuple[str, int]:
    """200 when this worker can reach Redis, 503 otherwise."""
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as error:
        log.warning("health check: redis unreachable: %s", error)
        return "redis unreachable", 503
    return "ok", 200
