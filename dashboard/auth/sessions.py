"""Server-side sessions in Redis: the cookie carries only a random secret.

``Keys.session(sid)`` holds who is signed in; its TTL is the time the session has left (the
sooner of its idle deadline and its absolute lifetime, both per role from the settings), so a
session is valid exactly while the key exists -- a copied cookie dies with it. Every ending is
written to ``Keys.session_revocations`` (``streams.core.sessions.Revocation``) for the push
service; endings by expiry are found by ``sweep`` (each web worker runs it every few seconds
while it serves requests).

Only a person's activity extends the idle deadline (``load(..., active=True)``: sign-in,
page loads, the page's activity ping); a page's own refreshes only read the session.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from streams.core import sessions as rules
from streams.core.access import User
from streams.core.keys import SESSION_REVOCATIONS_MAXLEN, Keys
from streams.core.sessions import RoleTable

AGENT_CHARS = 200
"""User-Agent text kept with a session (for the admin's list of sessions)."""
SWEEP_SECONDS = 5.0
"""How often each web worker looks for sessions Redis has expired (to report them)."""

# KEYS: session, sessions index. ARGV: sid. Extends the idle deadline, never past ends_at.
TOUCH = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
local row = {}
for i = 1, #fields, 2 do row[fields[i]] = fields[i + 1] end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local deadline = math.min(now + tonumber(row['idle_s']), tonumber(row['ends_at']))
if deadline <= now then return false end
redis.call('HSET', KEYS[1], 'last_active', string.format('%.3f', now))
redis.call('PEXPIREAT', KEYS[1], math.floor(deadline * 1000))
redis.call('ZADD', KEYS[2], deadline, ARGV[1])
return fields
"""

# KEYS: session, sessions index, owners, revocations. ARGV: sid, reason, maxlen.
END = """
local owner = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('DEL', KEYS[1]) == 0 and not owner then return 0 end
local user = owner and string.match(owner, '^(%S+)') or ''
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*',
           'sid', ARGV[1], 'user', user, 'reason', ARGV[2])
return 1
"""

# KEYS: sessions index, owners, revocations. ARGV: key prefix of sessions, maxlen, limit.
# Reports each session whose deadline has passed and whose key Redis has expired.
SWEEP = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local ended = 0
for _, sid in ipairs(due) do
  if redis.call('EXISTS', ARGV[1] .. sid) == 0 then
    local owner = redis.call('HGET', KEYS[2], sid) or ''
    local user, ends_at, idle = string.match(owner, '^(%S+) (%S+) (%S+)')
    local reason = 'idle'
    if ends_at and tonumber(ends_at) <= now + 1 then reason = 'lifetime' end
    redis.call('ZREM', KEYS[1], sid)
    redis.call('HDEL', KEYS[2], sid)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
               'sid', sid, 'user', user or '', 'reason', reason)
    ended = ended + 1
  end
end
return ended
"""


@dataclass(frozen=True)
class Session:
    """One signed-in session as stored (times in epoch seconds)."""

    sid: str
    user: User
    via: str
    created: float
    last_active: float
    idle_s: float
    ends_at: float
    address: str
    agent: str
    csrf: str
    must_change: bool

    @property
    def deadline(self) -> float:
        return rules.deadline(self.last_active, self.idle_s, self.ends_at)

    @classmethod
    def from_hash(cls, sid: str, row: dict[str, str]) -> Session:
        return cls(sid, User(row["user"], row["role"], row.get("district") or None),
                   row.get("via", "password"), float(row["created"]),
                   float(row["last_active"]), float(row["idle_s"]), float(row["ends_at"]),
                   row.get("address", ""), row.get("agent", ""), row.get("csrf", ""),
                   row.get("must_change") == "1")


def _text(values: Iterable[Any]) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values]


def _row(found: Any) -> dict[str, str]:
    """A session hash as text, from HGETALL (a dict) or the touch script (a flat list)."""
    if isinstance(found, dict):
        return dict(zip(_text(found), _text(found.values()), strict=True))
    items = _text(found or [])
    return dict(zip(items[::2], items[1::2], strict=True))


class SessionStore:
    """Create, read, list and end sessions; shared by every web worker through Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, idle_minutes: RoleTable,
                 lifetime_hours: RoleTable) -> None:
        self.client = client
        self.keys = keys
        self.idle_minutes = idle_minutes
        self.lifetime_hours = lifetime_hours
        self._touch = client.register_script(TOUCH)
        self._end = client.register_script(END)
        self._sweep = client.register_script(SWEEP)
        self._last_sweep = 0.0

    def create(self, user: User, via: str, address: str, agent: str,
               must_change: bool = False) -> tuple[str, Session]:
        """A new session for ``user``; returns (cookie secret, session)."""
        secret = secrets.token_urlsafe(32)
        now = time.time()
        idle_s = self.idle_minutes.of(user.role) * 60
        ends_at = now + self.lifetime_hours.of(user.role) * 3600
        session = Session(rules.session_id(secret), user, via, now, now, idle_s, ends_at,
                          address, agent[:AGENT_CHARS], secrets.token_urlsafe(24), must_change)
        key = self.keys.session(session.sid)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=self._row(session))
            pipe.pexpireat(key, int(session.deadline * 1000))
            pipe.zadd(self.keys.sessions, {session.sid: session.deadline})
            pipe.hset(self.keys.session_owners, session.sid,
                      f"{user.name} {ends_at:.3f} {idle_s:g}")
            pipe.execute()
        return secret, session

    @staticmethod
    def _row(session: Session) -> dict[str, str]:
        return {"user": session.user.name, "role": session.user.role,
                "district": session.user.district or "", "via": session.via,
                "created": f"{session.created:.3f}", "last_active": f"{session.last_active:.3f}",
                "idle_s": f"{session.idle_s:g}", "ends_at": f"{session.ends_at:.3f}",
                "address": session.address, "agent": session.agent, "csrf": session.csrf,
                "must_change": "1" if session.must_change else "0"}

    def load(self, secret: str, active: bool) -> Session | None:
        """The session whose cookie carries ``secret``, if it is still valid; ``active``
        (a person did something) moves its idle deadline forward."""
        if not secret or len(secret) > 128:
            return None
        sid = rules.session_id(secret)
        key = self.keys.session(sid)
        found = self._touch(keys=[key, self.keys.sessions], args=[sid]) if active \
            else self.client.hgetall(key)
        row = _row(found)
        return Session.from_hash(sid, row) if row else None

    def get(self, sid: str) -> Session | None:
        """The session with public id ``sid`` (for the admin page), if valid."""
        row = _row(self.client.hgetall(self.keys.session(sid)))
        return Session.from_hash(sid, row) if row else None

    def end(self, sid: str, reason: str) -> bool:
        """End one session now and record why; False if it had already ended."""
        if reason not in rules.REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        ended = self._end(keys=[self.keys.session(sid), self.keys.sessions,
                                self.keys.session_owners, self.keys.session_revocations],
                          args=[sid, reason, SESSION_REVOCATIONS_MAXLEN])
        return bool(ended)

    def list(self, user: str | None = None) -> list[Session]:
        """Valid sessions (of ``user``, or everyone's), soonest deadline first."""
        sids = _text(self.client.zrange(self.keys.sessions, 0, -1))
        with self.client.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self.keys.session(sid))
            rows = pipe.execute()
        found = [Session.from_hash(sid, _row(row)) for sid, row in zip(sids, rows, strict=True)
                 if row]
        return [session for session in found if user is None or session.user.name == user]

    def end_user(self, name: str, reason: str, keep: str | None = None) -> int:
        """End every session of user ``name`` except ``keep``; how many ended."""
        return sum(self.end(session.sid, reason) for session in self.list(name)
                   if session.sid != keep)

    def set_must_change(self, sid: str, value: bool) -> None:
        """Mark whether this session must change its password before anything else."""
        key = self.keys.session(sid)
        # HSET only on an existing hash: a session that just ended must not come back.
        self.client.eval("if redis.call('EXISTS', KEYS[1]) == 1 then "
                         "redis.call('HSET', KEYS[1], 'must_change', ARGV[1]) end", 1, key,
                         "1" if value else "0")

    def maybe_sweep(self) -> None:
        """``sweep`` if this process has not done so for SWEEP_SECONDS (cheap to call on
        every request; two workers sweeping at once report each session once)."""
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = now
            self.sweep()

    def sweep(self, limit: int = 200) -> int:
        """Record every session that Redis has expired (idle or past its lifetime)."""
        return int(self._sweep(keys=[self.keys.sessions, self.keys.session_owners,
                                     self.keys.session_revocations],
                               args=[self.keys.session(""), SESSION_REVOCATIONS_MAXLEN,
                                     limit]))
