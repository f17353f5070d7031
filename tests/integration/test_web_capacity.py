"""What a web worker shares between requests (the Dash callback list, the polling wall's
live snapshot) never skips sign-in or the role check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.conftest import PASSWORD, WebServer

POLL_CALLBACK = {
    "output": "wall-poll-store.data",
    "outputs": {"id": "wall-poll-store", "property": "data"},
    "inputs": [{"id": "wall-poll-interval", "property": "n_intervals", "value": 1}],
    "changedPropIds": ["wall-poll-interval.n_intervals"],
}
FAST = {"login_hashes_per_second": 1000.0}

Server = Callable[..., WebServer]


def poll(client: httpx.Client) -> httpx.Response:
    return client.post("/_dash-update-component", json=POLL_CALLBACK,
                       headers={"X-CSRFToken": client.cookies.get("_csrf_token") or ""})


def test_the_shared_callback_list_still_needs_a_session(web_server: Server) -> None:
    """/_dash-dependencies, encoded once per worker, is the same list on every load, with
    the security headers, and nothing without a session."""
    server = web_server(**FAST)
    server.users.add("sup", "supervisor", PASSWORD)
    browser = server.signed_in("sup")
    first, second = browser.get("/_dash-dependencies"), browser.get("/_dash-dependencies")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    listed: list[dict[str, Any]] = first.json()
    assert any(entry["output"] == "wall-poll-store.data" for entry in listed)
    assert first.headers["X-Frame-Options"] == "DENY"
    assert first.headers["Cache-Control"] == "no-store"
    assert server.client().get("/_dash-dependencies").status_code == 403


def test_the_shared_live_snapshot_is_refused_to_roles_without_the_wall(
        web_server: Server) -> None:
    """A commander's polls fill the worker's shared snapshot; a tablet role (cso) asking
    for the same callback right after is refused, and gets no call of it."""
    server = web_server(**FAST)
    server.users.add("cmd", "commander", PASSWORD)
    server.users.add("cso-n", "cso", PASSWORD, "North")
    commander, tablet = server.signed_in("cmd"), server.signed_in("cso-n")
    for _ in range(3):
        reply = poll(commander)
        assert reply.status_code == 200
        assert "last_id" in reply.json()["response"]["wall-poll-store"]["data"]
    refused = poll(tablet)
    assert refused.status_code == 403
    assert "last_id" not in refused.text
