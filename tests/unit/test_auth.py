"""The pure parts of sign-in: next paths, proxies, headers, session rules, device cookies,
password rules, callback shapes, tokens and status-page maths (Redis parts are in
tests/integration/test_auth_app.py)."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import BadRequest

from dashboard import auth
from dashboard.auth import limits, passwords
from dashboard.auth.errors import callback_problem
from dashboard.auth.headers import content_security_policy, origin_of, security_headers
from dashboard.auth.per_request import counts_as_activity
from dashboard.auth.routes import safe_next
from dashboard.live import push_url
from layouts.status import feed_rows, feed_state
from streams.core import sessions, tokens
from streams.core.access import User
from streams.core.keys import AUTH_TAG, SOURCES, Keys
from streams.core.proxies import TrustedProxies
from streams.core.settings import Settings


@pytest.mark.parametrize(("target", "expected"), [
    ("/wall", "/wall"), ("/queues?district=North", "/queues?district=North"), (None, "/"),
    ("", "/"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), ("wall", "/")])
def test_only_same_site_paths_are_followed_after_sign_in(target: str | None,
                                                         expected: str) -> None:
    """The next parameter cannot send a signed-in person to another site."""
    assert safe_next(target) == expected


@pytest.mark.parametrize("target", ["/\r\nSet-Cookie: x=1", "/wall\n", "/\x00", "/\x7f"])
def test_control_characters_in_next_are_a_bad_request(target: str) -> None:
    """A CR LF (or any control character) in next is refused with 400, never followed."""
    with pytest.raises(BadRequest):
        safe_next(target)


def test_secret_key_is_required() -> None:
    """Without DISPATCH_SECRET_KEY the app refuses to start and says what to set."""
    with pytest.raises(RuntimeError, match="DISPATCH_SECRET_KEY"):
        auth.require_secret_key(Settings(secret_key=None))
    assert auth.require_secret_key(Settings(secret_key="s3cret")) == "s3cret"


def test_ws_token_round_trip_carries_the_user() -> None:
    """A token made for a user verifies back to that user, role and district."""
    settings = Settings(secret_key="token-secret", ws_token_seconds=300)
    token = auth.make_ws_token(settings, User("cso-north", "cso", "North"), "ab" * 16)
    claims = tokens.verify_token("token-secret", token, 300)
    assert (claims.user, claims.role, claims.district, claims.sid) == (
        "cso-north", "cso", "North", "ab" * 16)
    with pytest.raises(tokens.TokenInvalid):
        tokens.verify_token("other-secret", token, 300)


@pytest.mark.parametrize(("configured", "host_url", "expected"), [
    (None, "http://127.0.0.1:8050/", "ws://127.0.0.1:8765/live"),
    (None, "http://wall.example.org/", "ws://wall.example.org:8765/live"),
    (None, "https://dispatch.example.org/", "wss://dispatch.example.org:8765/live"),
    (None, "http://[::1]:8050/", "ws://[::1]:8765/live"),
    ("wss://push.example.org/live", "http://127.0.0.1:8050/", "wss://push.example.org/live"),
])
def test_push_url_uses_the_page_host_unless_configured(configured: str | None, host_url: str,
                                                       expected: str) -> None:
    """Browsers reach the push service on the page's host and the push port."""
    assert push_url(Settings(push_public_url=configured, push_port=8765), host_url) == expected


@pytest.mark.parametrize(("seen", "state"), [
    (None, (False, "no events yet")), (1000.0, (True, "live")), (700.0, (True, "live")),
    (699.0, (False, "stale for 5 min")), (1000.0 - 3600, (False, "stale for 60 min"))])
def test_feed_state_turns_stale_after_the_threshold(seen: float | None,
                                                    state: tuple[bool, str]) -> None:
    """A feed is live up to stale_after seconds after its last applied event."""
    assert feed_state(seen, now=1000.0, stale_after_s=300) == state


def test_feed_state_under_a_minute_stale_says_seconds() -> None:
    """A short threshold reads in seconds rather than '0 min'."""
    assert feed_state(950.0, now=1000.0, stale_after_s=10) == (False, "stale for 50 s")


def test_feed_rows_cover_every_source_in_order() -> None:
    """One row per source, missing sources shown as never seen with zero counts."""
    freshness = {"cad": {"event_time": 900.0, "seen": 990.0, "count": 12, "rejected": 2}}
    rows = feed_rows(freshness, {"cad": 3}, now=1000.0, stale_after_s=300)
    assert [row["source"] for row in rows] == list(SOURCES)
    assert rows[0] == {"source": "cad", "live": True, "state": "live", "event_time": 900.0,
                       "applied": 12, "rejected": 2, "duplicate": 3}
    assert rows[1] == {"source": "avl", "live": False, "state": "no events yet",
                       "event_time": None, "applied": 0, "rejected": 0, "duplicate": 0}


# --- keys -----------------------------------------------------------------------------------
def test_every_sign_in_key_shares_one_hash_tag() -> None:
    """Users, sessions, revocations and sign-in counters are under one tag (Redis Cluster:
    one Lua script may touch several of them)."""
    keys = Keys("p")
    names = [keys.users, keys.user("a"), keys.users_imported, keys.session("s"), keys.sessions,
             keys.session_owners, keys.session_revocations, keys.login_address("10.0.0.1"),
             keys.login_user("a"), keys.login_device("a", "d"), keys.login_hash_budget,
             keys.login_form_used("f")]
    assert all(name.startswith(f"p:{AUTH_TAG}:") for name in names)
    assert len(set(names)) == len(names)
    assert keys.login_address("10.0.0.1") != keys.login_address("10.0.0.2")


# --- trusted proxies ------------------------------------------------------------------------
PROXIES = TrustedProxies.parse(["127.0.0.1", "::1", "10.1.0.0/16"])


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("203.0.113.9", [], "203.0.113.9"),
    ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # not a proxy: header ignored
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # left part was forged
    ("127.0.0.1", ["198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # two proxies
    ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # two header lines
    ("127.0.0.1", ["not-an-address"], "127.0.0.1"),
    ("127.0.0.1", ["2001:db8::7"], "2001:db8::7"),
    ("127.0.0.1", ["10.1.0.5"], "10.1.0.5"),  # only proxies: the farthest one
    (None, ["198.51.100.1"], "unknown"),
])
def test_client_address_believes_forwarded_for_only_from_proxies(
        peer: str | None, forwarded: list[str], client: str) -> None:
    """X-Forwarded-For names the client only when a trusted proxy sent it, and only its
    hops from the right up to the first address that is not a proxy count."""
    assert PROXIES.client_address(peer, forwarded) == client


def test_https_is_believed_from_the_proxy_only() -> None:
    """X-Forwarded-Proto counts from a trusted proxy; a direct https request is https."""
    assert PROXIES.is_https("https", "203.0.113.9", None)
    assert PROXIES.is_https("http", "127.0.0.1", "https")
    assert not PROXIES.is_https("http", "203.0.113.9", "https")
    assert not PROXIES.is_https("http", "127.0.0.1", "http")


def test_a_bad_proxy_entry_names_the_setting() -> None:
    with pytest.raises(ValueError, match="DISPATCH_TRUSTED_PROXIES"):
        TrustedProxies.parse(["proxy.example"])


# --- headers --------------------------------------------------------------------------------
def test_policy_allows_only_this_site_the_push_service_and_tiles() -> None:
    """Scripts from here plus Dash's hashes; connections to push; images from the tile host;
    no framing, no plugins, no base tag."""
    policy = content_security_policy(["'sha256-abc'"], "wss://push.example:8765/live",
                                     "https://{s}.tile.example/{z}/{x}/{y}.png")
    directives = dict(part.split(" ", 1) for part in policy.split("; "))
    assert directives["script-src"] == "'self' 'sha256-abc'"
    assert directives["connect-src"] == "'self' wss://push.example:8765"
    assert "https://*.tile.example" in directives["img-src"]
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert "'unsafe-eval'" not in policy and "'unsafe-inline'" not in directives["script-src"]


@pytest.mark.parametrize(("url", "origin"), [
    ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "https://tile.openstreetmap.org"),
    ("ws://127.0.0.1:8765/live", "ws://127.0.0.1:8765"), (None, None), ("", None),
    ("tiles/{z}.png", None), ("https://{host}/x", None)])
def test_origin_of(url: str | None, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_security_headers_on_every_path() -> None:
    """Frame, sniff and referrer headers always; HSTS only over https; no-store except
    for static files."""
    page = security_headers("csp", https=False, path="/wall")
    assert page["X-Frame-Options"] == "DENY" and page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin" and page["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in page
    assert "Strict-Transport-Security" in security_headers("csp", https=True, path="/")
    assert "Cache-Control" not in security_headers("csp", False, "/assets/live.js")


# --- session rules --------------------------------------------------------------------------
def test_role_table_gives_each_role_its_value_or_the_default() -> None:
    table = sessions.RoleTable.parse("cso=30, sro=30,*=60")
    assert (table.of("cso"), table.of("sro"), table.of("admin")) == (30, 30, 60)
    assert str(table) == "cso=30,sro=30,*=60"
    assert sessions.RoleTable.parse(str(table)) == table


@pytest.mark.parametrize(("text", "message"), [
    ("cso=30", "default"), ("cso", "role=number"), ("cso=x,*=1", "role=number"),
    ("*=0", "role=number")])
def test_role_table_refuses_what_cannot_work(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sessions.RoleTable.parse(text)


def test_session_settings_refuse_unknown_roles() -> None:
    with pytest.raises(ValueError, match="unknown role 'chief'"):
        Settings.from_env({"DISPATCH_SESSION_IDLE_MINUTES": "chief=5,*=60"})


def test_deadline_is_the_sooner_of_idle_and_lifetime() -> None:
    assert sessions.deadline(100, 60, 1000) == 160
    assert sessions.deadline(990, 60, 1000) == 1000
    assert sessions.end_reason(100, 60, 1000) == "idle"
    assert sessions.end_reason(990, 60, 1000) == "lifetime"


def test_session_id_is_a_one_way_digest_of_the_cookie() -> None:
    """The public sid never equals (or reveals) the cookie secret."""
    sid = sessions.session_id("cookie-secret")
    assert len(sid) == 32 and "cookie" not in sid
    assert sid == sessions.session_id("cookie-secret") != sessions.session_id("other")


def test_revocation_round_trips_through_stream_fields() -> None:
    entry = sessions.Revocation("ab12", "cso-north", "signed_out")
    raw = {k.encode(): v.encode() for k, v in entry.fields().items()}
    assert sessions.Revocation.from_fields(raw) == entry
    with pytest.raises(ValueError, match="sid"):
        sessions.Revocation.from_fields({b"user": b"x"})


@pytest.mark.parametrize(("method", "path", "active"), [
    ("GET", "/wall", True), ("GET", "/", True), ("GET", "/queues", True),
    ("POST", "/auth/activity", True), ("POST", "/_dash-update-component", False),
    ("GET", "/auth/ws-token", False), ("GET", "/_dash-layout", False),
    ("GET", "/assets/live.js", False), ("GET", "/healthz", False),
    ("GET", "/_dash-component-suites/dash/x.js", False), ("POST", "/login", False)])
def test_only_a_person_keeps_a_session_active(method: str, path: str, active: bool) -> None:
    """Page loads and the activity ping move the idle deadline; a page's own refreshes
    (callbacks, token refreshes, assets) do not, so an unattended tablet goes idle."""
    assert counts_as_activity(method, path) is active


# --- device cookies and passwords -----------------------------------------------------------
def test_device_cookie_remembers_users_and_refuses_forgeries() -> None:
    """A browser's device cookie names the users who signed in on it, signed; a forged or
    foreign cookie names nobody."""
    first = limits.remember_device("s3cret", {}, "ana")
    devices = limits.read_devices("s3cret", first)
    assert list(devices) == ["ana"]
    both = limits.read_devices("s3cret", limits.remember_device("s3cret", devices, "bo"))
    assert both["ana"] == devices["ana"] and set(both) == {"ana", "bo"}
    assert limits.read_devices("other-secret", first) == {}
    assert limits.read_devices("s3cret", first[:-2] + "xx") == {}
    assert limits.read_devices("s3cret", None) == {}


def test_device_cookie_keeps_the_most_recent_users() -> None:
    devices: dict[str, str] = {}
    for number in range(limits.DEVICES_PER_BROWSER + 3):
        devices = limits.read_devices("k", limits.remember_device("k", devices, f"u{number}"))
    assert len(devices) == limits.DEVICES_PER_BROWSER and "u0" not in devices


def test_password_rules_and_hashes() -> None:
    """Short and huge passwords are refused; hashes are salted argon2id and verify."""
    with pytest.raises(ValueError, match="at least 8"):
        passwords.check_new_password("short")
    with pytest.raises(ValueError, match="at most"):
        passwords.check_new_password("x" * 2000)
    first, second = passwords.hash_password("correct horse"), passwords.hash_password(
        "correct horse")
    assert first.startswith("$argon2id$") and first != second
    assert passwords.verify(first, "correct horse")
    assert not passwords.verify(first, "correct horsf")
    assert not passwords.verify(None, "correct horse")


# --- callback shapes ------------------------------------------------------------------------
KNOWN = {"status-body.children": {}}


@pytest.mark.parametrize(("body", "problem"), [
    ({"output": "status-body.children", "inputs": [], "changedPropIds": []}, None),
    (None, "JSON object"), ([1], "JSON object"), ({"inputs": []}, "no such callback"),
    ({"output": "nope.children"}, "no such callback"), ({"output": 5}, "no such callback"),
    ({"output": "status-body.children", "inputs": "x"}, "inputs must be a list"),
    ({"output": "status-body.children", "inputs": [1]}, "inputs must be a list"),
    ({"output": "status-body.children", "state": {}}, "state must be a list"),
    ({"output": "status-body.children", "outputs": "x"}, "outputs must be"),
    ({"output": "status-body.children", "changedPropIds": [1]}, "changedPropIds"),
])
def test_malformed_callbacks_are_named(body: object, problem: str | None) -> None:
    """A callback body Dash cannot run is a 400 with a reason, not an exception in Dash."""
    found = callback_problem(body, KNOWN)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_passwords_are_hashed_on_low_priority_threads() -> None:
    """Hashes run on the hash threads at nice HASH_NICE, so a worker's pages and callbacks
    get the CPU first; the caller's own priority is untouched."""
    import os
    import threading

    def nice_here() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = nice_here()
    assert passwords._on_hash_threads(nice_here) == max(before, passwords.HASH_NICE)
    assert passwords.verify(passwords.hash_password("correct horse"), "correct horse")
    assert nice_here() == before
