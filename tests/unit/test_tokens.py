"""Websocket tokens and the push views (pure: no server)."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer

from streams.core.tokens import (
    ROLES,
    TokenClaims,
    TokenExpired,
    TokenInvalid,
    make_ws_token,
    sign_token,
    verify_token,
)

SECRET = "a-long-random-test-secret"
NOW = 1_750_000_000.0


def test_round_trip_keeps_user_role_and_district() -> None:
    """A fresh token verifies to exactly the claims it was made from."""
    token = make_ws_token(SECRET, "ana", "cso", "North", now=NOW)
    assert verify_token(SECRET, token, 300, now=NOW + 10) == TokenClaims("ana", "cso", "North")


def test_district_may_be_absent() -> None:
    """Roles without a district carry None."""
    token = make_ws_token(SECRET, "cmdr", "commander", now=NOW)
    assert verify_token(SECRET, token, 300, now=NOW).district is None


def test_token_is_the_documented_itsdangerous_format() -> None:
    """Any itsdangerous URLSafeTimedSerializer(secret, salt='ws') reads the payload."""
    token = make_ws_token(SECRET, "sup", "supervisor", sid="0123abcd")
    payload = URLSafeTimedSerializer(SECRET, salt="ws").loads(token, max_age=60)
    assert payload == {"user": "sup", "role": "supervisor", "district": None,
                       "sid": "0123abcd"}


def test_token_carries_the_session_id() -> None:
    """The sid a token was made with comes back from verification (push closes the socket
    when that session ends); a token without one verifies with sid None."""
    token = make_ws_token(SECRET, "ana", "cso", "North", now=NOW, sid="5f" * 16)
    assert verify_token(SECRET, token, 300, now=NOW).sid == "5f" * 16
    assert verify_token(SECRET, make_ws_token(SECRET, "ana", "cso", "North", now=NOW), 300,
                        now=NOW).sid is None


@pytest.mark.parametrize("sid", ["", 7, ["x"]])
def test_token_with_a_malformed_session_id_is_invalid(sid: object) -> None:
    """A signed payload whose sid is not text is refused."""
    from itsdangerous import URLSafeTimedSerializer as Serializer

    token = Serializer(SECRET, salt="ws").dumps({"user": "a", "role": "cso", "sid": sid})
    with pytest.raises(TokenInvalid, match="session id"):
        verify_token(SECRET, token, 300)


def test_token_at_its_max_age_is_still_valid() -> None:
    """A token exactly max_age seconds old verifies."""
    token = make_ws_token(SECRET, "ana", "sro", "South", now=NOW)
    assert verify_token(SECRET, token, 300, now=NOW + 300).user == "ana"


def test_expired_token_is_refused_as_expired() -> None:
    """A token older than its lifetime raises TokenExpired (the page fetches a new one)."""
    token = make_ws_token(SECRET, "ana", "cso", now=NOW)
    with pytest.raises(TokenExpired):
        verify_token(SECRET, token, 300, now=NOW + 301)


def test_token_signed_with_another_secret_is_invalid() -> None:
    """Another deployment's token is refused."""
    token = make_ws_token("another-secret", "ana", "admin", now=NOW)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token, 300, now=NOW)


def test_tampered_payload_is_invalid() -> None:
    """Changing one character of the payload breaks the signature."""
    token = make_ws_token(SECRET, "ana", "cso", now=NOW)
    flipped = ("B" if token[3] != "B" else "C")
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token[:3] + flipped + token[4:], 300, now=NOW)


def test_role_escalation_by_resigning_without_secret_is_invalid() -> None:
    """A token claiming admin, signed with a guessed key, is refused."""
    forged = URLSafeTimedSerializer("guess", salt="ws").dumps(
        {"user": "ana", "role": "admin", "district": None})
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, forged, 300)


def test_other_salt_is_invalid() -> None:
    """A session-cookie style signature (another salt) is not a websocket token."""
    other = URLSafeTimedSerializer(SECRET, salt="cookie-session").dumps(
        {"user": "ana", "role": "admin", "district": None})
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, other, 300)


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c"])
def test_missing_or_garbage_token_is_invalid(token: str | None) -> None:
    """No token or a non-token string is refused."""
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token, 300)


@pytest.mark.parametrize("payload", [
    ["ana"], {"role": "cso"}, {"user": "", "role": "cso"}, {"user": "ana", "role": "chief"},
    {"user": "ana", "role": "cso", "district": 3},
])
def test_signed_but_malformed_payload_is_invalid(payload: object) -> None:
    """Correctly signed payloads without a user, a known role or a text district are refused."""
    token = URLSafeTimedSerializer(SECRET, salt="ws").dumps(payload)
    with pytest.raises(TokenInvalid):
        verify_token(SECRET, token, 300)


def test_signing_refuses_unknown_role_and_empty_secret() -> None:
    """Tokens are never minted for a role nobody checks, or with no secret."""
    with pytest.raises(ValueError, match="unknown role"):
        sign_token(SECRET, TokenClaims("ana", "chief"))
    with pytest.raises(ValueError, match="empty secret"):
        make_ws_token("", "ana", "cso")


def test_roles_are_the_access_modules() -> None:
    """Token roles are the one list of roles in streams.core.access."""
    from streams.core import access

    assert ROLES is access.ROLES
