"""The outcomes panel of /response: calls marked handled on tablets, counted per QoL
category and district over the period the page shows (issue 11 item 1).

Its own module, included by ``layouts/response.py`` with ``panel()``; the counting is
``dashboard.outcomesview``, the records ``dashboard.actionstore.ActionStore.outcomes``
(the dashboard's own records, not CAD dispositions).
"""

from __future__ import annotations

import time
from typing import Any

import dash_bootstrap_components as dbc
from dash import Input, Output, callback, html
from dash.development.base_component import Component

from dashboard import actionroutes, outcomesview, runtime
from dashboard import responseview as rv
from streams.core.actions import OUTCOMES

PATH = "/response"
NOTE = ("From the dashboard's own records of quality-of-life calls marked handled on "
        "tablets, by when they were marked; not CAD dispositions.")


def panel() -> Component:
    """The panel's place on the page; ``update_outcomes`` fills it."""
    return html.Section([
        html.H2("Quality-of-life outcomes", className="response-subtitle"),
        html.P(NOTE, className="response-note"),
        html.Div(id="response-outcomes-table"),
    ], id="response-outcomes", className="response-outcomes")


@callback(Output("response-outcomes-table", "children"),
          Input("response-preset", "value"), Input("response-range", "start_date"),
          Input("response-range", "end_date"), Input("response-districts", "value"))
def update_outcomes(preset: str, start_date: str | None, end_date: str | None,
                    districts: list[str] | None) -> Any:
    runtime.require_page(PATH)
    try:
        period = rv.period_bounds(preset, time.time(), runtime.settings().timezone,
                                  start_date, end_date)
    except ValueError as error:
        return dbc.Alert(str(error), color="warning", className="py-2")
    records = actionroutes.store().outcomes(period.start, period.end)
    return table_of(outcomesview.outcome_table(records, tuple(districts or ())))


def table_of(shown: outcomesview.OutcomeTable) -> Component:
    if not shown.total:
        return html.P("No calls were marked handled on tablets in this period.",
                      className="response-outcomes-empty")
    head = html.Thead(html.Tr([html.Th("Category"), html.Th("District"),
                               *[html.Th(label) for label in OUTCOMES.values()],
                               html.Th("All")]))
    body = html.Tbody([
        html.Tr([html.Td(category), html.Td(district),
                 *[html.Td(str(counts.get(code, 0))) for code in OUTCOMES],
                 html.Td(str(total), className="fw-bold")])
        for category, district, counts, total in shown.rows])
    foot = html.Tfoot(html.Tr([html.Th("All"), html.Th(""),
                               *[html.Th(str(shown.totals.get(code, 0))) for code in OUTCOMES],
                               html.Th(str(shown.total))]))
    return dbc.Table([head, body, foot], bordered=True, hover=True, size="sm",
                     className="response-outcomes-grid", id="response-outcomes-grid")
