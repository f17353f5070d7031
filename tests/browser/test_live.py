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
    wall turns to the sign-in page saying the session ended, coming back to /wall
    afterwards."""
    if not stack.running("push"):
        pytest.skip("the push service is not running")
    page = page_for("commander", path="/wall", viewport=(1920, 1080))
    page.wait_for_function("() => window.dispatchLive && window.dispatchLive.status === 'live'")
    secret = next(c["value"] for c in page.context.cookies() if c["name"] == "dispatch_session")
    store = SessionStore(stack.redis, stack.keys, RoleTable.parse("*=60"),
                         RoleTable.parse("*=12"))
    assert store.end(session_id(secret), "ended_by_admin")
    page.wait_for_url(re.compile(r"/login\?ended=1&next=%2Fwall"),
                      timeout=10_000 * TIMEOUT_SCALE)
    assert "Your session has ended" in page.locator("#login-error").inner_text()
    # live.js names its page; push recorded the socket's opening and why it ended it.
    def recorded(action: str, **detail: Any) -> bool:
        return any(entry["action"] == action and entry["detail"].items() >= detail.items()
                   for entry in (audit.decode(*found) for found in
                                 stack.redis.xrange(stack.keys.audit)))
    assert recorded("socket_open", page="/wall", view="full")
    wait_until(lambda: recorded("socket_closed", page="/wall", reason="session_revoked",
                                why="ended_by_admin", by="push"), "the close in the trail")


# Every WebSocket the page opens, so a test can drop one as a network blip would.
TRACK_SOCKETS = """(() => {
  const Original = window.WebSocket;
  window.openedSockets = [];
  window.WebSocket = function (url, protocols) {
    const socket = protocols === undefined ? new Original(url) : new Original(url, protocols);
    window.openedSockets.push(socket);
    return socket;
  };
  window.WebSocket.prototype = Original.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();"""


def test_a_page_whose_session_expired_while_its_socket_was_down_does_not_reconnect(
        page_for: Any, stack: Stack) -> None:
    """The session's key expires (idle: no revocation is written) and the page's socket then
    drops: its token refresh is refused (403), so live.js opens no socket with the old
    token (push would refuse it and audit the refusal) and the page goes to sign in."""
    if not stack.running("push"):
        pytest.skip("the push service is not running")
    page = page_for("cso", path="/queues")
    page_for.allow_errors(page, r"status of 403|Callback error updating")
    page.context.add_init_script(TRACK_SOCKETS)
    page.reload()
    page.wait_for_function("() => window.dispatchLive && window.dispatchLive.status === 'live'")
    secret = next(c["value"] for c in page.context.cookies() if c["name"] == "dispatch_session")
    stack.redis.delete(stack.keys.session(session_id(secret)))  # as its TTL would
    page.evaluate("() => window.openedSockets.forEach((socket) => socket.close())")
    page.wait_for_url(re.compile(r".*/login\?ended=1.*"), timeout=15_000 * TIMEOUT_SCALE)
    # page_for's teardown fails on the console error of a refused handshake
    # ("WebSocket connection to ... failed: HTTP Authentication failed").
