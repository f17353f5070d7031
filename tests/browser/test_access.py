"""Access in a real browser: who may open which page, sign-in and its limit, sign-out,
sessions, password change, security headers, websocket tokens."""

from __future__ import annotations

import importlib.util
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from dashboard import auth
from dashboard.app import PAGES
from streams.core import tokens
from streams.core.access import PAGE_ROLES, ROLES
from streams.core.events import UnitEvent
from streams.core.sessions import Revocation, session_id
from tests.browser.conftest import SECRET_KEY, Stack, sign_in, wait_for_page
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

WRITTEN_PAGES = [path for path, module, _ in PAGES if importlib.util.find_spec(module)]
CASES = [(path, role) for path in WRITTEN_PAGES for role in ROLES]
CASE_IDS = [f"{path.strip('/') or 'home'}-{role}" for path, role in CASES]


def login_nonce(client: httpx.Client) -> str:
    form = client.get("/login").text
    found = re.search(r'name="nonce" value="([^"]+)"', form)
    assert found, form
    return found.group(1)


@pytest.mark.parametrize(("path", "role"), CASES, ids=CASE_IDS)
def test_page_renders_for_allowed_roles_and_refuses_others(page_for: Any, path: str,
                                                           role: str) -> None:
    """Each page renders for the roles PAGE_ROLES allows and shows a refusal to the rest."""
    page = page_for(role, viewport=(1280, 900), path=path)
    refused = page.locator("#page-refused")
    if role in PAGE_ROLES[path]:
        page.wait_for_timeout(500)  # let first callbacks run, so their errors are caught
        assert refused.count() == 0
        assert page.locator("#_pages_content").inner_text().strip() != ""
    else:
        assert "Not allowed for your role" in refused.inner_text()
    nav = page.locator(".app-navbar").inner_text()
    for other, roles in PAGE_ROLES.items():
        if other != "/" and other in WRITTEN_PAGES:
            name = next(n for p, _, n in PAGES if p == other)
            assert (name in nav) == (role in roles), f"navbar link to {other} for {role}"


@pytest.mark.parametrize("path", sorted(p for p in PAGE_ROLES if p in WRITTEN_PAGES))
def test_anonymous_requests_are_sent_to_sign_in(stack: Stack, path: str) -> None:
    """Without a session every page redirects to /login with the page as next."""
    reply = httpx.get(f"{stack.base_url}{path}", follow_redirects=False)
    assert reply.status_code == 302
    assert reply.headers["location"] == f"/login?next={path}"


def test_anonymous_browser_lands_on_sign_in_form(page_for: Any) -> None:
    """An anonymous browser opening /wall sees the sign-in form, not the wall."""
    page = page_for(None, path="/wall")
    assert page.url.endswith("/login?next=/wall")
    assert page.locator("#login-form").is_visible()


@pytest.mark.parametrize("route", ["/_dash-layout", "/_dash-dependencies", "/auth/ws-token"])
def test_dash_internals_refuse_anonymous(stack: Stack, route: str) -> None:
    """Dash's layout/dependency routes and the token endpoint answer 403 without a session."""
    reply = httpx.get(f"{stack.base_url}{route}")
    assert reply.status_code == 403
    assert reply.json() == {"error": "sign in first"}


def test_callbacks_refuse_anonymous(stack: Stack) -> None:
    """POST /_dash-update-component without a session is 403 JSON."""
    reply = httpx.post(f"{stack.base_url}/_dash-update-component",
                       json={"output": "status-body.children", "inputs": []})
    assert reply.status_code == 403
    assert reply.json() == {"error": "sign in first"}


def test_callbacks_need_csrf_header(stack: Stack) -> None:
    """A signed-in POST without the CSRF header is refused; with it the callback runs."""
    with httpx.Client(base_url=stack.base_url) as client:
        reply = client.post("/login", data={
            "name": "supervisor", "password": stack.password("supervisor"),
            "nonce": login_nonce(client), "next": "/"})
        assert reply.status_code == 302
        body = {"output": "status-body.children", "outputs": {"id": "status-body",
                "property": "children"}, "inputs": [{"id": "status-interval",
                "property": "n_intervals", "value": 1}], "changedPropIds": [
                "status-interval.n_intervals"]}
        refused = client.post("/_dash-update-component", json=body)
        assert refused.status_code == 403
        client.get("/")  # the CSRF cookie comes with any signed-in response
        token = client.cookies["_csrf_token"]
        answered = client.post("/_dash-update-component", json=body,
                               headers={"X-CSRFToken": token})
        assert answered.status_code == 200
        assert "status-feeds" in answered.text


def test_wrong_password_shows_an_error(page_for: Any, stack: Stack) -> None:
    """A wrong password keeps the person on the form with a clear message."""
    page = page_for(None, path="/login")
    page_for.allow_errors(page, r"status of 401")
    sign_in(page, stack, "commander", "not-the-password", "/wall")
    assert "/login" in page.url
    assert page.locator("#login-error").inner_text() == "Wrong user name or password."


def test_failed_sign_ins_are_rate_limited(page_for: Any, stack: Stack) -> None:
    """After the allowed failures from one address even the right password is refused for
    a while there (the address is locked), while the same user signs in from another."""
    users = auth.open_users(stack.settings)
    users.add("limited-user", "commander", "right-password")
    page = page_for(None, path="/login", address="198.51.100.40")
    page_for.allow_errors(page, r"status of 40[19]|status of 429")
    for _ in range(stack.settings.login_attempts_per_minute):
        sign_in(page, stack, "limited-user", "wrong-password")
        assert page.locator("#login-error").inner_text() == "Wrong user name or password."
    sign_in(page, stack, "limited-user", "right-password")
    assert "Too many failed sign-ins" in page.locator("#login-error").inner_text()
    assert "/login" in page.url
    other = page_for(None, path="/login", address="198.51.100.41")
    sign_in(other, stack, "limited-user", "right-password", "/wall")
    assert other.url.endswith("/wall")
    users.client.close()


def test_sign_out_ends_the_session(page_for: Any, stack: Stack, browser: Any) -> None:
    """The Sign out button posts the form, returns to sign-in, pages need signing in again,
    a copy of the session cookie taken before opens nothing, and push is told."""
    page = page_for("supervisor")
    cookies = page.context.cookies()
    secret = next(c["value"] for c in cookies if c["name"] == "dispatch_session")
    page.click("#nav-signout")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(f"{stack.base_url}/response")
    assert page.url.endswith("/login?next=/response")
    copy = browser.new_context()
    copy.add_cookies([c for c in cookies if c["name"] == "dispatch_session"])
    stolen = copy.new_page()
    stolen.goto(f"{stack.base_url}/response")
    assert "/login" in stolen.url and stolen.locator("#login-form").is_visible()
    copy.close()
    ended = [Revocation.from_fields(f) for _, f in
             stack.redis.xrange(stack.keys.session_revocations)]
    assert Revocation(session_id(secret), "supervisor", "signed_out") in ended


CROSS_SITE_PAGES = {
    "frame": '<iframe id="framed" name="framed" src="{base}/login"></iframe>',
    "link": '<script>location.assign("{base}/logout")</script>',
    "post": '<form id="f" method="post" action="{base}/logout"><input name="csrf" value="x">'
            '</form><script>document.getElementById("f").submit()</script>',
}
"""Pages of another site (localhost is another site than 127.0.0.1, on the same machine)."""


def test_another_site_can_neither_sign_out_nor_frame_the_dashboard(page_for: Any,
                                                                   stack: Stack) -> None:
    """A page on another site that frames the dashboard, sends the browser to GET /logout
    or posts a sign-out form changes nothing: the frame is refused, GET /logout only asks,
    and the user stays signed in."""
    page = page_for("commander", path="/wall")
    page_for.allow_errors(page, r"frame-ancestors|Refused to (display|frame)|X-Frame-Options"
                                r"|ERR_BLOCKED_BY_RESPONSE")
    other_site = f"http://localhost:{stack.settings.web_port}/other-site/"
    page.context.route(other_site + "*", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><html><body>" +
        CROSS_SITE_PAGES[route.request.url.rsplit("/", 1)[1]].format(base=stack.base_url)
        + "</body></html>"))
    page.goto(other_site + "frame")
    page.wait_for_timeout(1500)
    framed = page.frame(name="framed")
    assert framed is not None and framed.locator("#login-form").count() == 0
    page.goto(other_site + "link")
    page.wait_for_url(f"{stack.base_url}/logout")
    assert page.locator("#logout-form").is_visible()  # asks; signs nobody out
    page.goto(other_site + "post")
    page.wait_for_load_state("load")
    page.goto(f"{stack.base_url}/wall")
    wait_for_page(page)
    assert page.url.endswith("/wall")
    assert page.locator("#nav-user").inner_text().startswith("commander")


CSP_WATCH = """document.addEventListener("securitypolicyviolation", (event) => {
  (window.__violations = window.__violations || []).push(
    event.violatedDirective + " " + (event.blockedURI || "inline"));
});"""
RENDERED = {"/wall": ".leaflet-container canvas", "/queues": "#queues-cards",
            "/response": "#response-metric",
            "/": "#status-feeds"}
"""An element each page shows only once its scripts (Leaflet, Dash's dropdowns) have run."""


def test_pages_carry_the_security_headers_and_render_under_them(page_for: Any,
                                                                stack: Stack) -> None:
    """The page a browser loads has the CSP (scripts from here and Dash's hashes only), no
    framing, nosniff and a same-origin referrer; every page renders fully under it (Dash,
    Plotly, Leaflet, AG Grid) without a single policy violation."""
    page = page_for("admin")
    page.add_init_script(CSP_WATCH)
    for path, element in RENDERED.items():
        reply = page.goto(f"{stack.base_url}{path}")
        wait_for_page(page)
        page.locator(element).first.wait_for(state="visible")
        page.wait_for_timeout(1000)
        headers = reply.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self' 'sha256-" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert page.evaluate("window.__violations || []") == [], path
        page.screenshot(path=str(ARTIFACTS / f"csp-{path.strip('/') or 'status'}.png"))


def test_a_reset_password_is_changed_at_the_next_sign_in(page_for: Any, stack: Stack) -> None:
    """After an admin's reset the user signs in with the temporary password, is asked for a
    new one before any page, and then lands on the page they last asked for."""
    users = auth.open_users(stack.settings)
    users.add("reset-user", "supervisor", "first-password")
    temporary = users.reset_password("reset-user")
    page = page_for(None, path="/login", address="198.51.100.42")
    sign_in(page, stack, "reset-user", temporary, "/response")
    assert "/password" in page.url and page.locator("#password-form").is_visible()
    page.goto(f"{stack.base_url}/wall")
    assert "/password" in page.url
    page.fill("#password-current", temporary)
    page.fill("#password-new", "my-own-password")
    page.fill("#password-again", "my-own-password")
    page.click("#password-submit")
    page.wait_for_url(re.compile(r".*/wall$"))
    wait_for_page(page)
    assert page.locator("#page-refused").count() == 0
    record = users.authenticate("reset-user", "my-own-password")
    assert record is not None and not record.must_change
    users.client.close()


def test_an_ended_session_sends_the_page_to_sign_in(page_for: Any, stack: Stack) -> None:
    """When an admin ends a session, the open page leaves for the sign-in form at its next
    check or refused refresh (no police data stays on an unattended screen)."""
    page = page_for("cso", path="/queues")
    # Refused on purpose once the session is gone: callbacks (403) and, if the page
    # reconnects its live socket before it leaves, the push service (401).
    page_for.allow_errors(page, r"status of 403|Callback error updating|"
                                r"WebSocket connection to .* HTTP Authentication failed")
    users = auth.open_users(stack.settings)
    for session in users.sessions.list("cso-north"):
        users.sessions.end(session.sid, "ended_by_admin")
    users.client.close()
    page.wait_for_url(re.compile(r".*/login\?ended=1.*"), timeout=45_000)
    assert "Your session has ended" in page.locator("#login-error").inner_text()


def test_status_page_shows_feeds_for_every_role(page_for: Any) -> None:
    """The home page lists all four feeds with their state and counts."""
    page = page_for("cso")
    wait_for_page(page)
    table = page.locator("#status-feeds").inner_text()
    for name in ("CAD calls", "AVL unit positions", "ShotSpotter alerts", "Mutualink shares"):
        assert name in table
    assert page.locator("#status-deadletter-count").count() == 0  # supervisors only


def handshake_status(url: str) -> int:
    """101 when the push service accepts the websocket (and sends its first message)."""
    # The sync client: Playwright's sync API already runs an event loop in this thread.
    try:
        with connect(url, open_timeout=10) as websocket:
            websocket.recv(timeout=10)
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("token_kind", ["none", "expired", "forged"])
def test_websocket_refuses_missing_or_bad_tokens(stack: Stack, token_kind: str) -> None:
    """The push service refuses a connection with no, an expired or a forged token."""
    if not stack.running("push"):
        pytest.skip("streams.push is not written yet")
    make = {"none": lambda: "",
            "expired": lambda: tokens.make_ws_token(SECRET_KEY, "commander", "commander",
                                                    now=time.time() - 3600),
            "forged": lambda: tokens.make_ws_token("another-secret", "admin", "admin")}
    url = f"{stack.push_url}?token={make[token_kind]()}" if token_kind != "none" \
        else stack.push_url
    assert (handshake_status(url)) in {401, 403}


def test_websocket_accepts_the_page_token(page_for: Any, stack: Stack) -> None:
    """The token a signed-in page carries opens the websocket (the refusals above are real)."""
    if not stack.running("push"):
        pytest.skip("streams.push is not written yet")
    page = page_for("commander")
    token = page.evaluate(
        "() => fetch('/auth/ws-token').then(r => r.json()).then(j => j.token)")
    claims = tokens.verify_token(SECRET_KEY, token, stack.settings.ws_token_seconds)
    assert (claims.user, claims.role) == ("commander", "commander")
    secret = next(c["value"] for c in page.context.cookies() if c["name"] == "dispatch_session")
    assert claims.sid == session_id(secret)
    assert (handshake_status(f"{stack.push_url}?token={token}")) == 101


def test_status_page_counts_and_freshness_follow_the_feeds(page_for: Any, stack: Stack) -> None:
    """Applied and rejected counts, feed state and dead letters update on the open page."""
    if not stack.running("consumer"):
        pytest.skip("streams.consumer is not written yet")
    page = page_for("supervisor")
    applied = int(page.locator("#status-applied-avl").inner_text().replace(",", ""))
    rejected = int(page.locator("#status-rejected-shotspotter").inner_text().replace(",", ""))
    stack.publish([UnitEvent(event_id=f"status-{uuid.uuid4().hex[:8]}",
                             event_time=datetime.now(UTC), unit_id="status-unit-1",
                             unit_kind="patrol", status="available", lat=41.77, lon=-72.68)])
    stack.publish_raw("shotspotter", b"{not json")
    expect(page.locator("#status-applied-avl")).to_have_text(f"{applied + 1:,}")
    expect(page.locator("#status-state-avl")).to_have_text("● LIVE")
    expect(page.locator("#status-rejected-shotspotter")).to_have_text(f"{rejected + 1:,}")
    expect(page.locator("#status-deadletters")).to_contain_text("shotspotter:")
