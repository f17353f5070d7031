"""Home page ("/"): live counts per feed, feed freshness, dead letters, links onwards.

The operations page: refreshed every 2 s by an interval (a polling page on purpose; the
wall and queues are the push-driven ones). Freshness uses the wall-clock time an event
was applied ("seen"), not its event time, so replayed history still reads as live.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from dashboard import runtime
from streams.core.keys import SOURCES

PATH = "/"
REFRESH_MS = 2000
DEADLETTERS_SHOWN = 5
ROLE_HOME_TEXT = {
    "/wall": "Wall display: map, queue, alerts, KPIs",
    "/queues": "Quality-of-life queues for tablets",
    "/response": "Response times against targets",
    "/admin": "Administration: users, sessions and the audit trail",
}
SOURCE_NAMES = {"cad": "CAD calls", "avl": "AVL unit positions",
                "shotspotter": "ShotSpotter alerts", "mutualink": "Mutualink shares"}


def feed_state(seen: float | None, now: float, stale_after_s: int) -> tuple[bool, str]:
    """(is_live, label): "live", "stale for N min" or "no events yet"."""
    if seen is None:
        return False, "no events yet"
    age = max(0.0, now - seen)
    if age <= stale_after_s:
        return True, "live"
    minutes = int(age // 60)
    return False, f"stale for {minutes} min" if minutes else f"stale for {int(age)} s"


def feed_rows(freshness: dict[str, dict[str, Any]], duplicates: dict[str, int], now: float,
              stale_after_s: float | Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per source, in SOURCES order, with its state, counts and newest event time;
    ``stale_after_s`` is one limit or one per source (Settings.feed_stale_after)."""
    rows = []
    for source in SOURCES:
        fresh = freshness.get(source, {})
        limit = (stale_after_s[source] if isinstance(stale_after_s, Mapping)
                 else stale_after_s)
        live, label = feed_state(fresh.get("seen"), now, int(limit))
        rows.append({"source": source, "live": live, "state": label,
                     "event_time": fresh.get("event_time"), "applied": fresh.get("count", 0),
                     "rejected": fresh.get("rejected", 0),
                     "duplicate": duplicates.get(source, 0)})
    return rows


def city_time(epoch: float | None, timezone: str) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def layout(**_: Any) -> html.Div:
    return html.Div([
        dcc.Interval(id="status-interval", interval=REFRESH_MS),
        html.H1("Feeds and system status", className="h3 my-3"),
        html.Div(render(), id="status-body"),
    ], className="container-fluid px-4", id="status-page")


@callback(Output("status-body", "children"), Input("status-interval", "n_intervals"),
          prevent_initial_call=True)
def refresh(_: int | None) -> Any:
    return render()


def render() -> Any:
    """The page body for the signed-in user (a refusal if they may not see it)."""
    try:
        user = runtime.require_page(PATH)
    except PermissionError:
        return dbc.Alert("Not allowed for your role.", color="warning")
    settings, reader = runtime.settings(), runtime.reader()
    rows = feed_rows(reader.freshness(), read_duplicates(reader), time.time(),
                     {source: settings.feed_stale_after.of(source) for source in SOURCES})
    parts: list[Any] = [feed_table(rows, settings.timezone)]
    if user.role in {"supervisor", "admin"}:
        parts.append(deadletter_panel(reader.deadletters(DEADLETTERS_SHOWN),
                                      sum(row["rejected"] for row in rows)))
    parts.append(page_links(user))
    return parts


def read_duplicates(reader: Any) -> dict[str, int]:
    """Duplicate deliveries skipped per source (the "<source>:duplicate" counters), summed
    over the partitions (one HMGET each: a partition's own slot on a cluster)."""
    fields = [f"{source}:duplicate" for source in SOURCES]
    totals = dict.fromkeys(SOURCES, 0)
    for keys in reader.keys.every_partition:
        values = reader.client.hmget(keys.counts, fields)
        for source, value in zip(SOURCES, values, strict=True):
            totals[source] += int(value or 0)
    return totals


def feed_table(rows: list[dict[str, Any]], timezone: str) -> dbc.Table:
    header = html.Thead(html.Tr([html.Th(text) for text in (
        "Feed", "State", "Newest event", "Applied", "Rejected", "Duplicates")]))
    body = html.Tbody([html.Tr([
        html.Td(SOURCE_NAMES[row["source"]]),
        html.Td(state_badge(row), id=f"status-state-{row['source']}"),
        html.Td(city_time(row["event_time"], timezone)),
        html.Td(f"{row['applied']:,}", id=f"status-applied-{row['source']}"),
        html.Td(f"{row['rejected']:,}", id=f"status-rejected-{row['source']}"),
        html.Td(f"{row['duplicate']:,}", id=f"status-duplicate-{row['source']}"),
    ], className="" if row["live"] else "table-danger") for row in rows])
    return dbc.Table([header, body], bordered=True, hover=True, className="fs-5",
                     id="status-feeds")


def state_badge(row: dict[str, Any]) -> html.Span:
    # Icon plus words, never colour alone.
    if row["live"]:
        return html.Span("● LIVE", className="badge bg-success fs-6")
    return html.Span(f"▲ {row['state'].upper()}", className="badge bg-danger fs-5")


def deadletter_panel(letters: list[dict[str, Any]], total: int) -> dbc.Card:
    items = [html.Li(f"{letter.get('source', '?')}: {letter.get('reason', '?')}")
             for letter in letters]
    return dbc.Card(dbc.CardBody([
        html.H2(f"Dead letters: {total:,}", className="h5", id="status-deadletter-count"),
        html.Ul(items or [html.Li("none")], id="status-deadletters", className="mb-0"),
    ]), className="my-3")


def page_links(user: runtime.User) -> html.Div:
    links = [dbc.ListGroupItem(text, href=path, action=True, className="fs-5 py-3")
             for path, text in ROLE_HOME_TEXT.items() if runtime.may_open(user, path)]
    return html.Div([html.H2("Pages", className="h5 mt-3"),
                     dbc.ListGroup(links, id="status-links")])
