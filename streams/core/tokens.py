"""Short-lived websocket tokens: the dashboard signs them, the push service verifies them.

A browser never sends its password or session cookie to the push port; the page embeds a
token (itsdangerous ``URLSafeTimedSerializer(secret, salt="ws")`` of
``{"user", "role", "district"}``) that expires after ``settings.ws_token_seconds``.
Pure: the caller passes the secret (``settings.secret_key``, which the launcher gives every
child process, so web workers and push services agree on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

SALT: Final = "ws"
ROLES: Final = ("commander", "cso", "sro", "supervisor", "admin")
"""Roles a token may carry (the same tuple as ``dashboard.runtime.ROLES``)."""


class TokenError(ValueError):
    """A token that must be refused; ``reason`` is logged, never shown in detail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenExpired(TokenError):
    """A correctly signed token older than its lifetime: the page should fetch a new one."""


class TokenInvalid(TokenError):
    """A missing, tampered or malformed token."""


@dataclass(frozen=True)
class TokenClaims:
    """Who a websocket connection belongs to."""

    user: str
    role: str
    district: str | None = None


def _serializer(secret: str, now: float | None) -> URLSafeTimedSerializer:
    if now is None:
        return URLSafeTimedSerializer(secret, salt=SALT)
    fixed = int(now)

    # A signer whose clock is ``now``: lets tests (and callers) sign or verify at a given time.
    class _SignerAt(TimestampSigner):
        def get_timestamp(self) -> int:
            return fixed

    return URLSafeTimedSerializer(secret, salt=SALT, signer=_SignerAt)


def sign_token(secret: str, claims: TokenClaims, now: float | None = None) -> str:
    """A URL-safe token for ``claims``, timestamped ``now`` (default: the current time)."""
    if not secret:
        raise ValueError("cannot sign a websocket token with an empty secret key")
    if claims.role not in ROLES:
        raise ValueError(f"unknown role {claims.role!r}; expected one of {', '.join(ROLES)}")
    payload = {"user": claims.user, "role": claims.role, "district": claims.district}
    return str(_serializer(secret, now).dumps(payload))


def verify_token(secret: str, token: str | None, max_age_s: int,
                 now: float | None = None) -> TokenClaims:
    """The claims of a valid token; TokenExpired or TokenInvalid otherwise."""
    if not token:
        raise TokenInvalid("no token given")
    try:
        payload = _serializer(secret, now).loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise TokenExpired(f"token older than {max_age_s} s") from None
    except BadSignature:
        raise TokenInvalid("bad token signature") from None
    return _claims_from(payload)


def _claims_from(payload: Any) -> TokenClaims:
    if not isinstance(payload, dict):
        raise TokenInvalid("token payload is not an object")
    user, role, district = payload.get("user"), payload.get("role"), payload.get("district")
    if not isinstance(user, str) or not user:
        raise TokenInvalid("token has no user")
    if role not in ROLES:
        raise TokenInvalid(f"token role {role!r} is unknown")
    if district is not None and not isinstance(district, str):
        raise TokenInvalid("token district is not text")
    return TokenClaims(user, str(role), district)


def make_ws_token(secret: str, user: str, role: str, district: str | None = None,
                  now: float | None = None) -> str:
    """A websocket token for a signed-in user (what ``/auth/ws-token`` returns)."""
    return sign_token(secret, TokenClaims(user, role, district), now)
