"""Sign-in, SSO, the shared failure counter and the route guard, on real Redis."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import pytest
import redis

from dashboard import auth
from dashboard.app import create_app
from streams.core.keys import LOGIN_FAILURE_WINDOW_SECONDS, Keys
from streams.core.settings import Settings

PASSWORD = "test-password-1"


@pytest.fixture
def app_settings(settings: Settings, r: redis.Redis) -> Settings:
    """Test settings with a secret and one supervisor and one cso."""
    ready = dataclasses.replace(settings, secret_key="integration-secret")
    auth.add_user(ready.resolved_users_file, "sup", "supervisor", PASSWORD)
    auth.add_user(ready.resolved_users_file, "cso-n", "cso", PASSWORD, "North")
    return ready


def nonce_of(client: Any) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', client.get("/login").get_data(True))
    assert found
    return found.group(1)


def post_login(client: Any, name: str, password: str, target: str = "/") -> Any:
    return client.post("/login", data={"name": name, "password": password,
                                       "nonce": nonce_of(client), "next": target})


def test_limiter_counts_failures_in_redis_with_a_window(r: redis.Redis, keys: Keys) -> None:
    """Failures add up per user and address, expire with the window, and clear on success."""
    limiter = auth.LoginLimiter(r, keys, allowed_per_minute=3)
    assert [limiter.record_failure("sup", "10.0.0.1") for _ in range(3)] == [1, 2, 3]
    assert limiter.blocked("sup", "10.0.0.1")
    assert not limiter.blocked("sup", "10.0.0.2")
    assert not limiter.blocked("other", "10.0.0.1")
    ttl = r.ttl(keys.login_failures("sup", "10.0.0.1"))
    assert 0 < ttl <= LOGIN_FAILURE_WINDOW_SECONDS
    limiter.clear("sup", "10.0.0.1")
    assert limiter.failures("sup", "10.0.0.1") == 0


def test_two_limiters_share_one_count(r: redis.Redis, keys: Keys,
                                      redis_factory: Any) -> None:
    """Two web workers (two clients) see each other's failures."""
    first = auth.LoginLimiter(r, keys, 2)
    second = auth.LoginLimiter(redis_factory(), keys, 2)
    first.record_failure("sup", "10.0.0.1")
    second.record_failure("sup", "10.0.0.1")
    assert first.blocked("sup", "10.0.0.1") and second.blocked("sup", "10.0.0.1")


def test_sign_in_sets_a_safe_session_cookie(app_settings: Settings) -> None:
    """The right password redirects to next with an HttpOnly, SameSite=Lax session."""
    client = create_app(app_settings).server.test_client()
    reply = post_login(client, "sup", PASSWORD, "/response")
    assert reply.status_code == 302 and reply.headers["Location"] == "/response"
    cookie = next(c for c in reply.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/").status_code == 200
    assert client.get("/auth/ws-token").get_json()["token"]


def test_form_without_a_valid_nonce_is_refused(app_settings: Settings) -> None:
    """A sign-in posted without our signed nonce (another site's form) fails."""
    client = create_app(app_settings).server.test_client()
    reply = client.post("/login", data={"name": "sup", "password": PASSWORD, "nonce": "x"})
    assert reply.status_code == 400
    assert client.get("/").status_code == 302


def test_failed_sign_in_is_logged_without_the_password(app_settings: Settings, r: redis.Redis,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A wrong password answers 401, counts a failure and logs user and address only."""
    client = create_app(app_settings).server.test_client()
    with caplog.at_level(logging.WARNING, logger="dashboard.auth"):
        reply = post_login(client, "sup", "guessed-password")
    assert reply.status_code == 401
    assert "Wrong user name or password." in reply.get_data(True)
    warning = next(rec for rec in caplog.records if rec.levelno == logging.WARNING)
    assert "'sup'" in warning.getMessage() and "127.0.0.1" in warning.getMessage()
    assert "guessed-password" not in caplog.text
    assert r.get(Keys(app_settings.key_prefix).login_failures("sup", "127.0.0.1")) == b"1"


def test_rate_limit_refuses_even_the_right_password(app_settings: Settings) -> None:
    """After the allowed failures the next attempt answers 429."""
    client = create_app(app_settings).server.test_client()
    for _ in range(app_settings.login_attempts_per_minute):
        assert post_login(client, "sup", "wrong-password").status_code == 401
    reply = post_login(client, "sup", PASSWORD)
    assert reply.status_code == 429
    assert "Too many failed sign-ins" in reply.get_data(True)


def test_sso_header_is_trusted_only_from_the_proxy(app_settings: Settings) -> None:
    """SSO headers sign in requests from a trusted proxy address and nobody else."""
    sso = dataclasses.replace(app_settings, sso_user_header="X-Remote-User",
                              sso_trusted_proxies=("127.0.0.1",))
    server = create_app(sso).server
    headers = {"X-Remote-User": "jdoe", "X-Dispatch-Role": "cso",
               "X-Dispatch-District": "North"}
    trusted = server.test_client()
    assert trusted.get("/", headers=headers).status_code == 200
    assert trusted.get("/auth/ws-token", headers=headers).status_code == 200
    spoofed = server.test_client()
    reply = spoofed.get("/", headers=headers, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert reply.status_code == 302
    bad_role = server.test_client()
    assert bad_role.get("/", headers={**headers, "X-Dispatch-Role": "chief"}).status_code == 302


def test_sso_session_ends_when_the_proxy_stops_vouching(app_settings: Settings) -> None:
    """A session that came from SSO headers ends on a request without them."""
    sso = dataclasses.replace(app_settings, sso_user_header="X-Remote-User")
    client = create_app(sso).server.test_client()
    headers = {"X-Remote-User": "boss", "X-Dispatch-Role": "supervisor"}
    assert client.get("/", headers=headers).status_code == 200
    assert client.get("/").status_code == 302


def test_healthz_is_open_and_checks_redis(app_settings: Settings) -> None:
    """/healthz needs no session and answers ok while Redis answers."""
    client = create_app(app_settings).server.test_client()
    reply = client.get("/healthz")
    assert (reply.status_code, reply.get_data(True)) == (200, "ok")


def test_app_refuses_to_start_without_a_secret(settings: Settings) -> None:
    """create_app without DISPATCH_SECRET_KEY stops with a sentence naming it."""
    with pytest.raises(RuntimeError, match="DISPATCH_SECRET_KEY"):
        create_app(dataclasses.replace(settings, secret_key=None))
