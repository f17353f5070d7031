"""Response times (/response): how long calls waited and units took, against targets.

For commanders, supervisors and admins. One server callback answers every filter change:
it checks the role and hands the history store (``dashboard.history``: DuckDB over the
history writer's files, never the whole history in this worker) and the filters to
``dashboard.responseview``, which computes every number shown. What was drawn is kept in
``response-shown`` so the CSV export writes exactly that, not a recomputation.

Query parameters preset the controls (``/response?preset=custom&start=2014-07-01&end=
2014-07-31&metric=dispatch&split=district&bucket=week``), so a view can be shared as a link.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import time
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import itsdangerous
from dash import Input, Output, State, callback, dcc, html
from dash.development.base_component import Component
from dash.exceptions import MissingCallbackContextException, PreventUpdate

from dashboard import audit, runtime
from dashboard import responseview as rv
from layouts import response_outcomes
from streams.core import access, display, response
from streams.core.events import CATEGORIES, CATEGORY_LABELS
from streams.core.geography import city_of

log = logging.getLogger(__name__)

PATH = "/response"
FILTER_INPUTS = ("preset", "range.start_date", "range.end_date", "metric", "split", "bucket",
                 "districts", "priorities", "categories")
DURATION_FORMAT = {"function": "durationText(params.value)"}
SIGNED_FORMAT = {"function": "signedDurationText(params.value)"}
"""ag-grid formatters (assets/response.js): the shared ones of assets/display.js, the
twin of streams.core.display, so the grid reads as the cards and the wall do."""


GRID_THEME = {"function": (
    "themeAlpine.withParams({backgroundColor: '#212529', foregroundColor: '#e6e6e6',"
    " headerBackgroundColor: '#2b3035', accentColor: '#56b4e9', fontSize: 14})")}
"""The grid in the page's dark colours."""


def _dropdown(id_: str, label: str, options: list[dict[str, Any]], value: Any,
              multi: bool = False, placeholder: str = "", width: int = 2) -> Component:
    return dbc.Col([
        dbc.Label(label, html_for=id_, className="response-label"),
        dcc.Dropdown(id=id_, options=options, value=value, multi=multi, clearable=multi,
                     placeholder=placeholder, className="response-dropdown"),
    ], xs=12, sm=6, lg=width)


def _choice(values: dict[str, str], given: str | None, default: str) -> str:
    return given if given in values else default


def layout(preset: str | None = None, start: str | None = None, end: str | None = None,
           metric: str | None = None, split: str | None = None, bucket: str | None = None,
           **_: Any) -> Component:
    runtime.require_page(PATH)
    timezone = runtime.settings().timezone
    today = datetime.now(ZoneInfo(timezone)).date()
    start_date, end_date = _iso_date(start), _iso_date(end)
    preset = _choice(rv.PRESETS, preset, "custom" if start_date and end_date else "7d")
    if preset != "custom" or not (start_date and end_date):
        start_date, end_date = rv.preset_dates(preset, time.time(), timezone) or (
            str(today.replace(day=1)), str(today))
    return html.Div([
        html.Div([
            html.H1("Response times", className="response-title"),
            html.Span(id="response-period-label", className="response-period"),
        ], className="response-header"),
        dbc.Row([
            dbc.Col(dbc.RadioItems(
                id="response-preset", value=preset, inline=True, className="response-presets",
                inputClassName="btn-check", labelClassName="btn btn-outline-light",
                labelCheckedClassName="active",
                options=[{"label": label, "value": key} for key, label in rv.PRESETS.items()]),
                xs=12, lg="auto"),
            dbc.Col(dcc.DatePickerRange(
                id="response-range", start_date=start_date, end_date=end_date,
                display_format="YYYY-MM-DD",
                first_day_of_week=1, max_date_allowed=str(today),
                className="response-range"), xs=12, lg="auto"),
        ], className="g-2 align-items-center response-controls"),
        dbc.Row([
            _dropdown("response-metric", "Interval", [
                {"label": label, "value": key} for key, (_, label) in rv.METRICS.items()],
                _choice(rv.METRICS, metric, "response"), width=3),  # type: ignore[arg-type]
            _dropdown("response-split", "Split by", [
                {"label": label, "value": key} for key, label in rv.SPLITS.items()],
                _choice(rv.SPLITS, split, "none")),
            _dropdown("response-bucket", "Per", [
                {"label": label, "value": key} for key, label in rv.BUCKETS.items()],
                _choice(rv.BUCKETS, bucket, "day"), width=1),
            _dropdown("response-districts", "Districts", [
                {"label": d, "value": d} for d in city_of(runtime.settings()).districts],
                [], True, "All districts"),
            _dropdown("response-priorities", "Priorities",
                      [{"label": f"P{p}", "value": p} for p in range(1, 6)], [], True,
                      "All priorities"),
            _dropdown("response-categories", "Categories",
                      [{"label": CATEGORY_LABELS[c], "value": c} for c in CATEGORIES], [], True,
                      "All categories"),
            _dropdown("response-cancelled", "Cancelled calls", [
                {"label": label, "value": key} for key, label in rv.CANCELLED.items()],
                "exclude"),
            _dropdown("response-left-feed", "Calls that left the feed", [
                {"label": label, "value": key} for key, label in rv.LEFT_FEED.items()],
                "exclude"),
        ], className="g-2 response-filters"),
        html.Div([
            dbc.Button("Print report", id="response-print", color="secondary",
                       className="me-2"),
            html.Span("Prints what is shown: period, filters, cards, charts and table.",
                      className="response-muted"),
        ], className="response-actions"),
        html.Div(id="response-print-header", className="response-print-only"),
        html.Div(id="response-print-dummy", hidden=True),
        html.Div(id="response-error"),
        html.Div(id="response-notes", className="response-notes"),
        dbc.Row(id="response-kpis", className="g-2 response-kpis"),
        html.Div(id="response-compliance", className="response-compliance"),
        dcc.Loading(dcc.Graph(id="response-series", config={"displaylogo": False}),
                    type="dot", delay_show=400),
        dcc.Graph(id="response-histogram", config={"displaylogo": False}),
        dbc.Row([
            dbc.Col([
                html.Div([
                    html.H2("Slowest calls", className="response-subtitle"),
                    html.Div([
                        dbc.Button("Download table CSV", id="response-export-table",
                                   color="secondary", className="me-2"),
                        dbc.Button("Download series CSV", id="response-export-series",
                                   color="secondary"),
                    ]),
                ], className="response-table-header"),
                dag.AgGrid(
                    id="response-slowest", columnDefs=_column_defs(), rowData=[],
                    defaultColDef={"sortable": True, "resizable": True, "filter": True},
                    dashGridOptions={"rowSelection": {"mode": "singleRow",
                                                      "checkboxes": False,
                                                      "enableClickSelection": True},
                                     "animateRows": False, "theme": GRID_THEME},
                    getRowId="params.data.call_id", columnSize="responsiveSizeToFit",
                    className="response-grid",
                    style={"height": "460px"}),
                # Paper gets every row in a plain table (the grid draws only the rows in
                # its viewport, and its columns past the page's width were cut off).
                html.Div(id="response-slowest-print",
                         className="response-print-only response-print-table"),
            ], xs=12),
        ], className="g-3"),
        definitions(),
        response_outcomes.panel(),
        dcc.Store(id="response-shown"),
        dcc.Download(id="response-download"),
        dbc.Modal([
            dbc.ModalHeader(dbc.ModalTitle(id="response-detail-title")),
            dbc.ModalBody(id="response-detail-body"),
        ], id="response-detail", is_open=False, size="lg", scrollable=True),
    ], className="response-page container-fluid", id="response-page")


def _iso_date(text: str | None) -> str | None:
    try:
        return date.fromisoformat(text).isoformat() if text else None
    except ValueError:
        return None


def _column_defs() -> list[dict[str, Any]]:
    def seconds(metric: str, name: str) -> dict[str, Any]:
        return {"field": rv.TABLE_SECONDS[metric], "headerName": name, "type": "rightAligned",
                "headerTooltip": f"{METRIC_LABELS[metric]} (m:ss; CSV in seconds)",
                "valueFormatter": DURATION_FORMAT, "filter": "agNumberColumnFilter",
                "minWidth": 118}

    def text(field: str, name: str, width: int) -> dict[str, Any]:
        # Long names wrap onto a second line rather than being cut off.
        return {"field": field, "headerName": name, "minWidth": width, "wrapText": True,
                "autoHeight": True, "cellClass": "response-cell-wrap"}

    return [
        # The full CAD id: a simulated run's ids end in a run tag (seed + start) that keeps
        # them unique across restarts, so it stays, shown dimmed (assets/response.js).
        {"field": "call_id", "headerName": "Call", "minWidth": 190,
         "cellRenderer": "CallId", "tooltipField": "call_id"},
        {"field": "received", "headerName": "Received", "minWidth": 160},
        {"field": "district", "headerName": "District", "minWidth": 100},
        text("neighborhood", "Neighborhood", 150),
        text("category", "Category", 150),
        {"field": "priority", "headerName": "Priority", "minWidth": 112, "maxWidth": 125,
         "cellRenderer": "Priority"},
        {"field": "target_seconds", "headerName": "Target", "type": "rightAligned",
         "headerTooltip": "The call's own priority's target for the chosen interval",
         "valueFormatter": DURATION_FORMAT, "minWidth": 105},
        {"field": "past_target_seconds", "headerName": "Past target", "type": "rightAligned",
         "headerTooltip": "How far the chosen interval went past the call's own target "
                          "(the table is ranked by this; negative: within target)",
         # Wide enough for its head beside the sort arrow and filter icon.
         "valueFormatter": SIGNED_FORMAT, "filter": "agNumberColumnFilter", "minWidth": 150,
         "sort": "desc"},
        text("call_type", "Type", 150),
        seconds("dispatch", "Dispatch"), seconds("travel", "Travel"),
        seconds("response", "Response"), seconds("on_scene", "On scene"),
    ]


dash.clientside_callback(
    dash.ClientsideFunction("response", "printTable"),
    Output("response-slowest-print", "children"),
    Input("response-slowest", "rowData"), State("response-slowest", "columnDefs"),
)


def definitions() -> Component:
    """What each interval measures, and what the figures leave out, on the page."""
    items = []
    for key, (_column, label) in rv.METRICS.items():
        items += [html.Dt(label), html.Dd(rv.DEFINITIONS[key])]
    items += [html.Dt("Left out by default"), html.Dd(
        "Cancelled calls, and calls closed only because they dropped out of an active-calls "
        "feed (the feed never said they closed). The two filters above include them; the "
        "counts are always shown. An interval a call lacks a time for is left out for that "
        "call, never counted as zero.")]
    return html.Div([html.H2("What the intervals mean", className="response-subtitle"),
                     html.Dl(items, id="response-definitions")],
                    className="response-definitions")


# --- the filter-change callback -------------------------------------------------------------

@callback(
    Output("response-kpis", "children"), Output("response-series", "figure"),
    Output("response-histogram", "figure"), Output("response-slowest", "rowData"),
    Output("response-shown", "data"), Output("response-period-label", "children"),
    Output("response-error", "children"), Output("response-compliance", "children"),
    Output("response-notes", "children"), Output("response-print-header", "children"),
    Input("response-preset", "value"), Input("response-range", "start_date"),
    Input("response-range", "end_date"), Input("response-metric", "value"),
    Input("response-split", "value"), Input("response-bucket", "value"),
    Input("response-districts", "value"), Input("response-priorities", "value"),
    Input("response-categories", "value"), Input("response-cancelled", "value"),
    Input("response-left-feed", "value"),
)
def update(preset: str, start_date: str | None, end_date: str | None, metric: str,
           split: str, bucket: str, districts: list[str] | None, priorities: list[int] | None,
           categories: list[str] | None, cancelled: str | None = "exclude",
           left_feed: str | None = "exclude") -> tuple[Any, ...]:
    runtime.require_page(PATH)
    settings = runtime.settings()
    if _dates_follow_preset(preset):
        # The picker was moved to show the preset's dates (sync_range): nothing new to draw.
        raise PreventUpdate
    try:
        unknown = sorted(set(districts or ()) - set(city_of(settings).districts))
        if unknown:
            raise ValueError(f"no such district: {', '.join(map(str, unknown))}")
        period = rv.period_bounds(preset, time.time(), settings.timezone, start_date, end_date)
        query = rv.ResponseQuery(metric=metric, split=split, bucket=bucket,
                                 districts=tuple(districts or ()),
                                 priorities=tuple(int(p) for p in priorities or ()),
                                 categories=tuple(categories or ()),
                                 cancelled=cancelled or "exclude",
                                 left_feed=left_feed or "exclude")
    except ValueError as error:
        alert = dbc.Alert(str(error), color="warning", className="py-2")
        return (*[dash.no_update] * 6, alert, *[dash.no_update] * 3)
    view = view_of(period, query, settings.timezone)
    return (*view[:6], None, *view[6:])


def _dates_follow_preset(preset: str) -> bool:
    """True when only the picker's dates changed while a preset (not Custom) is chosen."""
    try:
        fired = dash.callback_context.triggered or []
    except MissingCallbackContextException:  # called directly (benchmark), not by Dash
        return False
    triggered = {item["prop_id"] for item in fired if item.get("prop_id") != "."}
    dates = {"response-range.start_date", "response-range.end_date"}
    return preset != "custom" and bool(triggered) and triggered <= dates


@callback(Output("response-preset", "value"), Output("response-range", "start_date"),
          Output("response-range", "end_date"),
          Input("response-preset", "value"), Input("response-range", "start_date"),
          Input("response-range", "end_date"), prevent_initial_call=True)
def sync_range(preset: str, start_date: str | None, end_date: str | None) -> tuple[Any, ...]:
    """Keep the date picker and the presets in step: a preset shows its dates in the
    picker; editing the picker's dates switches to Custom."""
    runtime.require_page(PATH)
    if dash.ctx.triggered_id == "response-range":
        wanted = rv.preset_dates(preset, time.time(), runtime.settings().timezone)
        if wanted == (str(start_date)[:10], str(end_date)[:10]):
            return dash.no_update, dash.no_update, dash.no_update
        return "custom", dash.no_update, dash.no_update
    dates = rv.preset_dates(preset, time.time(), runtime.settings().timezone)
    if dates is None:
        return dash.no_update, dash.no_update, dash.no_update
    return dash.no_update, *dates


def view_of(period: rv.Period, query: rv.ResponseQuery, timezone: str) -> tuple[Any, ...]:
    """(KPI cards, series figure, histogram, table rows, shown data, period label,
    compliance cards, notes, print header)."""
    settings = runtime.settings()
    shown = rv.compute(runtime.history().select, period, query, timezone,
                       settings.pending_targets, settings.response_targets,
                       settings.target_compliance)
    label = METRIC_LABELS[query.metric]
    table = rv.series_table(shown)
    targets = rv.shown_targets(query, table["group"], settings.pending_targets,
                               settings.response_targets)
    note = "" if targets or query.metric not in response.TARGETED else rv.targets_note(
        query.metric, settings.pending_targets, settings.response_targets)
    current = shown.kpis[query.metric]["current"]
    if current.n:
        series = rv.series_figure(table, targets, label, shown.bucket, note)
        histogram = rv.histogram_figure(*shown.histogram, current, targets, label)
    else:
        series = histogram = rv.empty_figure(rv.empty_reason(shown, query.metric))
    period_text = rv.period_text(period, timezone)
    if shown.note:
        period_text += f". {shown.note}"
    made = time.time()
    meta = rv.export_meta(period, query, timezone, made)
    return (kpi_cards(shown, query.metric), series, histogram, shown.slowest,
            sealed({"series": table, "table": shown.slowest, "meta": meta}), period_text,
            compliance_cards(shown, query.metric, settings.target_compliance),
            notes(shown), print_header(meta))


METRIC_LABELS = {key: label for key, (_column, label) in rv.METRICS.items()}



def kpi_cards(shown: rv.Shown, chosen: str) -> list[Component]:
    """One card per interval: median, p90 and n now, their change on the previous period;
    an interval the period's feeds cannot give says so instead of showing a number."""
    missing = rv.missing_intervals(shown.coverage)
    cards = []
    for metric, stats in shown.kpis.items():
        now, before = stats["current"], stats["previous"]
        lacking = missing[metric]
        if now.n == 0 and lacking:
            body: list[Component] = [html.Div(
                "not in this feed", className="response-kpi-absent",
                id=f"response-kpi-{metric}-absent"), html.Div(
                f"{', '.join(lacking)} gives no {rv.missing_time_text(metric)}",
                className="response-kpi-note")]
        else:
            body = [html.Div([
                _kpi_value(f"response-kpi-{metric}-median", "Median", now.median,
                           rv.delta(now.median, before.median)),
                _kpi_value(f"response-kpi-{metric}-p90", "90th pct", now.p90,
                           rv.delta(now.p90, before.p90)),
            ], className="response-kpi-values")]
            partly = f"; not in {', '.join(lacking)}" if lacking else ""
            body.append(html.Div(f"n = {display.count(now.n)} calls (previous period "
                                 f"{display.count(before.n)}){partly}",
                                 id=f"response-kpi-{metric}-n", className="response-kpi-note",
                                 **{"data-n": str(now.n)}))
        cards.append(dbc.Col(html.Div(
            [html.Div(METRIC_LABELS[metric], className="response-kpi-title"), *body],
            className=f"response-kpi{' chosen' if metric == chosen else ''}",
            id=f"response-kpi-{metric}"), xs=12, sm=6, xl=3))
    return cards


def _kpi_value(id_: str, name: str, seconds: float | None, change: float | None) -> Component:
    arrow = "" if change is None else ("▲ " if change > 0 else "▼ " if change < 0 else "= ")
    trend = "" if change is None else ("worse" if change > 0 else "better")
    return html.Div([
        html.Div(name, className="response-kpi-name"),
        html.Div(display.duration(seconds), id=id_, className="response-kpi-value",
                 **{"data-seconds": "" if seconds is None else f"{seconds:.3f}"}),
        html.Div(f"{arrow}{display.signed_duration(change)} vs previous" if change is not None
                 else "no previous data", className=f"response-kpi-delta {trend}",
                 id=f"{id_}-delta"),
    ], className="response-kpi-block")


def compliance_cards(shown: rv.Shown, metric: str, goal: float) -> Component:
    """Per priority: share of calls within its own target (pass/fail), median, p90, n."""
    if metric not in response.TARGETED:
        return html.P(f"{METRIC_LABELS[metric]} has no targets.", className="response-muted")
    if not shown.compliance:
        return html.P("No calls with this interval to judge against targets.",
                      className="response-muted")
    cards = []
    for item in shown.compliance:
        verdict = "pass" if item.passed else "fail"
        share = item.share or 0.0
        cards.append(html.Div([
            html.Div([html.Span(f"P{item.priority}", className="response-comp-priority "
                                f"prio-badge p{item.priority}"),
                      html.Span(("✓ PASS" if item.passed else "✗ FAIL"),
                                className=f"response-comp-verdict {verdict}")],
                     className="response-comp-head"),
            html.Div(f"{share * 100:.1f}%", className="response-comp-share"),
            html.Div(f"within target {display.duration(item.target)}"
                     f" ({display.count(item.within)} of {display.count(item.n)})",
                     className="response-comp-note"),
            html.Div(f"median {display.duration(item.median)} · 90th "
                     f"{display.duration(item.p90)}", className="response-comp-note"),
        ], className=f"response-comp {verdict}", id=f"response-comp-p{item.priority}",
            **{"data-verdict": verdict, "data-share": f"{share:.6f}"}))
    return html.Div([
        html.Div(f"Within target, per priority ({METRIC_LABELS[metric]}; pass = at least "
                 f"{goal:g}% of calls within their priority's target)",
                 className="response-comp-title"),
        html.Div(cards, className="response-comp-row")])


def notes(shown: rv.Shown) -> list[Component]:
    """What the figures leave out (counts), and whether the history is behind."""
    lines = [html.Span(rv.left_out_text(shown.coverage), id="response-left-out")]
    if not shown.complete:
        lines.append(dbc.Alert(
            "The history writer is behind: the newest closed calls are not in these "
            "figures yet.", color="warning", className="py-2 mt-2", id="response-behind"))
    return lines


def print_header(meta: dict[str, str]) -> Component:
    """The report's heading on paper: what, when, which filters, which time zone."""
    return html.Div([html.H2("Response times report", className="h4")] + [
        html.Div(f"{name}: {value}") for name, value in meta.items()])


# --- drill-down and export ------------------------------------------------------------------

@callback(Output("response-detail", "is_open"), Output("response-detail-title", "children"),
          Output("response-detail-body", "children"),
          Input("response-slowest", "cellClicked"), State("response-shown", "data"),
          prevent_initial_call=True)
def drill_down(clicked: dict[str, Any] | None, shown: dict[str, Any] | None
               ) -> tuple[bool, Any, Any]:
    user = runtime.require_page(PATH)
    if not clicked or not clicked.get("rowId"):
        return False, dash.no_update, dash.no_update
    call_id = str(clicked["rowId"])
    row = next((r for r in (shown or {}).get("table", []) if r["call_id"] == call_id), None)
    live = runtime.reader().call(call_id)
    audit.record("call_detail", call_id=call_id, page=PATH, kept=live is not None)
    call = access.public_view(live, user.role) if live else None
    return True, f"Call {call_id}", detail_body(row, call)


DETAIL_LABELS = (("received", "Received"), ("district", "District"),
                 ("neighborhood", "Neighborhood"), ("category", "Category"),
                 ("priority", "Priority"), ("call_type", "Type"))


def detail_body(row: dict[str, Any] | None, call: dict[str, Any] | None) -> Component:
    """The slow call's record: where, what, each interval, and (while the call's body is
    still kept, 24 h after closing) its units and disposition."""
    items: list[tuple[str, str]] = []
    if row:
        items += [(label, str(row.get(key) or "—")) for key, label in DETAIL_LABELS]
        items += [(METRIC_LABELS[m], display.duration(row.get(rv.TABLE_SECONDS[m])))
                  for m in rv.METRICS]
    if call:
        items += [("Address", str(call.get("address") or "—")),
                  ("Units", ", ".join(call.get("units") or []) or "—"),
                  ("Disposition", str(call.get("disposition") or "—")),
                  ("Status", str(call.get("status")))]
    elif row:
        items.append(("Units", "no longer kept (closed more than 24 h ago)"))
    if not items:
        return html.P("This call is not in the current table.")
    return html.Dl([part for name, value in items for part in (
        html.Dt(name, className="col-4"), html.Dd(value, className="col-8"))],
        className="row", id="response-detail-fields")


@callback(Output("response-download", "data"),
          Input("response-export-table", "n_clicks"), Input("response-export-series", "n_clicks"),
          State("response-slowest", "virtualRowData"), State("response-shown", "data"),
          prevent_initial_call=True)
def export(_table: int | None, _series: int | None, table_rows: list[dict[str, Any]] | None,
           shown: dict[str, Any] | None) -> Any:
    runtime.require_page(PATH)
    shown = unsealed(shown)  # what this server computed, not what a browser says it did
    meta = shown.get("meta") or {}
    if dash.ctx.triggered_id == "response-export-series":
        series = shown.get("series") or {}
        _audit_export("response-series.csv", len(series.get("period") or []), meta)
        return dcc.send_string(rv.csv_text(series, rv.SERIES_COLUMNS, meta),
                               "response-series.csv")
    # The grid's rows in the order shown (after any sort or filter there), each one as
    # computed here; else the stored ones.
    computed = {row["call_id"]: row for row in shown.get("table", [])}
    rows = shown.get("table", []) if table_rows is None else [
        computed[row["call_id"]] for row in table_rows if row.get("call_id") in computed]
    _audit_export("response-slowest.csv", len(rows), meta)
    return dcc.send_string(rv.csv_text(rows, rv.TABLE_COLUMNS, meta), "response-slowest.csv")


def _signer() -> itsdangerous.Signer:
    return itsdangerous.Signer(runtime.settings().secret_key or "", salt="response-shown")


def _digest(value: Any) -> bytes:
    """A hash of what was shown that survives the trip through the browser's JSON (5.0
    comes back as 5, NaN as null)."""
    def canonical(item: Any) -> Any:
        if item is None or isinstance(item, bool | str):
            return item
        if isinstance(item, numbers.Number):
            number = float(item)  # type: ignore[arg-type]
            return repr(number) if math.isfinite(number) else None
        if isinstance(item, dict):
            return {str(key): canonical(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [canonical(inner) for inner in item]
        return str(item)
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest().encode()


def sealed(shown: dict[str, Any]) -> dict[str, Any]:
    """The page's figures with the server's signature over them (exports check it)."""
    return {**shown, "seal": _signer().sign(_digest(shown)).decode()}


def unsealed(shown: dict[str, Any] | None) -> dict[str, Any]:
    """The figures a browser sent back, if this server made them; PermissionError (403,
    audited) if they were changed."""
    figures = {key: value for key, value in (shown or {}).items() if key != "seal"}
    seal = str((shown or {}).get("seal", ""))
    try:
        if _signer().unsign(seal.encode()) == _digest(figures):
            return figures
    except itsdangerous.BadSignature:
        pass
    raise PermissionError("the export's figures were not made by this server")


def _audit_export(name: str, rows: int, meta: dict[str, str]) -> None:
    """Every CSV export is in the audit trail: which file, how many rows, of what."""
    audit.record("csv_export", file=name, rows=rows, period=meta.get("Period", ""),
                 interval=meta.get("Interval", ""), filters=meta.get("Filters", ""))


dash.clientside_callback(
    "function (clicks) { if (clicks) { window.print(); } return ''; }",
    Output("response-print-dummy", "children"), Input("response-print", "n_clicks"),
    prevent_initial_call=True)
