"""Live pages follow their session: when it ends, the socket closes and the page asks the
user to sign in again (streams/state-contract.md, "Sessions")."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dashboard.auth.sessions import SessionStore
from streams.core import audit
from streams.core.sessions import RoleTable, session_id
from tests.browser.conftest import Stack, wait_until
from tests.conftest import TIMEOUT_SCALE

pytestmark = pytest.mark.browser


def test_wall_whose_session_an_admin_ends_goes_to_sign_in(page_for: Any, stack: Stack) -> None:
    """An admin ends a wall's session: within seconds its socket is closed (4401) and the
    wall turns to the sign-in page, coming back to /wall afterwards."""
    if not stack.running("push"):
        pytest.skip("the push service is not running")
    page = page_for("commander", path="/wall", viewport=(1920, 1080))
    page.wait_for_function("() => window.dispatchLive && window.dispatchLive.status === 'live'")
    secret = next(c["value"] for c in page.context.cookies() if c["name"] == "dispatch_session")
    store = SessionStore(stack.redis, stack.keys, RoleTable.parse("*=60"),
                         RoleTable.parse("*=12"))
    assert store.end(session_id(secret), "ended_by_admin")
    page.wait_for_url(re.compile(r"/login\?next=%2Fwall"), timeout=10_000 * TIMEOUT_SCALE)
    # live.js names its page; push recorded the socket's opening and why it ended it.
    def recorded(action: str, **detail: Any) -> bool:
        return any(entry["action"] == action and entry["detail"].items() >= detail.items()
                   for entry in (audit.decode(*found) for found in
                                 stack.redis.xrange(stack.keys.audit)))
    assert recorded("socket_open", page="/wall", view="full")
    wait_until(lambda: recorded("socket_closed", page="/wall", reason="session_revoked",
                                why="ended_by_admin", by="push"), "the close in the trail")
