"""Components as the JSON Dash sends them, made once for what many responses repeat.

Dash encodes a callback's components on every response: each one's ``to_plotly_json``,
then the JSON encoder calling back into Python for every component it meets. For parts
that come out the same in many responses (a tablet's cards, the detail map's outlines)
that was most of the request's CPU. ``wire(component)`` is the same tree as plain
dicts and lists in Dash's layout format (``{"type", "namespace", "props"}``), which the
encoder writes without calling back and the renderer treats exactly as the component.
Keep what it returns read-only: cached trees are shared by every request.
"""

from __future__ import annotations

from typing import Any

from dash.development.base_component import Component

Wire = dict[str, Any]
"""One component in Dash's layout format."""


def wire(component: Component) -> Wire:
    """``component`` and everything inside it as Dash's layout JSON (plain data)."""
    found = _plain(component)
    assert isinstance(found, dict)
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, Component):
        as_json = value.to_plotly_json()
        return {**as_json, "props": {name: _plain(prop)
                                     for name, prop in as_json["props"].items()}}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
