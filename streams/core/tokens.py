"""Short-lived websocket tokens: the dashboard signs them, the push service verifies them.

A browser never sends its password or session cookie to the push port; the page embeds a
token (itsdangerous ``URLSafeTimedSerializer(secret, salt="ws")`` of
``{"user", "role", "district", "sid"}``) that expires after ``settings.ws_token_seconds``.
``sid`` is the public id of the session the token was made for (``streams.core.sessions``):
the push service closes the socket when that session ends (``Keys.session_revocations``) and
re-checks ``Keys.session(sid)`` when the token expires. Tokens are signed, not encrypted, so
they carry nothing secret (the sid cannot be turned back into a session cookie).
Pure: the caller passes the secret (``settings.secret_key``, which the launcher gives every
child process, so web workers and push services agree on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from streams.core.access import ROLES

SALT: Final = "ws"


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
    sid: str | None = None
    """The session the token belongs to (None only in tokens made before sessions had ids)."""


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
    payload = {"user": claims.user, "role": claims.role, "district": claims.district,
               "sid": claims.sid}
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


def token_issued_at(secret: str, token: str) -> float:
    """When a (verified) token was signed, in epoch seconds: the push service checks the
    token's session again when the token expires."""
    _, signed = URLSafeTimedSerializer(secret, salt=SALT).loads(token, return_timestamp=True)
    return float(signed.timestamp())


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
    sid = payload.get("sid")
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise TokenInvalid("token session id is not text")
    return TokenClaims(user, str(role), district, sid)


def make_ws_token(secret: str, user: str, role: str, district: str | None = None,
                  now: float | None = None, sid: str | None = None) -> str:
    """A websocket token for a signed-in user in session ``sid`` (what ``/auth/ws-token``
    returns)."""
    return sign_token(secret, TokenClaims(user, role, district, sid), now)
