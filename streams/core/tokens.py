"""Short-lived websocket tokens: the dashboard signs them, the push service verifies them.

A browser never sends its password or session cookie to the push port; the page embeds a
token (itsdangerous ``URLSafeTimedSerializer(secret, salt="ws")`` of
``{"user", "role", "district"}``) that expires after ``settings.ws_token_seconds``.
Signing and verifying are pure; ``secret_of`` is the one explicit loader (it may create the
secret file in the data dir when no ``DISPATCH_SECRET_KEY`` is set, so the dashboard and
the push service, started separately, agree on it).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from streams.core.settings import Settings

SALT: Final = "ws"
SECRET_FILE_NAME: Final = "secret_key"
"""File under the data dir holding the generated secret when none is configured."""

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


class HasIdentity(Protocol):
    """Anything with a name, role and district (``dashboard.runtime.User``)."""

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def district(self) -> str | None: ...


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


def load_or_create_secret(path: Path) -> str:
    """The secret stored at ``path``; creates it (mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            # link() never overwrites: when two processes start at once exactly one secret
            # wins, and the file is never seen half-written.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise ValueError(f"{path} is empty; delete it or set DISPATCH_SECRET_KEY")
    return secret


def secret_of(settings: Settings) -> str:
    """``DISPATCH_SECRET_KEY``, else the generated secret kept in the data dir."""
    if settings.secret_key:
        return settings.secret_key
    return load_or_create_secret(settings.data_dir / SECRET_FILE_NAME)


def make_ws_token(settings: Settings, user: HasIdentity, now: float | None = None) -> str:
    """A websocket token for a signed-in user (what ``/auth/ws-token`` returns)."""
    return sign_token(secret_of(settings), TokenClaims(user.name, user.role, user.district), now)


def verify_ws_token(settings: Settings, token: str | None, now: float | None = None,
                    ) -> TokenClaims:
    """Verify a token against this deployment's secret and ``ws_token_seconds``."""
    return verify_token(secret_of(settings), token, settings.ws_token_seconds, now)
