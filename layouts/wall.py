"""The wall display (/wall): map, call queue, KPI tiles, gunshot banner, feed health, shares.

Everything driven by live data is drawn in the browser by ``assets/wall.js``, which
subscribes to what ``assets/live.js`` receives from the push service (its first render is
the clientside callback on ``live-store``), so a burst of events costs one cheap update per
frame (markers on one canvas, ``assets/wall-marks.js``) and the page never needs a reload.
The server only answers the 30-second response-time tile and the ``?mode=poll`` variant
(a 1-second polling page kept as a fallback and a benchmark baseline).
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import dash_leaflet as dl
from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback, dcc, html
from dash.development.base_component import Component

from dashboard import responseview, runtime, wallview
from dashboard.live import live_components
from streams.core import geography
from streams.core.actions import OUTCOMES
from streams.core.keys import ALERT_ACTIVE_SECONDS, SOURCES
from streams.core.settings import Settings
from streams.core.suggestions import UNIT_KIND_LABELS

log = logging.getLogger(__name__)

PATH = "/wall"
TITLE = "Wall display"
RESPONSE_REFRESH_MS = 30_000
POLL_INTERVAL_MS = 1_000
SOURCES_REFRESH_MS = 10_000
"""How often the wall asks which feed sources are alive (their health keys last 30 s+)."""
BANNER_SECONDS = 600
"""A gunshot alert keeps its banner up for 10 minutes after detection."""

SOURCE_LABELS = {"cad": "CAD", "avl": "AVL", "shotspotter": "ShotSpotter",
                 "mutualink": "Video"}
FUNCTION = "dash_clientside.wall."
"""Functional props of dash-leaflet name a function under window by its dotted path."""


@lru_cache(maxsize=4)
def load_boundaries(path: Path) -> dict[str, Any]:
    """The neighborhood polygons (GeoJSON FeatureCollection), read once per process."""
    with path.open(encoding="utf-8") as handle:
        collection: dict[str, Any] = json.load(handle)
    if collection.get("type") != "FeatureCollection":
        raise ValueError(f"{path} is not a GeoJSON FeatureCollection")
    return collection


LABEL_NUDGE: dict[str, tuple[float, float]] = {
    "Sheldon Charter Oak": (0.0, 0.0085), "South Green": (-0.0012, -0.0015),
    "Frog Hollow": (0.0016, -0.0025),
    "Asylum Hill": (0.0, -0.002), "Downtown Hartford": (0.0, 0.002),
    "Behind the Rocks": (0.0, -0.002), "Barry Square": (0.0, 0.0015),
    "Clay Arsenal": (-0.0008, 0.0015), "Upper Albany": (0.0, -0.001),
}
"""Per-neighborhood (dlat, dlon) moves of a name from its polygon's pole of inaccessibility,
where two names would still touch at 1080p (checked by the browser test)."""


LABEL_LINES = {
    "Upper Albany": "Upper\nAlbany", "Clay Arsenal": "Clay\nArsenal",
    "North Meadows": "North\nMeadows", "Downtown Hartford": "Downtown\nHartford",
    "Frog Hollow": "Frog\nHollow", "South Green": "South\nGreen",
    "Sheldon Charter Oak": "Sheldon\nCharter Oak", "Behind the Rocks": "Behind\nthe Rocks",
    "Barry Square": "Barry\nSquare", "South End & South Meadows": "South End &\nSouth Meadows",
}
"""Where long names break: two short lines fit a small neighborhood, one long one does not."""


def _ring_area(ring: Any) -> float:
    twice = sum(float(a[0]) * float(b[1]) - float(b[0]) * float(a[1])
                for a, b in zip(ring, [*ring[1:], ring[0]], strict=True))
    return abs(twice) / 2


@lru_cache(maxsize=4)
def labelled_boundaries(path: Path) -> dict[str, Any]:
    """The polygons with a ``label`` [lat, lon] per neighborhood: the pole of inaccessibility
    of its largest part (plus LABEL_NUDGE), where a name fits best and touches no other."""
    collection = load_boundaries(path)
    features = []
    for feature in collection["features"]:
        geometry = feature["geometry"]
        parts = (geometry["coordinates"] if geometry["type"] == "MultiPolygon"
                 else [geometry["coordinates"]])
        largest = max(parts, key=lambda polygon: _ring_area(polygon[0]))
        lat, lon = wallview.label_point(largest)
        name = feature["properties"]["name"]
        dlat, dlon = LABEL_NUDGE.get(name, (0.0, 0.0))
        features.append({**feature, "properties": {**feature["properties"],
                                                   "label": [lat + dlat, lon + dlon],
                                                   "label_text": LABEL_LINES.get(name, name)}})
    return {**collection, "features": features}


def bounds_of(collection: dict[str, Any]) -> list[list[float]]:
    """[[south, west], [north, east]] of every coordinate in a FeatureCollection."""
    lons: list[float] = []
    lats: list[float] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], (int, float)):
            lons.append(float(coords[0]))
            lats.append(float(coords[1]))
            return
        for part in coords:
            walk(part)

    for feature in collection["features"]:
        walk(feature["geometry"]["coordinates"])
    if not lats:
        raise ValueError("the boundary file has no coordinates")
    return [[min(lats), min(lons)], [max(lats), max(lons)]]


@lru_cache(maxsize=4)
def _city(shared_data_dir: Path, districts_file: Path | None,
          hotspots_file: Path | None) -> geography.Geography:
    return geography.load_geography(shared_data_dir, districts_file, hotspots_file)


def city(settings: Settings) -> geography.Geography:
    """The city as configured (DISPATCH_DISTRICTS_FILE names the districts), read once."""
    return _city(settings.shared_data_dir, settings.districts_file, settings.hotspots_file)


def districts(settings: Settings) -> list[str]:
    """The city's districts (from DISPATCH_DISTRICTS_FILE when set), Hartford's north to
    south first, any others by name."""
    known = geography.DISTRICTS
    return sorted(city(settings).districts,
                  key=lambda name: (known.index(name) if name in known else len(known), name))


def hotspot_areas(settings: Settings) -> list[dict[str, Any]]:
    """The hot-spot areas (DISPATCH_HOTSPOTS_FILE, else the built-in examples) as wall.js
    draws and counts them (wallview.hotspot_config), made once per configuration."""
    return _hotspot_areas(settings.shared_data_dir, settings.districts_file,
                          settings.hotspots_file)


@lru_cache(maxsize=4)
def _hotspot_areas(shared_data_dir: Path, districts_file: Path | None,
                   hotspots_file: Path | None) -> list[dict[str, Any]]:
    spots = _city(shared_data_dir, districts_file, hotspots_file).hotspots
    return [wallview.hotspot_config(spot) for spot in spots]


def client_config(settings: Settings) -> dict[str, Any]:
    """What wall.js needs to know: time zone, targets and the labels shared with Python."""
    return {
        "timezone": settings.timezone,
        "night_hours": list(settings.wall_night_hours),
        "unit_stale_s": settings.unit_stale_seconds,
        "pending_targets": list(settings.pending_targets),
        "warn_fraction": wallview.WARN_FRACTION,
        "feed_limits": {source: settings.feed_stale_after.of(source) for source in SOURCES},
        "sources": [[source, SOURCE_LABELS.get(source, source)] for source in SOURCES],
        "speed_kmh": wallview.ASSUMED_SPEED_KMH,
        "link_radius_m": wallview.LINK_RADIUS_M,
        "link_window_s": wallview.LINK_WINDOW_S,
        "alert_active_s": ALERT_ACTIVE_SECONDS,
        "banner_s": BANNER_SECONDS,
        "category_abbrev": wallview.CATEGORY_ABBREV,
        "unit_status": wallview.UNIT_STATUS_LABELS,
        "unit_kinds": UNIT_KIND_LABELS,
        "suggest": settings.suggest_units.as_config(),
        "districts": districts(settings),
        "outcomes": dict(OUTCOMES),
        "hotspots": hotspot_areas(settings),
        "district_of": {hood.name: hood.district for hood in city(settings).neighborhoods},
    }


def _map(settings: Settings) -> Component:
    boundaries = labelled_boundaries(settings.shared_data_dir / "hartford" /
                                     "hartford_neighborhoods.geojson")
    layers: list[Component] = []
    if settings.tile_url:
        # Dimmed by CSS so markers stay the brightest thing on the wall.
        layers.append(dl.TileLayer(url=settings.tile_url, className="wall-tiles",
                                   attribution="&copy; OpenStreetMap contributors"))
    layers.append(dl.GeoJSON(
        id="wall-boundaries", data=boundaries, interactive=False,
        hideout={"tiles": bool(settings.tile_url)},
        style={"variable": FUNCTION + "boundaryStyle"},
        onEachFeature={"variable": FUNCTION + "boundaryFeature"}))
    # Hot spots are drawn by wall.js (drawHotspots) to scale, with their live counts.
    return dl.MapContainer(
        # trackViewport off: the wall's view never changes, and tracking needs a center prop.
        layers, id="wall-map", bounds=bounds_of(boundaries), zoomSnap=0.25,
        trackViewport=False, boundsOptions={"padding": [12, 12]},
        zoomControl=False, scrollWheelZoom=False, dragging=False, doubleClickZoom=False,
        # SVG, not canvas: a canvas is a compositing layer of its own, which every redraw of
        # the markers' canvas above it would composite again (see assets/wall-marks.js).
        keyboard=False, preferCanvas=False, attributionControl=bool(settings.tile_url),
        className="wall-map")


def _tile(label: str, value_id: str, note_id: str | None = None) -> Component:
    parts: list[Component] = [html.Div(label, className="wall-tile-label"),
                              html.Div("–", id=value_id, className="wall-tile-value")]
    if note_id:
        parts.append(html.Div(id=note_id, className="wall-tile-note"))
    return html.Div(parts, className="wall-tile")


def _kpis() -> Component:
    return html.Section([
        _tile("Open calls", "wall-kpi-open", "wall-kpi-open-note"),
        _tile("Pending P1", "wall-kpi-p1"),
        _tile("Pending P2", "wall-kpi-p2"),
        html.Div([html.Div("QoL backlog", className="wall-tile-label"),
                  html.Div(id="wall-kpi-qol", className="wall-tile-qol")],
                 className="wall-tile"),
        _tile("Units available", "wall-kpi-units", "wall-kpi-units-note"),
        html.Div([html.Div("Response today · call → scene",
                           className="wall-tile-label"),
                  # Said until the history's first answer: an empty tile says nothing.
                  html.Div(html.Div("Loading…", className="wall-muted"),
                           id="wall-kpi-response", className="wall-tile-response")],
                 className="wall-tile wall-tile-wide"),
    ], id="wall-kpis", className="wall-kpis")


UNIT_KEY_WORDS = {"out_of_service": "Out"}
"""Shorter key words where the status label is long (the key must stay one line)."""


def _key(marks: list[Component] | Component, word: str) -> Component:
    return html.Span([html.Span(marks, className="wl-marks"), html.Span(word)], className="wl")


def _legend() -> Component:
    """One-line key to the map symbols, below it; every colour also has a letter, digit or
    shape, and each symbol one word."""
    units = [_key(html.Span(letter, className=f"wm wm-unit st-{status}"),
                  UNIT_KEY_WORDS.get(status, label))
             for status, (letter, label) in wallview.UNIT_STATUS_LABELS.items()]
    return html.Footer([
        *units, html.Span(className="wl-sep"),
        # The digit is the priority (as in the queue's P1..P5 badges); fill tells the state.
        _key(html.Span("1", className="wm wm-call wm-pending p1"), "Pending"),
        _key(html.Span("2", className="wm wm-call wm-assigned p2"), "Assigned"),
        _key(html.Span("NOI", className="wm wl-qol"), "QoL"),
        _key(html.Span(html.Span("3"), className="wm wm-shot"), "Gunshot"),
        _key(html.Span(className="wm wl-hotspot"), "Hot spot"),
        _key(html.Span(className="wm wm-share wl-camera"), "Video"),
        # A unit not heard from for DISPATCH_UNIT_STALE_AFTER: its position may be old.
        _key(html.Span("A", className="wm wm-unit st-available wm-stale"), "Stale"),
    ], id="wall-legend", className="wall-legend")


def _header() -> Component:
    return html.Header([
        html.Div("HARTFORD PD", className="wall-title"),
        html.Div(id="wall-clock", className="wall-clock"),
        html.Div(id="wall-view", className="wall-view", hidden=True),
        html.Div(id="wall-feeds", className="wall-feeds"),
        html.Button("Sound off", id="wall-sound", className="wall-sound", n_clicks=0,
                    title="Beep on a new gunshot alert or P1 call (this screen only)"),
    ], className="wall-header")


PALETTES = ("day", "night")


def rotation(settings: Settings, rotate: str | None, every: str | None) -> dict[str, Any]:
    """The kiosk rotation: ``?rotate=city,north,response&every=30`` or the settings."""
    names = rotate.split(",") if rotate is not None else settings.wall_rotate
    views, unknown = wallview.rotation_views(names, districts(settings))
    if unknown:
        log.warning("/wall rotation: no view named %s", ", ".join(unknown))
    return {"views": views, "unknown": unknown,
            "every_s": wallview.rotation_seconds(every, settings.wall_rotate_seconds)}


def layout(mode: str | None = None, palette: str | None = None, rotate: str | None = None,
           every: str | None = None, **_query: Any) -> Component:
    """The wall page; ``?mode=poll`` polls the read API every second instead of push;
    ``?palette=night`` (or ``day``) fixes the palette, else DISPATCH_WALL_NIGHT_HOURS;
    ``?rotate=...&every=...`` rotates views (else DISPATCH_WALL_ROTATE)."""
    settings = runtime.settings()
    config = {**client_config(settings),
              "palette": palette if palette in PALETTES else None,
              "rotation": rotation(settings, rotate, every)}
    polling = mode == "poll"
    if polling:
        feed: list[Component] = [dcc.Store(id="wall-poll-store"),
                                 dcc.Store(id="wall-poll-rendered"),
                                 dcc.Interval(id="wall-poll-interval",
                                              interval=POLL_INTERVAL_MS)]
    else:
        feed = live_components()
    return html.Div([
        *feed,
        dcc.Store(id="wall-settings", data=config),
        dcc.Store(id="wall-rendered"),
        dcc.Interval(id="wall-response-interval", interval=RESPONSE_REFRESH_MS),
        dcc.Store(id="wall-sources"), dcc.Store(id="wall-sources-drawn"),
        dcc.Interval(id="wall-sources-interval", interval=SOURCES_REFRESH_MS),
        _header(),
        _kpis(),
        html.Main([
            html.Div([_map(settings),
                      # Names and live counts of the hot spots (drawn by wall.js).
                      html.Div(id="wall-hotspots", className="wall-hotspots"),
                      # A rotating wall's response and video views (wall.js).
                      html.Div(id="wall-view-panel", className="wall-view-panel",
                               hidden=True)],
                     className="wall-map-area"),
            html.Aside([
                # Above the queue, not over the map: the alert's star stays visible.
                html.Div(id="wall-banner", className="wall-banner", hidden=True),
                html.Div([html.Span("Call queue", className="wall-panel-title"),
                          html.Span(id="wall-queue-count", className="wall-panel-count")],
                         className="wall-panel-head"),
                html.Div(id="wall-queue-list", className="wall-queue-list"),
                html.Div(id="wall-queue-more", className="wall-queue-more"),
                html.Div([html.Span("Video shares", className="wall-panel-title"),
                          html.Span(id="wall-shares-count", className="wall-panel-count")],
                         className="wall-panel-head"),
                html.Div(id="wall-shares", className="wall-shares"),
            ], id="wall-side", className="wall-side"),
        ], className="wall-main"),
        _legend(),
    ], id="wall-root", className="wall" + (" wall-polling" if polling else ""),
        **{"data-mode": "poll" if polling else "push"})


# --- callbacks ----------------------------------------------------------------------------

clientside_callback(
    ClientsideFunction(namespace="wall", function_name="render"),
    Output("wall-rendered", "data"),
    Input("live-store", "data"), State("wall-settings", "data"),
)
clientside_callback(
    ClientsideFunction(namespace="wall", function_name="render"),
    Output("wall-poll-rendered", "data"),
    Input("wall-poll-store", "data"), State("wall-settings", "data"),
)
clientside_callback(
    ClientsideFunction(namespace="wall", function_name="sources"),
    Output("wall-sources-drawn", "data"),
    Input("wall-sources", "data"),
)
clientside_callback(
    ClientsideFunction(namespace="wall", function_name="toggleSound"),
    Output("wall-sound", "children"),
    Input("wall-sound", "n_clicks"),
)


@callback(Output("wall-poll-store", "data"), Input("wall-poll-interval", "n_intervals"))
def poll_snapshot(_n: int | None) -> dict[str, Any]:
    """The polling fallback: the whole live state, once a second (one read a process
    shares between the walls polling within half a second)."""
    runtime.require_page(PATH)
    return runtime.live_snapshot()


@callback(Output("wall-sources", "data"), Input("wall-sources-interval", "n_intervals"))
def source_heartbeats(_n: int | None) -> dict[str, dict[str, float]]:
    """Which feeds' sources are alive (their heartbeats): QUIET rather than STALE."""
    runtime.require_page(PATH)
    return wallview.source_heartbeats(runtime.reader().heartbeats(), time.time())


@callback(Output("wall-kpi-response", "children"),
          Input("wall-response-interval", "n_intervals"))
def response_tile(_n: int | None) -> list[Component]:
    """Today's (city day) median and 90th percentile response per priority vs target."""
    runtime.require_page(PATH)
    settings = runtime.settings()
    start, end = wallview.city_day_bounds(time.time(), settings.timezone)
    # The same history query as /response (selection rules, quantile), not a second copy.
    return response_rows(responseview.response_by_priority(
        runtime.history().select, start, end, settings.response_targets))


def response_rows(summary: list[dict[str, Any]]) -> list[Component]:
    """The tile's table: one line per priority, verdicts as ✓/✗ marks plus colour."""
    if not summary:
        return [html.Div("No calls closed yet today", className="wall-muted")]
    shown = [row for row in summary if row["label"] in {"P1", "P2", "All"}]
    lines: list[Component] = [html.Div([html.Span(""), html.Span("median"), html.Span("90th"),
                       html.Span("target")], className="wall-resp-row wall-resp-head")]
    for row in shown:
        lines.append(html.Div([
            html.Span(f"{row['label']} ({row['count']})"),
            _verdict(row["median_s"], row["median_ok"]),
            _verdict(row["p90_s"], row["p90_ok"]),
            html.Span(wallview.format_age(row["target_s"]) if row["target_s"] else "—"),
        ], className="wall-resp-row"))
    return lines


def _verdict(seconds: float, ok: bool | None) -> Component:
    mark = "" if ok is None else (" ✓" if ok else " ✗")
    state = "none" if ok is None else ("ok" if ok else "miss")
    return html.Span(wallview.format_age(seconds) + mark, className=f"wall-resp-{state}")
