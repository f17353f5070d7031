"""DISPATCH_DISTRICTS_FILE names the districts on every page (issue 10 item 8)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard import runtime
from layouts import admin, response
from streams.core.access import User
from streams.core.geography import DEFAULT_DISTRICTS, city_of
from streams.core.settings import Settings

RENAMED = {"North": "Zone 2", "Central": "Zone 1", "South": "East Side"}


@pytest.fixture
def renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    path = tmp_path / "districts.json"
    path.write_text(json.dumps({hood: RENAMED[d] for hood, d in DEFAULT_DISTRICTS.items()}))
    settings = Settings.from_env({"DISPATCH_DISTRICTS_FILE": str(path)})
    monkeypatch.setattr(runtime, "settings", lambda: settings)
    monkeypatch.setattr(runtime, "current_user", lambda: User("sup", "supervisor"))
    return settings


def options_of(tree: Any, component_id: str) -> Iterator[list[dict[str, Any]]]:
    if getattr(tree, "id", None) == component_id:
        yield tree.options
    children = getattr(tree, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            yield from options_of(child, component_id)


def test_the_city_orders_its_districts_hartford_first_then_by_name(renamed: Settings) -> None:
    assert city_of(Settings.from_env({})).districts == ("North", "Central", "South")
    assert city_of(renamed).districts == ("East Side", "Zone 1", "Zone 2")


def test_response_and_admin_offer_the_configured_districts(renamed: Settings) -> None:
    names = ["East Side", "Zone 1", "Zone 2"]
    [offered] = options_of(response.layout(), "response-districts")
    assert [option["value"] for option in offered] == names
    assert [option["value"] for option in admin.district_options()] == names
