"""What a signed-in session is, as plain data: lifetimes per role, deadlines, revocations.

The dashboard keeps each session in Redis (``Keys.session(sid)``, a hash) with a TTL equal
to the time it has left, so a session is valid exactly while its key exists (the contract
with the push service). The browser's cookie carries a random secret; ``sid`` is a digest
of it, so the id that websocket tokens, logs, revocations and the admin page show cannot
be turned back into a working cookie.

Every session that ends (signed out, ended by an admin, idle, past its lifetime, its user
disabled or changed) is appended to ``Keys.session_revocations`` as ``Revocation.fields()``;
the push service closes that session's sockets when it reads the entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

REASONS: Final = ("signed_out", "ended_by_admin", "idle", "lifetime", "user_changed",
                  "password_changed")
"""Why a session ended, as written to the revocation stream."""
ANY_ROLE: Final = "*"


@dataclass(frozen=True)
class RoleTable:
    """A number per role with a default (``"cso=30,sro=30,*=60"``), for session lifetimes."""

    pairs: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> RoleTable:
        """Read ``role=number`` pairs separated by commas; ``*`` is every other role."""
        pairs = []
        for part in (piece.strip() for piece in text.split(",")):
            if not part:
                continue
            role, equals, number = part.partition("=")
            try:
                value = float(number)
            except ValueError:
                value = -1.0
            if not equals or not role.strip() or value <= 0:
                raise ValueError(f"expected role=number pairs such as 'cso=30,*=60', "
                                 f"got {part!r}")
            pairs.append((role.strip(), value))
        if ANY_ROLE not in dict(pairs):
            raise ValueError(f"give a default for every other role ('*=...') in {text!r}")
        return cls(tuple(pairs))

    def of(self, role: str) -> float:
        """The value for ``role``, else the ``*`` default."""
        table = dict(self.pairs)
        return table.get(role, table[ANY_ROLE])

    def roles(self) -> list[str]:
        return [role for role, _ in self.pairs if role != ANY_ROLE]

    def __str__(self) -> str:
        return ",".join(f"{role}={value:g}" for role, value in self.pairs)


def session_id(secret: str) -> str:
    """The public id of the session whose cookie carries ``secret`` (128 bits, hex)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def deadline(last_active: float, idle_seconds: float, ends_at: float) -> float:
    """When a session ends if nobody uses it: idle timeout or end of lifetime, sooner."""
    return min(last_active + idle_seconds, ends_at)


def end_reason(last_active: float, idle_seconds: float, ends_at: float) -> str:
    """'lifetime' when the absolute lifetime ends the session first, else 'idle'."""
    return "lifetime" if ends_at <= last_active + idle_seconds else "idle"


@dataclass(frozen=True)
class Revocation:
    """One entry of the revocation stream: this session has ended, close its sockets."""

    sid: str
    user: str
    reason: str

    def fields(self) -> dict[str, str]:
        return {"sid": self.sid, "user": self.user, "reason": self.reason}

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str]) -> Revocation:
        """Decode a stream entry (bytes or str); ValueError when ``sid`` is missing."""
        text = {(k.decode() if isinstance(k, bytes) else k):
                (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}
        if not text.get("sid"):
            raise ValueError("revocation entry without a sid")
        return cls(text["sid"], text.get("user", ""), text.get("reason", ""))
