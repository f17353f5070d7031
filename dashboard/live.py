"""The two components every live page includes so assets/live.js can connect.

``live-config`` carries the push URL, a short-lived websocket token and the city's time
zone (for the banner of a page whose live updates are lost); live.js refreshes
the token from ``/auth/ws-token`` before it expires and merges pushed changes into
``live-store`` (at most one ``set_props`` every 100 ms; none while a page that draws itself,
the wall, is subscribed).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import flask
from dash import dcc, html
from dash.development.base_component import Component

from dashboard import auth, runtime
from streams.core import changefeed
from streams.core.settings import Settings


def push_url(settings: Settings, host_url: str) -> str:
    """The websocket URL browsers use: the configured one, else this page's host on the
    push port (wss when the page itself came over https)."""
    if settings.push_public_url:
        return settings.push_public_url
    parts = urlsplit(host_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{host}:{settings.push_port}/live"


def live_components() -> list[Component]:
    """``[dcc.Store(id="live-store"), html.Div(id="live-config", data-url, data-token,
    data-timezone, data-kinds)]``: data-kinds is the change feed's table of entity kinds (list
    name, id field), so live.js applies every kind Python knows, new ones included."""
    settings = runtime.settings()
    session = runtime.current_session()
    token = auth.make_ws_token(settings, session.user, session.sid) if session else ""
    config = html.Div(id="live-config", hidden=True, **{
        "data-url": push_url(settings, flask.request.host_url), "data-token": token,
        "data-token-seconds": str(settings.ws_token_seconds),
        # The "Live updates lost at HH:MM:SS" banner tells the time as the city's clocks do.
        "data-timezone": settings.timezone,
        "data-kinds": json.dumps(changefeed.kinds_table())})
    return [dcc.Store(id="live-store"), config]
