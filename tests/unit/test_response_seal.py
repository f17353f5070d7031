"""/response's exports write what this server computed (the page's store is sealed)."""

from __future__ import annotations

import json

import pytest

from dashboard import runtime
from layouts import response
from streams.core.settings import Settings

SHOWN = {"series": {"n": [3, 4], "median_seconds": [5.0, float("nan")]},
         "table": [{"call_id": "C1", "past_target_seconds": -42.5}],
         "meta": {"Period": "Last 7 days (whole calendar days, up to now)"}}


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env({"DISPATCH_SECRET_KEY": "s" * 32})
    monkeypatch.setattr(runtime, "settings", lambda: settings)


def through_the_browser(value: dict[str, object]) -> dict[str, object]:
    """JSON as a browser sends it back: 5.0 is 5, NaN is null."""
    text = json.dumps(value).replace("NaN", "null").replace("5.0", "5")
    return json.loads(text)  # type: ignore[no-any-return]


def test_what_the_server_showed_comes_back_unsealed() -> None:
    back = response.unsealed(through_the_browser(response.sealed(SHOWN)))
    assert back["table"] == SHOWN["table"] and back["meta"] == SHOWN["meta"]


@pytest.mark.parametrize("change", [
    lambda shown: shown["meta"].update(Period="all of 2013"),
    lambda shown: shown["table"].append({"call_id": "FAKE"}),
    lambda shown: shown.pop("seal"),
])
def test_changed_figures_are_refused(change) -> None:  # type: ignore[no-untyped-def]
    shown = through_the_browser(response.sealed(SHOWN))
    change(shown)
    with pytest.raises(PermissionError, match="not made by this server"):
        response.unsealed(shown)
