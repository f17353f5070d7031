"""Administration (/admin, admin role only): users, sessions and the audit trail.

Users: add one (with a temporary password, shown once, to be changed at the first sign-in),
disable or enable, change role and district, reset a password. Sessions: every signed-in
session, and ending one (push closes its sockets at once). Audit trail: search by user,
call id, action and time range (newest first), and export what matches as CSV (a plain
form POST to ``/admin/audit.csv``, streamed, formula-safe). Every callback starts with the
role check (``adminview.require_admin``: anyone else gets a 403, recorded as a refusal) and
every change, search and export is recorded in the trail (``dashboard.adminview``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dash_bootstrap_components as dbc
import redis
from dash import ALL, Input, Output, State, callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import adminview as view
from dashboard import runtime
from dashboard.auth.users import UnknownUser
from streams.core import audit as rules
from streams.core.access import ROLES, TABLET_ROLES
from streams.core.geography import city_of

log = logging.getLogger(__name__)

PATH = view.PATH
install_routes = view.install_routes
"""The page's own Flask route (the CSV export); ``create_app`` installs it."""
ROLE_OPTIONS = [{"label": role, "value": role} for role in ROLES]
ACTION_OPTIONS = [{"label": "any action", "value": view.ANY_ACTION}] + [
    {"label": f"{label} ({name})", "value": name} for name, label in rules.ACTIONS.items()]


def layout(**_: Any) -> html.Div:
    session = runtime.current_session()
    return html.Div([
        dcc.Store(id="admin-version", data=0),
        html.H1("Administration", className="h3 my-3"),
        html.Div(id="admin-message", role="status"),
        users_card(),
        sessions_card(),
        audit_card(session.csrf if session else ""),
    ], className="container-fluid px-4 pb-5 admin-page", id="admin-page")


# --- the three cards ----------------------------------------------------------------------
def _field(label: str, control: Any, width: int = 3) -> dbc.Col:
    return dbc.Col([dbc.Label(label, html_for=control.id), control], xs=12, md=width)


def district_options() -> list[dict[str, str]]:
    """The city's districts (DISPATCH_DISTRICTS_FILE): only tablet roles (cso, sro) have
    one; it is ignored for the others."""
    return [{"label": d, "value": d} for d in city_of(runtime.settings()).districts]


def users_card() -> dbc.Card:
    districts = district_options()
    first = districts[0]["value"]
    add = dbc.Row([
        _field("New user name", dbc.Input(id="admin-new-name", maxLength=64,
                                          autoComplete="off")),
        _field("Role", dbc.Select(id="admin-new-role", options=ROLE_OPTIONS, value="cso"), 2),
        _field("District (cso, sro)", dbc.Select(id="admin-new-district",
                                                 options=districts, value=first), 2),
        dbc.Col(dbc.Button("Add user", id="admin-add", color="primary", className="w-100"),
                xs=12, md=2, className="d-flex align-items-end"),
    ], className="g-2 mb-3")
    change = dbc.Row([
        _field("User", dbc.Select(id="admin-edit-user", options=[],
                                  placeholder="choose a user")),
        _field("New role", dbc.Select(id="admin-edit-role", options=ROLE_OPTIONS,
                                      value="cso"), 2),
        _field("New district (cso, sro)", dbc.Select(id="admin-edit-district",
                                                     options=districts, value=first),
               2),
        dbc.Col(dbc.Button("Change role / district", id="admin-change", color="secondary",
                           className="w-100"), xs=12, md=2,
                className="d-flex align-items-end"),
    ], className="g-2 mb-3")
    users, options = render_users()
    return dbc.Card(dbc.CardBody([
        html.H2("Users", className="h5"),
        html.P("A new user, or one whose password is reset, gets a temporary password shown "
               "here once; they must choose their own at the next sign-in. Disabling a user or "
               "changing a role, district or password ends that user's sessions at once.",
               className="text-body-secondary small"),
        add, change,
        html.Div(users, id="admin-users"),
        dcc.Store(id="admin-user-options", data=options),
    ]), className="mb-4")


def sessions_card() -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        dbc.Row([
            dbc.Col(html.H2("Active sessions", className="h5"), width="auto"),
            dbc.Col(dbc.Button("Refresh", id="admin-refresh", color="secondary",
                               outline=True, size="sm"), width="auto", className="ms-auto"),
        ], className="align-items-center mb-2"),
        html.Div(render_sessions(), id="admin-sessions"),
    ]), className="mb-4")


def audit_card(csrf: str) -> dbc.Card:
    filters = dbc.Row([
        _field("User", dbc.Input(id="admin-audit-user", name="user", maxLength=64), 2),
        _field("Call id", dbc.Input(id="admin-audit-call", name="call_id", maxLength=64), 2),
        _field("Action", dbc.Select(id="admin-audit-action", name="action",
                                    options=ACTION_OPTIONS, value=view.ANY_ACTION)),
        _field("From (local time)", dbc.Input(id="admin-audit-since", name="since",
                                              type="datetime-local"), 2),
        _field("To", dbc.Input(id="admin-audit-until", name="until", type="datetime-local"), 2),
        dbc.Col([
            dbc.Button("Search", id="admin-search", color="primary", type="button",
                       className="me-2"),
            html.Button("Export CSV", id="admin-export", type="submit",
                        className="btn btn-outline-light"),
        ], xs=12, md=1, className="d-flex align-items-end flex-wrap gap-2"),
    ], className="g-2 mb-3")
    return dbc.Card(dbc.CardBody([
        html.H2("Audit trail", className="h5"),
        html.P(f"Who did what, newest first (at most {view.SEARCH_LIMIT} shown; the export "
               f"has every match). Times are {runtime.settings().timezone} time. Searches "
               "and exports are themselves recorded.",
               className="text-body-secondary small"),
        html.Form([dcc.Input(type="hidden", name="csrf", value=csrf, id="admin-audit-csrf"),
                   filters], method="POST", action=view.EXPORT_PATH, id="admin-audit-form"),
        html.Div(id="admin-audit-results"),
    ]))


# --- tables ---------------------------------------------------------------------------------
def _table(headers: Sequence[str], rows: list[html.Tr], id_: str) -> dbc.Table:
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(rows)],
                     bordered=True, hover=True, responsive=True, size="sm", id=id_,
                     className="align-middle")


def render_users() -> tuple[Any, list[dict[str, str]]]:
    """The users table and the options of the change form's user list."""
    admin = view.require_admin()
    rows = []
    for row in view.user_rows(runtime.auth().users.list()):
        name, disabled = row["name"], row["state"] == "disabled"
        state = [html.Span("disabled" if disabled else "active",
                           className=f"badge {'bg-secondary' if disabled else 'bg-success'}")]
        if row["must_change"]:
            state.append(html.Span(" must change password", className="small ms-1"))
        own = name == admin.name
        buttons = [] if own else [
            dbc.Button("Enable" if disabled else "Disable", size="sm",
                       color="success" if disabled else "warning", className="me-2",
                       id={"type": "admin-toggle", "name": name,
                           "to": "enable" if disabled else "disable"}),
            dbc.Button("Reset password", size="sm", color="danger", outline=True,
                       id={"type": "admin-reset", "name": name}),
        ]
        rows.append(html.Tr([html.Td(name), html.Td(row["role"]), html.Td(row["district"]),
                             html.Td(state), html.Td(row["updated"]),
                             html.Td(buttons or html.Span("you", className="small"))],
                            id=f"admin-user-{name}"))
    options = [{"label": r["name"], "value": r["name"]} for r in
               view.user_rows(runtime.auth().users.list()) if r["name"] != admin.name]
    return _table(("User", "Role", "District", "State", "Changed", ""), rows,
                  "admin-users-table"), options


def render_sessions() -> Any:
    view.require_admin()
    own = runtime.current_session()
    rows = []
    for row in view.session_rows(runtime.auth().sessions.list(), own.sid if own else None):
        end = html.Span("this session", className="small") if row["own"] else dbc.Button(
            "End", size="sm", color="danger", outline=True,
            id={"type": "admin-end", "sid": row["sid"]})
        rows.append(html.Tr([
            html.Td(row["user"]), html.Td(row["role"]), html.Td(row["district"]),
            html.Td(row["via"]), html.Td(row["address"]),
            html.Td(row["agent"][:60], title=row["agent"], className="small"),
            html.Td(row["started"]), html.Td(row["last_active"]),
            html.Td(f"{row['ends']} ({row['minutes_left']} min)"), html.Td(end),
        ], className="admin-session-row"))
    if not rows:
        return html.P("No active sessions.")
    return _table(("User", "Role", "District", "Via", "Address", "Browser", "Signed in",
                   "Last active", "Ends", ""), rows, "admin-sessions-table")


def render_audit(result: Any) -> Any:
    rows = [html.Tr([html.Td(r["time"], className="text-nowrap"), html.Td(r["action"]),
                     html.Td(r["user"]), html.Td(r["role"]), html.Td(r["district"]),
                     html.Td(r["address"]), html.Td(r["call_id"]),
                     html.Td(r["detail"], className="small")], className="admin-audit-row")
            for r in view.audit_rows(result.entries)]
    if result.complete:
        note = f"{len(rows)} entries match."
    else:
        note = (f"Showing the newest {len(rows)} matches; there may be more (back to "
                f"{view.clock(result.reached)} was searched): narrow the time range, or "
                "export.")
    return [html.P(note, id="admin-audit-count", className="small"),
            _table(("Time", "Action", "User", "Role", "District", "Address", "Call",
                    "Detail"), rows, "admin-audit-table") if rows else None]


# --- callbacks ------------------------------------------------------------------------------
def _alert(text: Any, color: str) -> dbc.Alert:
    return dbc.Alert(text, color=color, dismissable=True, id="admin-alert")


def _handed_over(name: str, password: str, what: str) -> dbc.Alert:
    return _alert([f"{what} ", html.Strong(name), ". Temporary password: ",
                   html.Code(password, id="admin-temporary-password", className="fs-5"),
                   " (shown only now: hand it over in person; it must be changed at the "
                   "next sign-in)."], "success")


def _do(trigger: Any, values: dict[str, Any]) -> dbc.Alert:
    """Carry out the change ``trigger`` (the clicked control's id) asks for."""
    if trigger == "admin-add":
        name = (values["new_name"] or "").strip()
        district = values["new_district"] if values["new_role"] in TABLET_ROLES else ""
        return _handed_over(name, view.add_user(name, values["new_role"], district),
                            "Added")
    if trigger == "admin-change":
        name = values["edit_user"] or ""
        if not name:
            raise view.Refused("Choose a user to change.")
        district = values["edit_district"] if values["edit_role"] in TABLET_ROLES else ""
        record = view.change_role(name, values["edit_role"], district)
        where = f", {record.district}" if record.district else ""
        return _alert(f"{name} is now {record.role}{where}; their sessions were ended.",
                      "success")
    kind = trigger["type"]
    if kind == "admin-toggle":
        disable = trigger["to"] == "disable"
        view.set_disabled(trigger["name"], disable)
        done = "disabled; their sessions were ended" if disable else "enabled"
        return _alert(f"{trigger['name']} is {done}.", "success")
    if kind == "admin-reset":
        return _handed_over(trigger["name"], view.reset_password(trigger["name"]),
                            "Password reset for")
    ended = view.end_session(trigger["sid"])
    return _alert("Session ended." if ended else "That session had already ended.",
                  "success" if ended else "info")


@callback(Output("admin-message", "children"), Output("admin-version", "data"),
          Input("admin-add", "n_clicks"), Input("admin-change", "n_clicks"),
          Input({"type": "admin-toggle", "name": ALL, "to": ALL}, "n_clicks"),
          Input({"type": "admin-reset", "name": ALL}, "n_clicks"),
          Input({"type": "admin-end", "sid": ALL}, "n_clicks"),
          State("admin-new-name", "value"), State("admin-new-role", "value"),
          State("admin-new-district", "value"), State("admin-edit-user", "value"),
          State("admin-edit-role", "value"), State("admin-edit-district", "value"),
          State("admin-version", "data"), prevent_initial_call=True)
def act(*args: Any) -> tuple[Any, int]:
    view.require_admin()
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        raise PreventUpdate  # a button appearing in a redrawn table is not a click
    names = ("new_name", "new_role", "new_district", "edit_user", "edit_role",
             "edit_district", "version")
    values = dict(zip(names, args[5:], strict=True))
    try:
        message = _do(ctx.triggered_id, values)
    except (ValueError, UnknownUser) as error:  # Refused, a bad name or role, no such user
        message = _alert(str(error), "danger")
    return message, int(values["version"] or 0) + 1


@callback(Output("admin-users", "children"), Output("admin-user-options", "data"),
          Output("admin-sessions", "children"),
          Input("admin-version", "data"), Input("admin-refresh", "n_clicks"),
          prevent_initial_call=True)
def redraw(_: Any, __: Any) -> tuple[Any, Any, Any]:
    users, options = render_users()
    return users, options, render_sessions()


@callback(Output("admin-edit-user", "options"), Input("admin-user-options", "data"))
def user_choices(options: list[dict[str, str]]) -> list[dict[str, str]]:
    view.require_admin()
    return options or []


@callback(Output("admin-audit-results", "children"), Input("admin-search", "n_clicks"),
          State("admin-audit-user", "value"), State("admin-audit-call", "value"),
          State("admin-audit-action", "value"), State("admin-audit-since", "value"),
          State("admin-audit-until", "value"), prevent_initial_call=True)
def search(_: Any, user: str | None, call_id: str | None, action: str | None,
           since: str | None, until: str | None) -> Any:
    view.require_admin()
    values = dict(zip(view.FILTERS, (user, call_id, action, since, until), strict=True))
    try:
        return render_audit(view.search(values))
    except ValueError as error:
        return _alert(str(error), "danger")
    except redis.RedisError as error:
        log.error("audit search failed: %s", error)
        return _alert("The audit trail cannot be read right now; try again shortly.",
                      "danger")
