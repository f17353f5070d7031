"""Quality-of-life queues (/queues): the tablet page CSOs and SROs take their calls from.

Made for 768-1280 px touch screens: every control is at least 44 px. The server renders
the cards (``dashboard.queueview`` does the filtering, ordering, clocks and card fields, from
an allow-list that has no caller name or phone), re-rendering whenever ``assets/live.js``
reports a change to a call or its work record through ``live-store``; ``assets/queues.js``
keeps clocks and overdue colours ticking without a server round trip, remembers the filters
and the day/night theme on the device, and sends actions (claim, release, note, handled)
to ``POST /api/actions`` through an outbox that survives a lost connection. Waiting calls
come first, then assigned, then on scene; a call marked handled leaves the queue.

A cso/sro with a district is locked to it: the selector shows it disabled, every callback
forces it whatever the browser sends, the push service sends only their district's calls,
and the action endpoint refuses other districts' calls. Claims, notes and outcomes are the
dashboard's own records (``streams.core.actions``), never written into CAD's state.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dash
import dash_bootstrap_components as dbc
import dash_leaflet as dl
import flask
from dash import (
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    ctx,
    dcc,
    html,
)
from dash.development.base_component import Component

from dashboard import actionroutes, audit, queueview, runtime, wallview
from dashboard.live import live_components
from dashboard.wire import Wire, wire
from streams.core import access, actions, display, geography
from streams.core.access import User
from streams.core.events import CATEGORY_LABELS, QOL_CATEGORIES

log = logging.getLogger(__name__)

PATH = "/queues"
ANY = "all"
CAD_NOTE = ("Claims, notes and outcomes are this dashboard's own records: they are not "
            "sent to CAD. Tell dispatch by radio as usual.")


def city() -> geography.Geography:
    """Neighborhoods, districts, parks and schools of the city, loaded once per process."""
    return geography.city_of(runtime.settings())


@lru_cache(maxsize=2)
def _boundaries(path: Path) -> dict[str, dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        collection = json.load(handle)
    return {feature["properties"]["name"]: feature for feature in collection["features"]}


def boundaries() -> dict[str, dict[str, Any]]:
    """Neighborhood name -> GeoJSON feature of its polygon."""
    return _boundaries(runtime.settings().shared_data_dir / geography.NEIGHBORHOODS_FILE)


def boundary_of(neighborhood: str | None) -> dict[str, Any] | None:
    """The GeoJSON feature of one neighborhood polygon, or None if unknown."""
    if not neighborhood:
        return None
    try:
        return boundaries().get(geography.normalise_neighborhood(neighborhood))
    except ValueError:
        return None


_LABELS_LOCK = threading.Lock()


def _label_points() -> dict[str, tuple[float, float]]:
    """Neighborhood name -> where the detail map writes it, worked out once per process.
    One thread works it out while the others wait: it takes about a second of CPU, and the
    first taps of a shift, each computing it at once, held both cores for 15 s (bench_web)."""
    with _LABELS_LOCK:
        return _label_points_of(runtime.settings().shared_data_dir)


@lru_cache(maxsize=2)
def _label_points_of(_shared_data_dir: Path) -> dict[str, tuple[float, float]]:
    points = {}
    for name, feature in boundaries().items():
        geometry = feature["geometry"]
        parts = (geometry["coordinates"] if geometry["type"] == "MultiPolygon"
                 else [geometry["coordinates"]])
        largest = max(parts, key=lambda polygon: len(polygon[0]))
        points[name] = wallview.label_point(largest)
    return points


def places() -> list[tuple[str, str, geography.Park]]:
    """(kind, district, place) of every park and school, parks first, by name."""
    settings = runtime.settings()
    return list(_places_of(settings.shared_data_dir, settings.districts_file,
                           settings.hotspots_file))


@lru_cache(maxsize=2)
def _places_of(*_geography_files: Path | None) -> tuple[tuple[str, str, geography.Park], ...]:
    # Once per process: finding each place's district was a tenth of every card render
    # and detail (the place filter and the detail's landmarks both list them).
    found = city()
    listed = [("park", p) for p in sorted(found.parks, key=lambda p: p.name)]
    listed += [("school", s) for s in sorted(found.schools, key=lambda s: s.name)]
    return tuple((kind, found.district_at(place.lat, place.lon) or "", place)
                 for kind, place in listed)


def place_area(name: str | None) -> queueview.AreaTest | None:
    """The containment test of the park or school called ``name`` (its circle), or None."""
    for _kind, _district, place in places():
        if place.name == name:
            return queueview.circle_test(place.lat, place.lon, place.radius_m)
    return None


def place_options_by_district(locked: str | None) -> dict[str, list[dict[str, str]]]:
    """District -> the place dropdown's options (parks and schools inside it), plus ANY ->
    every place; a locked officer gets only their district's."""
    by_district: dict[str, list[dict[str, str]]] = {ANY: []}
    for kind, district, place in places():
        if locked is not None and district != locked:
            continue
        option = {"label": f"{place.name} ({kind}, {place.radius_m:.0f} m)",
                  "value": place.name}
        by_district.setdefault(district, []).append(option)
        by_district[ANY].append(option)
    return by_district


# --- layout -----------------------------------------------------------------------------

def _select(id_: str, label: str, options: list[dict[str, str]], value: str,
            disabled: bool = False) -> Component:
    # dcc.Dropdown, not dbc.Select: the latter always adds a hidden blank placeholder
    # option, which tablet browsers (iOS Safari) show as an empty first choice.
    return dbc.Col(html.Div([
        html.Label(label, htmlFor=id_, className="queues-label form-label d-block"),
        dcc.Dropdown(id=id_, options=options, value=value, clearable=False, searchable=False,
                     disabled=disabled, className="queues-select"),
    ]), xs=12, sm=4)


def layout(**_: Any) -> Component:
    user = runtime.require_page(PATH)
    found = city()
    hoods_by_district = {district: sorted(hood.name for hood in found.in_district(district))
                         for district in found.districts}
    locked = access.district_scope(user.role, user.district)
    if locked is not None:
        # Only their own district reaches the page: nothing to pick, nothing to forge.
        hoods_by_district = {locked: hoods_by_district.get(locked, [])}
    scoped = locked or ANY
    defaults = {"user": user.name, "district": scoped, "neighborhood": ANY, "place": ANY,
                "category": ANY, "locked": locked, "can_act": access.may_act(user),
                "override": access.may_override(user),
                "timezone": runtime.settings().timezone, "words": queueview.WORK_WORDS,
                "outcomes": actions.OUTCOMES}
    district_options = [{"label": locked, "value": locked}] if locked else [
        {"label": "All districts", "value": ANY}] + [
        {"label": district, "value": district} for district in found.districts]
    place_label = "School or park" if user.role == "sro" else "Park or school"
    return html.Div([
        *live_components(),
        dcc.Store(id="queues-filters", storage_type="local"),
        dcc.Store(id="queues-defaults", data=defaults),
        dcc.Store(id="queues-hoods", data=hoods_by_district),
        dcc.Store(id="queues-places", data=place_options_by_district(locked)),
        dcc.Store(id="queues-version", data=0),
        dcc.Store(id="queues-refresh"),  # set by queues.js when an action was answered
        dcc.Store(id="queues-tap"),  # {"call_id", "at"}: set by assets/queues.js on a tap
        dcc.Store(id="queues-detail-call"),  # the call whose detail is open
        _header(),
        html.Div(id="queues-message", className="queues-message", role="status",
                 **{"aria-live": "polite"}),
        dbc.Row([
            _select("queues-district", "District", district_options, scoped,
                    disabled=locked is not None),
            _select("queues-neighborhood", "Neighborhood", [{"label": "All neighborhoods",
                                                             "value": ANY}], ANY),
            _select("queues-place", place_label, [{"label": "Any place", "value": ANY}], ANY),
        ], className="g-2 queues-filters"),
        dbc.RadioItems(
            id="queues-category", value=ANY, inline=True, className="queues-categories",
            inputClassName="btn-check", labelClassName="btn btn-outline-secondary queues-chip",
            labelCheckedClassName="active", options=category_options(None)),
        # Until the first answer the counts are unknown, not 0, and the empty grid is not
        # "no calls" (seconds on a busy server).
        html.Div(html.Div("Loading calls…", className="queues-empty queues-loading"),
                 id="queues-cards", className="queues-cards", **{"aria-live": "polite"}),
        html.P(CAD_NOTE, className="queues-cad-note", id="queues-cad-note"),
        _detail_modal(),
    ], className="queues-page container-fluid", id="queues-page",
        **{"data-user": user.name})


def _header() -> Component:
    return html.Div([
        html.H1("Quality-of-life queues", className="queues-title"),
        html.Span(id="queues-summary", className="queues-summary"),
        html.Span("Connecting…", id="queues-freshness", className="queues-freshness",
                  role="status"),
        html.Span(id="queues-outbox", className="queues-outbox", role="status",
                  **{"aria-live": "polite"}),
        html.Button("Day theme", id="queues-theme", type="button",
                    className="btn btn-outline-secondary queues-touch queues-theme",
                    **{"aria-pressed": "false"}),
    ], className="queues-header")


def _detail_modal() -> Component:
    return dbc.Modal([
        dbc.ModalHeader(dbc.ModalTitle(id="queues-detail-title")),
        dbc.ModalBody(dbc.Row([
            dbc.Col([html.Div(id="queues-detail-pending", className="queues-detail-pending"),
                     html.Div(id="queues-detail-live")], md=6),
            dbc.Col(html.Div(id="queues-detail-static"), md=6),
        ])),
        dbc.ModalFooter([
            html.Small(CAD_NOTE, className="queues-cad-note me-auto"),
            dbc.Button("Close", id="queues-detail-close", size="lg",
                       className="queues-touch"),
        ]),
    ], id="queues-detail", is_open=False, size="xl", centered=True, scrollable=True)


def category_options(counts: dict[str, int] | None) -> list[dict[str, Any]]:
    """The category chips: 'All QoL' then one per Summer Initiative category, with counts
    (None: not known yet, shown as '…', never 0)."""
    total = None if counts is None else sum(counts.values())
    chips = [{"label": _chip("All QoL", total), "value": ANY}]
    chips += [{"label": _chip(CATEGORY_LABELS[category],
                              None if counts is None else counts.get(category, 0)),
               "value": category} for category in QOL_CATEGORIES]
    return chips


def _chip(label: str, count: int | None) -> Component:
    shown = "…" if count is None else str(count)
    return html.Span([label, " ", html.Span(shown, className="badge queues-count",
                                            title="counting" if count is None else None)])


# --- cards --------------------------------------------------------------------------------

def _clock_attrs(card: dict[str, Any]) -> dict[str, str]:
    """What queues.js needs to tick a card's clock and colour without asking the server."""
    return {"data-since": _attr(card.get("since")), "data-label": card["clock_label"],
            "data-warn-at": _attr(card.get("warn_at")),
            "data-late-at": _attr(card.get("late_at"))}


def _attr(value: Any) -> str:
    return "" if value is None else repr(float(value))


LEVEL_WORDS = {"late": "Overdue", "warn": "Due soon", "ok": ""}


def card_component(card: dict[str, Any], me: str) -> Wire:
    """One tappable call card: priority, clock (ticking, overdue colour), address,
    description, units' callsigns, who has it.

    Built once per process for the same card (and, when someone works on it, the same
    viewer), as the JSON Dash sends (``dashboard.wire``): every open tablet re-renders its
    cards on each change of any call, and all but the changed cards come out the same
    (building them was a third of the CPU, encoding them again each time another third)."""
    viewer = me if card.get("work") else None
    shown = {name: card.get(name) for name in CARD_FIELDS}
    return _card_component(json.dumps(shown, sort_keys=True, default=str), viewer,
                           runtime.settings().timezone)


CARD_FIELDS = ("call_id", "priority", "level", "category_label", "clock_label", "clock_text",
               "since", "warn_at", "late_at", "address", "call_type", "callsigns",
               "neighborhood", "work")
"""What a card shows (its cache key; the call's age in seconds changes every request)."""


@lru_cache(maxsize=4096)
def _card_component(card_json: str, me: str | None, _timezone: str) -> Wire:
    card = json.loads(card_json)
    priority = int(card.get("priority") or 5)
    level = card["level"]
    claim = queueview.claim_line(card.get("work"), me or "", _clock)
    notes = len((card.get("work") or {}).get("notes") or [])
    return wire(html.Div([
        html.Div([
            html.Span(f"P{priority}", className=f"queues-priority priority-{priority}",
                      title=f"Priority {priority}"),
            html.Span(card["category_label"], className="queues-card-category"),
            html.Span(card["clock_text"], className="queues-clock", **_clock_attrs(card)),
        ], className="queues-card-top"),
        html.Div(card.get("address") or "No address", className="queues-address"),
        html.Div(card.get("call_type") or "", className="queues-description"),
        html.Div([
            html.Span(", ".join(card["callsigns"]) if card["callsigns"] else "No unit yet",
                      className="queues-units"),
            html.Span(card.get("neighborhood") or "", className="queues-hood"),
        ], className="queues-card-bottom"),
        html.Div([
            html.Span(LEVEL_WORDS[level], className="queues-level"),
            html.Span(claim[1], className=f"queues-claim claim-{claim[0]}") if claim else None,
            html.Span(f"{notes} note{'s' if notes != 1 else ''}", className="queues-notes")
            if notes else None,
        ], className="queues-card-work"),
    ], role="button", tabIndex="0",
        className=f"queues-card priority-{priority} level-{level}"
                  f"{' claim-' + claim[0] if claim else ''}",
        **{"data-call-id": card["call_id"], "data-level": level, **_clock_attrs(card)}))


def cards_component(cards: list[dict[str, Any]], me: str) -> Component:
    """The queue in three sections (waiting, assigned, on scene), each a grid of cards."""
    if not cards:
        return html.Div("No open quality-of-life calls match these filters.",
                        className="queues-empty")
    return html.Div([
        html.Section([
            html.H2([heading, " ", html.Span(str(len(queue)), className="badge queues-count")],
                    className="queues-queue-title"),
            html.Div([card_component(card, me) for card in queue], className="queues-grid"),
        ], className="queues-queue", **{"data-section": section})
        for section, heading, queue in queueview.group_by_section(cards)
    ])


def targets() -> queueview.Targets:
    settings = runtime.settings()
    return queueview.Targets(tuple(settings.pending_targets), tuple(settings.response_targets))


def callsigns() -> dict[str, str]:
    """Unit id -> callsign of every known unit."""
    return {str(unit["unit_id"]): str(unit.get("callsign") or unit["unit_id"])
            for unit in runtime.reader().units()}


def visible_calls(role: str, chosen: queueview.QueueFilter,
                  ) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """(cards, counts per category, calls handled) of the open QoL calls ``role`` may see
    under ``chosen``; handled calls are counted, not shown."""
    calls = [access.public_view(call, role) for call in runtime.reader().open_calls(qol_only=True)]
    area = place_area(chosen.place)
    matching = queueview.filter_calls(calls, chosen, area)
    work = actionroutes.store().work_of([str(call["call_id"]) for call in matching])
    waiting = [call for call in matching if not queueview.is_handled(work.get(call["call_id"]))]
    now, signs, limits = time.time(), callsigns(), targets()
    cards = [queueview.card(call, now, limits, signs, work.get(str(call["call_id"])))
             for call in waiting]
    return cards, queueview.category_counts(calls, chosen, area), len(matching) - len(waiting)


# --- callbacks ------------------------------------------------------------------------------

clientside_callback(
    ClientsideFunction("queues", "version"),
    Output("queues-version", "data"),
    Input("live-store", "data"),
    State("queues-version", "data"),
)

clientside_callback(
    ClientsideFunction("queues", "syncFilters"),
    Output("queues-district", "value"), Output("queues-neighborhood", "value"),
    Output("queues-place", "value"), Output("queues-category", "value"),
    Output("queues-filters", "data"),
    Input("queues-district", "value"), Input("queues-neighborhood", "value"),
    Input("queues-place", "value"), Input("queues-category", "value"),
    State("queues-filters", "data"), State("queues-defaults", "data"),
    State("queues-hoods", "data"), State("queues-places", "data"),
)

clientside_callback(
    ClientsideFunction("queues", "neighborhoodOptions"),
    Output("queues-neighborhood", "options"),
    Input("queues-district", "value"), State("queues-hoods", "data"),
)

clientside_callback(
    ClientsideFunction("queues", "placeOptions"),
    Output("queues-place", "options"),
    Input("queues-district", "value"), State("queues-places", "data"),
)


def _scoped_filter(user: User, district: str | None, neighborhood: str | None,
                   place: str | None, category: str | None) -> queueview.QueueFilter:
    return queueview.enforce_scope(queueview.QueueFilter.from_values(
        {"district": district, "neighborhood": neighborhood, "place": place,
         "category": category}), access.district_scope(user.role, user.district))


@callback(Output("queues-cards", "children"), Output("queues-category", "options"),
          Output("queues-summary", "children"),
          Input("queues-version", "data"), Input("queues-refresh", "data"),
          Input("queues-district", "value"), Input("queues-neighborhood", "value"),
          Input("queues-place", "value"), Input("queues-category", "value"))
def render_queues(_version: int | None, _refresh: Any, district: str | None,
                  neighborhood: str | None, place: str | None,
                  category: str | None) -> tuple[Any, Any, str]:
    user = runtime.require_page(PATH)
    chosen = _scoped_filter(user, district, neighborhood, place, category)
    cards, counts, handled = visible_calls(user.role, chosen)
    summary = f"{len(cards)} open call{'s' if len(cards) != 1 else ''} shown"
    if handled:
        summary += f" ({handled} marked handled)"
    return cards_component(cards, user.name), category_options(counts), summary


UNAVAILABLE = {"out_of_district": "This call is not in your district.",
               "not_open": "This call is no longer open."}
"""Why a call's detail is not shown, by the code its audit entry records."""


def _call_in_scope(user: User, call_id: str) -> tuple[dict[str, Any] | None, str]:
    """(call as ``user`` may see it, "shown"), or (None, a code of UNAVAILABLE)."""
    call = runtime.reader().call(call_id)
    if call is not None and not access.in_scope(
            call, access.district_scope(user.role, user.district)):
        log.warning("%s asked for call %s outside their district", user.name, call_id)
        return None, "out_of_district"
    if call is None:
        return None, "not_open"
    return access.public_view(call, user.role), "shown"


@callback(Output("queues-detail", "is_open"), Output("queues-detail-title", "children"),
          Output("queues-detail-static", "children"), Output("queues-detail-call", "data"),
          Input("queues-tap", "data"), Input("queues-detail-close", "n_clicks"),
          prevent_initial_call=True)
def open_detail(tap: dict[str, Any] | None, _close: int | None) -> tuple[Any, ...]:
    """The tapped card's detail. Taps come through a store, not the cards' n_clicks: a live
    update re-renders the cards, and a tap landing on a card being replaced was lost.
    What does not change while it is open (note form, navigate link, map) is drawn here;
    ``render_detail`` keeps the rest live."""
    user = runtime.require_page(PATH)
    if ctx.triggered_id == "queues-detail-close":
        return False, dash.no_update, dash.no_update, None
    if not tap or not tap.get("call_id"):
        return dash.no_update, dash.no_update, dash.no_update, dash.no_update
    call_id = str(tap["call_id"])
    call, status = _call_in_scope(user, call_id)
    # Opening a detail is audited (contract 6), before it is shown; its live re-renders
    # (render_detail) are not: they are the same opening.
    audit.record("call_detail", call_id=call_id, status=status)
    if call is None:
        return True, "Not available", html.P(UNAVAILABLE[status]), None
    shown = queueview.detail(call, time.time())
    title = f"{shown['category_label']} — P{shown.get('priority')}"
    return True, title, detail_static(shown, user), call_id


@callback(Output("queues-detail-live", "children"),
          Input("queues-detail-call", "data"), Input("queues-version", "data"),
          Input("queues-refresh", "data"), prevent_initial_call=True)
def render_detail(call_id: str | None, _version: int | None, _refresh: Any) -> Any:
    """Who has the call, its actions, notes, status and units: re-drawn on every change."""
    user = runtime.require_page(PATH)
    if not call_id:
        return None
    call, status = _call_in_scope(user, str(call_id))
    if call is None:
        return html.P(UNAVAILABLE[status], className="queues-detail-gone")
    work = actionroutes.store().work_of([str(call_id)]).get(str(call_id))
    shown = {**queueview.detail(call, time.time()), **queueview.card(
        call, time.time(), targets(), callsigns(), work)}
    return html.Div([work_panel(shown, user), fields_table(shown)])


# --- detail: work panel -----------------------------------------------------------------------

def work_panel(shown: dict[str, Any], user: User) -> Component:
    """Who has the call and the buttons to take, release or close it; its notes."""
    work = shown.get("work") or {}
    call_id = shown["call_id"]
    handled = work.get("handled")
    claim = queueview.claim_line(work, user.name, _clock)
    lines: list[Component] = []
    if handled:
        lines.append(html.P(queueview.WORK_WORDS["handled"].format(
            outcome=handled["label"], by=handled["by"], at=_clock(handled["at"])),
            className="queues-work-state handled"))
    elif claim:
        lines.append(html.P(claim[1], className=f"queues-work-state claim-{claim[0]}"))
    else:
        lines.append(html.P(queueview.WORK_WORDS["free"], className="queues-work-state"))
    if not access.may_act(user):
        lines.append(html.P(f"The {user.role} role watches calls; it does not take them.",
                            className="text-muted"))
    elif not handled:
        lines.append(_action_buttons(call_id, work, user))
    lines.append(_notes(work.get("notes") or []))
    return html.Div(lines, className="queues-work", id="queues-work",
                    **{"data-call-id": call_id})


def _action_buttons(call_id: str, work: dict[str, Any], user: User) -> Component:
    holder = work.get("claimed_by")
    buttons: list[Component] = []
    if not holder:
        buttons.append(_button("I'm taking this", "claim", call_id, "primary"))
    elif holder == user.name or access.may_override(user):
        label = "Release" if holder == user.name else f"Release {holder}'s claim"
        buttons.append(_button(label, "release", call_id, "outline-secondary"))
    may_close = not holder or holder == user.name or access.may_override(user)
    parts: list[Component] = [html.Div(buttons, className="queues-action-row")]
    if may_close:
        parts.append(html.Fieldset([
            html.Legend("Mark handled", className="queues-label"),
            html.Div([html.Button(label, type="button", className="btn btn-outline-secondary "
                                  "queues-touch queues-outcome",
                                  **{"data-outcome": code, "aria-pressed": "false"})
                      for code, label in actions.OUTCOMES.items()],
                     className="queues-outcomes"),
            _button("Mark handled", "handled", call_id, "success", disabled=True),
        ], className="queues-handled-form"))
    return html.Div(parts)


def _button(label: str, action: str, call_id: str, color: str,
            disabled: bool = False) -> Component:
    return html.Button(label, type="button", disabled=disabled,
                       className=f"btn btn-{color} btn-lg queues-touch queues-action",
                       **{"data-action": action, "data-call-id": call_id})


def _notes(notes: list[dict[str, Any]]) -> Component:
    if not notes:
        return html.P("No notes yet.", className="queues-notes-empty text-muted")
    return html.Ol([html.Li([html.Span(f"{note['by']} · {_clock(note['at'])}",
                                       className="queues-note-meta"),
                             html.Span(note.get("text") or "", className="queues-note-text")])
                    for note in notes], className="queues-note-list", id="queues-note-list")


def fields_table(shown: dict[str, Any]) -> Component:
    """Status, clock, units, times of one call (no caller details)."""
    zone = runtime.settings().timezone
    rows = [("Address", shown.get("address") or "—"), ("Description", shown.get("call_type")),
            ("Status", shown["status_label"]),
            (shown["clock_label"], html.Span(shown["clock_text"], className="queues-clock",
                                             **_clock_attrs(shown))),
            ("Received", _local(shown["received_time"], zone)),
            ("Neighborhood", f"{shown.get('neighborhood') or '—'} ({shown.get('district')})")]
    units = queueview.unit_lines(shown, lambda epoch: _local(epoch, zone, short=True))
    signs = dict(zip(shown["units"], shown["callsigns"], strict=False))
    units = [_with_callsign(line, signs) for line in units]
    rows.append(("Units", html.Div([html.Div(line) for line in units]) if units
                 else "none yet"))
    return html.Dl([part for name, value in rows for part in (
        html.Dt(name, className="col-5"), html.Dd(value or "—", className="col-7"))],
        className="row queues-detail-fields", id="queues-detail-fields")


def _with_callsign(line: str, signs: dict[str, str]) -> str:
    unit, _, rest = line.partition(":")
    sign = signs.get(unit)
    if sign and sign != unit:
        unit = f"{sign} ({unit})"
    return f"{unit}:{rest}" if rest else unit


# --- detail: what stays while it is open --------------------------------------------------------

def detail_static(shown: dict[str, Any], user: User) -> Component:
    """Note form, navigate link, map and where the call is relative to named places."""
    parts: list[Component] = []
    uri = queueview.geo_uri(shown.get("lat"), shown.get("lon"), shown.get("address"))
    if uri:
        parts.append(html.A("Navigate in maps app", href=uri, id="queues-navigate",
                            className="btn btn-outline-primary btn-lg queues-touch",
                            **{"data-lat": str(shown["lat"]), "data-lon": str(shown["lon"]),
                               "data-label": shown.get("address") or ""}))
    parts.append(detail_map(shown))
    if access.may_act(user):
        parts.append(html.Div([
            html.Label("Add a note", htmlFor="queues-note-text", className="queues-label"),
            dcc.Textarea(id="queues-note-text", maxLength=actions.NOTE_MAX_CHARS,
                         className="form-control queues-note-input",
                         placeholder="What you found or did (no caller names or numbers)"),
            html.Button("Add note", type="button", className="btn btn-secondary btn-lg "
                        "queues-touch queues-action", **{"data-action": "note",
                                                         "data-call-id": shown["call_id"]}),
        ], className="queues-note-form"))
    return html.Div(parts, className="queues-detail-static")


def landmarks() -> list[tuple[str, float, float]]:
    """Named places a call can be described from: parks, schools, partner sites."""
    found = city()
    named = [(place.name, place.lat, place.lon) for _k, _d, place in places()]
    named += [(partner.partner, partner.lat, partner.lon) for partner in found.partners]
    return named


def detail_map(shown: dict[str, Any]) -> Component:
    """The call among every neighborhood (named), hot-spot streets, parks and schools, and
    its units' last positions; tiles under it when they load, useful when they do not."""
    lat, lon = shown.get("lat"), shown.get("lon")
    if lat is None or lon is None:
        return html.P("No map position for this call.", className="text-muted")
    settings = runtime.settings()
    layers: list[Component | Wire] = []
    if settings.tile_url:
        layers.append(dl.TileLayer(url=settings.tile_url, className="queues-tiles",
                                   attribution="&copy; OpenStreetMap contributors"))
    layers += _neighborhood_layers(shown.get("neighborhood"))
    layers += _street_layers() + _place_layers() + _unit_layers(shown, lat, lon)
    layers.append(dl.CircleMarker(
        center=[lat, lon], radius=12, color="#000", weight=3, fillColor="#ffb000",
        fillOpacity=1, children=dl.Tooltip(shown.get("address") or "Call", permanent=True,
                                           direction="top", offset=[0, -12],
                                           className="queues-map-call")))
    layers.append(dl.ScaleControl(position="bottomleft", imperial=True, metric=True))
    near = queueview.nearest_place(float(lat), float(lon), landmarks())
    where = (f"{queueview.distance_text(near[1])} {near[2]} of {near[0]}" if near and
             near[1] > 40 else f"At {near[0]}" if near else "")
    return html.Div([
        html.P(where, className="queues-map-where", id="queues-map-where") if where else None,
        dl.MapContainer(layers, center=[lat, lon], zoom=15, id="queues-detail-map",
                        className="queues-detail-map", scrollWheelZoom=False,
                        attributionControl=bool(settings.tile_url)),
    ])


def _neighborhood_layers(current: str | None) -> list[Wire]:
    try:
        mine = geography.normalise_neighborhood(current) if current else None
    except ValueError:
        mine = None
    return list(_neighborhood_layers_of(runtime.settings().shared_data_dir, mine))


@lru_cache(maxsize=64)
def _neighborhood_layers_of(_shared_data_dir: Path, mine: str | None) -> tuple[Wire, ...]:
    """Every outline (the browser fetches them: ``OUTLINES_PATH``), ``mine`` drawn again
    highlighted over them, and the names: the same for every call in that neighborhood, so
    built once, as the JSON Dash sends."""
    layers: list[Component] = [dl.GeoJSON(url=OUTLINES_PATH, interactive=False,
                                          style=OUTLINE_STYLE)]
    for name, feature in boundaries().items():
        here = name == mine
        if here:
            layers.append(dl.Polygon(positions=_outlines(feature), interactive=False,
                                     color="#1f78b4", weight=3, fill=True, fillOpacity=0.10))
        point = _label_points().get(name)
        if point:
            layers.append(dl.CircleMarker(center=list(point), radius=0, opacity=0, children=[
                dl.Tooltip(name, permanent=True, direction="center",
                           className="queues-map-label" + (" here" if here else ""))]))
    return tuple(wire(layer) for layer in layers)


OUTLINES_PATH = "/queues/neighborhoods.geojson"
OUTLINE_STYLE = {"color": "#7f8c99", "weight": 1.5, "fill": False, "dashArray": "4 4"}
"""How the detail map draws the neighborhoods that are not the call's."""
OUTLINES_MAX_AGE_S = 3600


def install_routes(server: flask.Flask) -> None:
    """The neighborhood outlines of the detail map as one GeoJSON file (signed in, like
    every route). Sent with each tap they were most of its bytes and its encoding CPU
    (5,600 points); the browser now fetches them once an hour."""
    server.add_url_rule(OUTLINES_PATH, "queues_outlines", outlines_file, methods=["GET"])


def outlines_file() -> flask.Response:
    reply = flask.Response(_outlines_geojson(runtime.settings().shared_data_dir),
                           mimetype="application/geo+json")
    reply.headers["Cache-Control"] = f"private, max-age={OUTLINES_MAX_AGE_S}"
    return reply


@lru_cache(maxsize=2)
def _outlines_geojson(_shared_data_dir: Path) -> bytes:
    """Each neighborhood's outer rings (what the map draws), encoded once per process."""
    features = [{"type": "Feature", "properties": {"name": name},
                 "geometry": {"type": "MultiPolygon", "coordinates": [
                     [[[float(x), float(y)] for x, y, *_ in ring]] for ring in _rings(feature)]}}
                for name, feature in boundaries().items()]
    return json.dumps({"type": "FeatureCollection", "features": features},
                      separators=(",", ":")).encode()


def _rings(feature: dict[str, Any]) -> list[list[list[float]]]:
    """The outer ring of each part of a (Multi)Polygon feature, GeoJSON [lon, lat]."""
    geometry = feature["geometry"]
    parts = (geometry["coordinates"] if geometry["type"] == "MultiPolygon"
             else [geometry["coordinates"]])
    return [part[0] for part in parts]


def _outlines(feature: dict[str, Any]) -> list[list[list[float]]]:
    """Leaflet [lat, lon] outer rings of a (Multi)Polygon feature, one per part."""
    return [[[float(y), float(x)] for x, y, *_ in ring] for ring in _rings(feature)]


def _street_layers() -> list[Wire]:
    """The hot-spot corridors: real streets with their names (the only streets we have
    without tiles)."""
    settings = runtime.settings()
    return list(_street_layers_of(settings.shared_data_dir, settings.districts_file,
                                  settings.hotspots_file))


@lru_cache(maxsize=2)
def _street_layers_of(*_geography_files: Path | None) -> tuple[Wire, ...]:
    return tuple(wire(dl.Polyline(positions=[list(point) for point in spot.points],
                                  color="#6a3d9a", weight=5, opacity=0.7, children=dl.Tooltip(
                                      spot.street, permanent=True, direction="center",
                                      className="queues-map-street")))
                 for spot in city().hotspots if len(spot.points) > 1)


def _place_layers() -> list[Wire]:
    settings = runtime.settings()
    return list(_place_layers_of(settings.shared_data_dir, settings.districts_file,
                                 settings.hotspots_file))


@lru_cache(maxsize=2)
def _place_layers_of(*_geography_files: Path | None) -> tuple[Wire, ...]:
    return tuple(wire(dl.Circle(center=[place.lat, place.lon], radius=place.radius_m,
                                color="#33a02c" if kind == "park" else "#e31a1c", weight=2,
                                fillOpacity=0.12,
                                children=dl.Tooltip(place.name, direction="top")))
                 for kind, _district, place in places())


def _unit_layers(shown: dict[str, Any], lat: float, lon: float) -> list[Component]:
    """The call's units where they were last fixed, with callsign and distance."""
    mine = set(shown.get("units") or [])
    layers: list[Component] = []
    for unit in runtime.reader().units():
        if unit["unit_id"] not in mine or unit.get("lat") is None or unit.get("lon") is None:
            continue
        metres = queueview.distance_m(lat, lon, float(unit["lat"]), float(unit["lon"]))
        label = f"{unit.get('callsign') or unit['unit_id']} · {queueview.distance_text(metres)}"
        layers.append(dl.CircleMarker(center=[unit["lat"], unit["lon"]], radius=8,
                                      color="#000", weight=2, fillColor="#56b4e9",
                                      fillOpacity=1, children=dl.Tooltip(
                                          label, permanent=True, direction="right",
                                          className="queues-map-unit")))
    return layers


def _clock(epoch: Any) -> str:
    return _local(epoch, runtime.settings().timezone, short=True)


def _local(epoch: Any, zone: str, short: bool = False) -> str:
    """'14:02' (short, the shared formatter) or 'Tue 01 Dec 14:02:10' in the city's zone."""
    if epoch in (None, ""):
        return display.MISSING
    if short:
        return display.clock(float(epoch), zone, seconds=False)
    moment = datetime.fromtimestamp(float(epoch), ZoneInfo(zone))
    return moment.strftime("%a %d %b %H:%M:%S")
