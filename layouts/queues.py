"""Quality-of-life queues (/queues): the tablet page CSOs and SROs pick their next call from.

Made for 768-1280 px touch screens: every control is at least 44 px tall. The server
renders the cards (``dashboard.queueview`` does the filtering, counting and card fields, from
an allow-list that has no caller name or phone), re-rendering whenever ``assets/live.js``
reports a change to a call through ``live-store``; ``assets/queues.js`` keeps the ages
ticking every second without a server round trip and remembers the filters on the device
(``dcc.Store`` with local storage, one entry per user). A cso/sro with a district is locked
to it: the selector shows it disabled, and every callback forces it whatever the browser
sends (the push service, too, sends them only their district's calls). Tapping a card
opens its detail with a small map of its neighborhood drawn from the shared Hartford
boundaries (no tiles, so it works with no internet).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dash
import dash_bootstrap_components as dbc
import dash_leaflet as dl
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

from dashboard import queueview, runtime
from dashboard.live import live_components
from streams.core import access, geography
from streams.core.events import CATEGORY_LABELS, QOL_CATEGORIES

log = logging.getLogger(__name__)

PATH = "/queues"
ANY = "all"
PRIORITY_COLORS = {1: "danger", 2: "warning", 3: "info", 4: "secondary", 5: "secondary"}


@lru_cache(maxsize=2)
def _city(shared_data_dir: Path, districts_file: Path | None,
          hotspots_file: Path | None) -> geography.Geography:
    return geography.load_geography(shared_data_dir, districts_file, hotspots_file)


def city() -> geography.Geography:
    """Neighborhoods, districts and parks of the configured city, loaded once per process."""
    settings = runtime.settings()
    return _city(settings.shared_data_dir, settings.districts_file, settings.hotspots_file)


@lru_cache(maxsize=2)
def _boundaries(path: Path) -> dict[str, dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        collection = json.load(handle)
    return {feature["properties"]["name"]: feature for feature in collection["features"]}


def boundary_of(neighborhood: str | None) -> dict[str, Any] | None:
    """The GeoJSON feature of one neighborhood polygon, or None if unknown."""
    if not neighborhood:
        return None
    path = runtime.settings().shared_data_dir / geography.NEIGHBORHOODS_FILE
    features = _boundaries(path)
    try:
        return features.get(geography.normalise_neighborhood(neighborhood))
    except ValueError:
        return None


def park_area(name: str | None) -> queueview.AreaTest | None:
    """The containment test of the park called ``name`` (its circle), or None."""
    for park in city().parks:
        if park.name == name:
            return queueview.circle_test(park.lat, park.lon, park.radius_m)
    return None


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
    places = city()
    hoods_by_district = {district: sorted(hood.name for hood in places.in_district(district))
                         for district in places.districts}
    locked = access.district_scope(user.role, user.district)
    if locked is not None:
        # Only their own district reaches the page: nothing to pick, nothing to forge.
        hoods_by_district = {locked: hoods_by_district.get(locked, [])}
    scoped = locked or ANY
    defaults = {"user": user.name, "district": scoped, "neighborhood": ANY, "park": ANY,
                "category": ANY, "locked": locked}
    district_options = [{"label": locked, "value": locked}] if locked else [
        {"label": "All districts", "value": ANY}] + [
        {"label": district, "value": district} for district in places.districts]
    park_options = [{"label": "Any place", "value": ANY}] + [
        {"label": f"{park.name} ({park.radius_m:.0f} m)", "value": park.name}
        for park in sorted(places.parks, key=lambda park: park.name)]
    return html.Div([
        *live_components(),
        dcc.Store(id="queues-filters", storage_type="local"),
        dcc.Store(id="queues-defaults", data=defaults),
        dcc.Store(id="queues-hoods", data=hoods_by_district),
        dcc.Store(id="queues-version", data=0),
        html.Div([
            html.H1("Quality-of-life queues", className="queues-title"),
            html.Span(id="queues-summary", className="queues-summary"),
        ], className="queues-header"),
        dbc.Row([
            _select("queues-district", "District", district_options, scoped,
                    disabled=locked is not None),
            _select("queues-neighborhood", "Neighborhood", [{"label": "All neighborhoods",
                                                             "value": ANY}], ANY),
            _select("queues-park", "Park area", park_options, ANY),
        ], className="g-2 queues-filters"),
        dbc.RadioItems(
            id="queues-category", value=ANY, inline=True, className="queues-categories",
            inputClassName="btn-check", labelClassName="btn btn-outline-light queues-chip",
            labelCheckedClassName="active", options=category_options(dict.fromkeys(
                QOL_CATEGORIES, 0))),
        html.Div(id="queues-cards", className="queues-cards", **{"aria-live": "polite"}),
        dcc.Store(id="queues-tap"),  # {"call_id", "at"}: set by assets/queues.js on a tap
        dbc.Modal([
            dbc.ModalHeader(dbc.ModalTitle(id="queues-detail-title")),
            dbc.ModalBody(id="queues-detail-body"),
            dbc.ModalFooter(dbc.Button("Close", id="queues-detail-close", size="lg",
                                       className="queues-touch")),
        ], id="queues-detail", is_open=False, size="lg", centered=True, scrollable=True),
    ], className="queues-page container-fluid", id="queues-page")


def category_options(counts: dict[str, int]) -> list[dict[str, Any]]:
    """The category chips: 'All QoL' then one per Summer Initiative category, with counts."""
    total = sum(counts.values())
    chips = [{"label": _chip("All QoL", total), "value": ANY}]
    chips += [{"label": _chip(CATEGORY_LABELS[category], counts.get(category, 0)),
               "value": category} for category in QOL_CATEGORIES]
    return chips


def _chip(label: str, count: int) -> Component:
    return html.Span([label, " ", html.Span(str(count), className="badge queues-count")])


# --- cards --------------------------------------------------------------------------------

def card_component(card: dict[str, Any]) -> Component:
    """One tappable call card: priority, age (ticking), address, description, status."""
    priority = int(card.get("priority") or 5)
    units = card["units"]
    return html.Div([
        html.Div([
            dbc.Badge(f"P{priority}", color=PRIORITY_COLORS.get(priority, "secondary"),
                      className="queues-priority", title=f"Priority {priority}"),
            html.Span(card["category_label"], className="queues-card-category"),
            html.Span(card["age_text"], className="queues-age",
                      **{"data-received": str(card.get("received_time") or "")}),
        ], className="queues-card-top"),
        html.Div(card.get("address") or "No address", className="queues-address"),
        html.Div(card.get("call_type") or "", className="queues-description"),
        html.Div([
            html.Span(card["status_label"], className=f"queues-status status-{card['status']}"),
            html.Span(f"{len(units)} unit{'s' if len(units) != 1 else ''}" if units else "",
                      className="queues-units"),
            html.Span(card.get("neighborhood") or "", className="queues-hood"),
        ], className="queues-card-bottom"),
    ], role="button", tabIndex="0", className=f"queues-card priority-{priority}",
        **{"data-call-id": card["call_id"]})


def cards_component(cards: list[dict[str, Any]], chosen: queueview.QueueFilter) -> Component:
    """One queue per category (header with count) holding its cards."""
    if not cards:
        return html.Div("No open quality-of-life calls match these filters.",
                        className="queues-empty")
    return html.Div([
        html.Section([
            html.H2([CATEGORY_LABELS[category], " ",
                     html.Span(str(len(queue)), className="badge queues-count")],
                    className="queues-queue-title"),
            html.Div([card_component(card) for card in queue], className="queues-grid"),
        ], className="queues-queue", **{"data-category": category})
        for category, queue in queueview.group_by_category(cards)
    ])


def visible_calls(role: str, chosen: queueview.QueueFilter) -> tuple[list[dict[str, Any]],
                                                                      dict[str, int]]:
    """(cards, counts per category) of the open QoL calls ``role`` may see under ``chosen``."""
    calls = [access.public_view(call, role) for call in runtime.reader().open_calls(qol_only=True)]
    area = park_area(chosen.park)
    now = time.time()
    cards = [queueview.card(call, now) for call in queueview.filter_calls(calls, chosen, area)]
    return cards, queueview.category_counts(calls, chosen, area)


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
    Output("queues-park", "value"), Output("queues-category", "value"),
    Output("queues-filters", "data"),
    Input("queues-district", "value"), Input("queues-neighborhood", "value"),
    Input("queues-park", "value"), Input("queues-category", "value"),
    State("queues-filters", "data"), State("queues-defaults", "data"),
    State("queues-hoods", "data"),
)

clientside_callback(
    ClientsideFunction("queues", "neighborhoodOptions"),
    Output("queues-neighborhood", "options"),
    Input("queues-district", "value"), State("queues-hoods", "data"),
)


@callback(Output("queues-cards", "children"), Output("queues-category", "options"),
          Output("queues-summary", "children"),
          Input("queues-version", "data"), Input("queues-district", "value"),
          Input("queues-neighborhood", "value"), Input("queues-park", "value"),
          Input("queues-category", "value"))
def render_queues(_version: int | None, district: str | None, neighborhood: str | None,
                  park: str | None, category: str | None) -> tuple[Any, Any, str]:
    user = runtime.require_page(PATH)
    chosen = queueview.enforce_scope(queueview.QueueFilter.from_values(
        {"district": district, "neighborhood": neighborhood, "park": park, "category": category}),
        access.district_scope(user.role, user.district))
    cards, counts = visible_calls(user.role, chosen)
    summary = f"{len(cards)} open call{'s' if len(cards) != 1 else ''} shown"
    return cards_component(cards, chosen), category_options(counts), summary


@callback(Output("queues-detail", "is_open"), Output("queues-detail-title", "children"),
          Output("queues-detail-body", "children"),
          Input("queues-tap", "data"), Input("queues-detail-close", "n_clicks"),
          prevent_initial_call=True)
def open_detail(tap: dict[str, Any] | None, _close: int | None) -> tuple[bool, Any, Any]:
    """The tapped card's detail. Taps come through a store, not the cards' n_clicks: a live
    update re-renders the cards, and a tap landing on a card being replaced was lost."""
    user = runtime.require_page(PATH)
    if ctx.triggered_id == "queues-detail-close":
        return False, dash.no_update, dash.no_update
    if not tap or not tap.get("call_id"):
        return dash.no_update, dash.no_update, dash.no_update
    call_id = str(tap["call_id"])
    call = runtime.reader().call(call_id)
    if call is not None and not access.in_scope(
            call, access.district_scope(user.role, user.district)):
        log.warning("%s asked for call %s outside their district", user.name, call_id)
        return True, "Not in your district", html.P("This call is not in your district.")
    if call is None:
        return True, "Call closed", html.P("This call is no longer open.")
    shown = queueview.detail(access.public_view(call, user.role), time.time())
    return True, f"{shown['category_label']} — P{shown.get('priority')}", detail_body(shown)


def detail_body(shown: dict[str, Any]) -> Component:
    """Status, units, times and a small boundary map of one call (no caller details)."""
    zone = runtime.settings().timezone
    rows = [("Address", shown.get("address") or "—"), ("Description", shown.get("call_type")),
            ("Status", shown["status_label"]), ("Received", _local(shown["received_time"], zone)),
            ("Waiting", shown["age_text"]),
            ("Neighborhood", f"{shown.get('neighborhood') or '—'} ({shown.get('district')})")]
    units = queueview.unit_lines(shown, lambda epoch: _local(epoch, zone, short=True))
    rows.append(("Units", html.Div([html.Div(line) for line in units]) if units
                 else "none yet"))
    table = html.Dl([part for name, value in rows for part in (
        html.Dt(name, className="col-4"), html.Dd(value or "—", className="col-8"))],
        className="row queues-detail-fields", id="queues-detail-fields")
    return html.Div([table, detail_map(shown)])


def detail_map(shown: dict[str, Any]) -> Component:
    """The call's neighborhood outline and its position; no tile layer needed."""
    lat, lon = shown.get("lat"), shown.get("lon")
    outline = boundary_of(shown.get("neighborhood"))
    layers: list[Component] = []
    if outline is not None:
        layers.append(dl.GeoJSON(data={"type": "FeatureCollection", "features": [outline]},
                                 interactive=False,
                                 style={"color": "#4ea8de", "weight": 2, "fillOpacity": 0.08}))
    if lat is None or lon is None:
        return html.P("No map position for this call.", className="text-muted")
    layers.append(dl.CircleMarker(center=[lat, lon], radius=10, color="#ffb000",
                                  fillColor="#ffb000", fillOpacity=0.9))
    return dl.MapContainer(layers, center=[lat, lon], zoom=14, id="queues-detail-map",
                           className="queues-detail-map", attributionControl=False,
                           scrollWheelZoom=False)


def _local(epoch: Any, zone: str, short: bool = False) -> str:
    if epoch in (None, ""):
        return "—"
    moment = datetime.fromtimestamp(float(epoch), ZoneInfo(zone))
    return moment.strftime("%H:%M:%S" if short else "%a %d %b %H:%M:%S")
