"""Sockets follow their sessions (streams/state-contract.md, "Sessions").

A websocket token names its session (``sid``); a session is valid while its key
``Keys.session(sid)`` exists (the dashboard's contract). So:

- at the handshake the session must still exist, else the socket is refused (401);
- every entry of the revocation stream (``Keys.session_revocations``: signed out, ended by
  an admin, idle, past its lifetime, its user changed) closes that session's sockets at once
  with SESSION_ENDED;
- when a socket's token expires its session is checked again (and every token lifetime
  after that): a session that is gone closes its sockets the same way, even if no
  revocation was written (nobody swept the expired session yet).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable

import redis.asyncio as aioredis

from streams.connections import backoff_seconds
from streams.core.keys import Keys
from streams.core.sessions import Revocation
from streams.push.clients import Client
from streams.push.reader import xread_entries
from streams.push.syncs import entries_of

log = logging.getLogger(__name__)

SESSION_ENDED = 4401
"""Close code of a socket whose session ended: the page must sign in again (a new token
from the same session would be refused)."""
CHECK_SECONDS = 1.0
"""How often expired tokens are looked for (sessions are checked in one round trip)."""
READ_BLOCK_MS = 1000
ENDED_SECONDS = 60.0
"""How long an ended session is remembered, past any handshake still in flight."""
ENDED_KEPT = 1000
"""Ended sessions remembered before old ones are forgotten."""
REVOKED = "session_revoked"
"""Cause of a close read from the revocation stream (audit detail ``reason``)."""
EXPIRED = "session_expired"
"""Cause of a close whose session was gone when its token expired (idle, lifetime)."""


class SessionLookups:
    """Whether sessions exist, for every caller asking at about the same time in one
    pipeline of EXISTS, one pipeline in flight at a time (so one connection): a herd of
    handshakes costs a few round trips and never waits behind the herd's snapshot reads."""

    def __init__(self, redis: Callable[[], aioredis.Redis], keys: Keys) -> None:
        self._redis, self.keys = redis, keys
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.round_trips = 0

    async def exist(self, sids: Iterable[str]) -> dict[str, bool]:
        """sid -> whether its session exists; raises what Redis raised."""
        loop = asyncio.get_running_loop()
        futures = {sid: self._waiting.get(sid) or self._waiting.setdefault(
            sid, loop.create_future()) for sid in sids}
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="push-session-lookups")
        # shield: a caller that gives up (its handshake timed out) must not cancel the
        # answer other callers of the same sid wait for.
        return {sid: await asyncio.shield(future) for sid, future in futures.items()}

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            self.round_trips += 1
            try:
                async with self._redis().pipeline(transaction=False) as pipe:
                    for sid in batch:
                        pipe.exists(self.keys.session(sid))
                    found = await pipe.execute()
            except Exception as error:  # every caller of this batch gets it
                for future in batch.values():
                    if not future.done():
                        future.set_exception(error)
                        future.exception()  # retrieved here too: no warning if none waits
                continue
            for (_, future), exists in zip(batch.items(), found, strict=True):
                if not future.done():
                    future.set_result(bool(exists))


class SessionWatch:
    """Which sockets belong to which session, when each one's token expires, and the
    tasks that close them when their session ends."""

    def __init__(self, redis: Callable[[], aioredis.Redis],
                 stream_redis: Callable[[], aioredis.Redis], keys: Keys,
                 token_seconds: float, counters: Counter[str],
                 close: Callable[[Client, int, str, str], None]) -> None:
        self._stream_redis = stream_redis
        self.lookups = SessionLookups(redis, keys)
        self.keys, self.token_seconds, self.counters = keys, token_seconds, counters
        self._close = close
        self._by_sid: dict[str, set[Client]] = {}
        # Sessions ended lately (sid -> monotonic time, cause, why): a socket whose handshake
        # checked its session just before the revocation was read joins after it, and is
        # closed then.
        self._ended: dict[str, tuple[float, str, str]] = {}
        # Weak: a page that closed leaves nothing behind until its token would expire.
        self._due: list[tuple[float, int, weakref.ref[Client]]] = []
        self._order = itertools.count()
        self.last_id = "$"
        self.stop = asyncio.Event()
        """Set before the service closes the client: the revocation loop then ends."""

    # --- sockets ----------------------------------------------------------------------
    def add(self, client: Client, token_issued_at: float) -> None:
        """Follow ``client``'s session; check it again when its token expires."""
        sid = client.claims.sid
        if sid is None:
            return
        self._by_sid.setdefault(sid, set()).add(client)
        if sid in self._ended:
            _, cause, why = self._ended[sid]
            self._end(sid, cause, why)
            return
        expires = time.monotonic() + max(0.0, token_issued_at + self.token_seconds - time.time())
        self._schedule(client, expires)

    def _schedule(self, client: Client, at: float) -> None:
        heapq.heappush(self._due, (at, next(self._order), weakref.ref(client)))

    def remove(self, client: Client) -> None:
        sid = client.claims.sid
        if sid is not None and sid in self._by_sid:
            self._by_sid[sid].discard(client)
            if not self._by_sid[sid]:
                del self._by_sid[sid]

    async def valid(self, sid: str | None) -> bool:
        """True while the session exists (a token without one is never valid)."""
        if sid is None:
            return False
        return (await self.lookups.exist([sid]))[sid]

    async def start_reading(self) -> None:
        """Read revocations from the newest entry on (sessions ended earlier are caught
        at the handshake: their keys are gone)."""
        newest = entries_of(await self._stream_redis().xrevrange(
            self.keys.session_revocations, "+", "-", count=1))
        self.last_id = newest[0][0] if newest else "0-0"

    # --- the tasks ----------------------------------------------------------------------
    async def read_revocations(self) -> None:
        """Close a revoked session's sockets as soon as its entry is read."""
        failures = 0
        while not self.stop.is_set():
            try:
                reply = await self._stream_redis().xread(
                    {self.keys.session_revocations: self.last_id}, block=READ_BLOCK_MS)
            except Exception as error:  # an outage, or a refusal (ACL): never end the task
                if self.stop.is_set():
                    return
                failures += 1
                log.warning("reading session revocations failed (%s: %s); retry %d",
                            type(error).__name__, error, failures)
                await asyncio.sleep(backoff_seconds(failures, base=0.1, cap=2.0))
                continue
            failures = 0
            for entry_id, fields in xread_entries(reply):
                self.last_id = entry_id
                try:
                    revocation = Revocation.from_fields(dict(fields.items()))
                except ValueError as error:
                    log.warning("skipping revocation %s: %s", entry_id, error)
                    continue
                self.counters["revocations_read"] += 1
                self._end(revocation.sid, REVOKED, revocation.reason or "revoked")

    async def check_expired(self) -> None:
        """Every CHECK_SECONDS: the sessions of sockets whose token expired, in one round
        trip; gone ones are closed, the others checked again a token lifetime later."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            now = time.monotonic()
            due: list[Client] = []
            while self._due and self._due[0][0] <= now:
                client = heapq.heappop(self._due)[2]()
                if client is not None and client in self._by_sid.get(client.claims.sid or "",
                                                                      ()):
                    due.append(client)
            if due:
                await self._check(due, now)

    async def _check(self, due: list[Client], now: float) -> None:
        sids = sorted({client.claims.sid for client in due if client.claims.sid})
        try:
            alive = await self.lookups.exist(sids)
        except Exception as error:  # cannot tell: keep them, ask again next round
            log.warning("checking %d sessions failed (%s: %s)", len(sids),
                        type(error).__name__, error)
            for client in due:
                self._schedule(client, now + CHECK_SECONDS)
            return
        self.counters["session_checks"] += len(sids)
        for sid in sids:
            if not alive[sid]:
                self._end(sid, EXPIRED, "gone at its token's expiry")
        for client in due:
            if client.claims.sid and alive.get(client.claims.sid):
                self._schedule(client, now + self.token_seconds)

    def _end(self, sid: str, cause: str, why: str) -> None:
        """Close the session's sockets; ``cause`` is REVOKED or EXPIRED, ``why`` the
        revocation's reason (signed_out, ended_by_admin, idle, ...) or what the check saw."""
        now = time.monotonic()
        self._ended[sid] = (now, cause, why)
        if len(self._ended) > ENDED_KEPT:  # oldest first (insertion order)
            for old in [s for s, (at, _, _) in self._ended.items() if now - at > ENDED_SECONDS]:
                del self._ended[old]
        clients = self._by_sid.pop(sid, set())
        if clients:
            log.info("session %s… ended (%s: %s): closing %d sockets", sid[:8], cause, why,
                     len(clients))
        for client in clients:
            self.counters["closed_session_ended"] += 1
            self._close(client, SESSION_ENDED, cause, why)
