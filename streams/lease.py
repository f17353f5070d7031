"""One holder at a time per partition: a lease key in Redis (``Keys.lease``).

Taken with SET NX PX, renewed by its holder every third of its TTL with a compare-and-renew
script, and released (compare-and-delete) on a clean shutdown, so a standby takes over at
once; a holder that dies or stalls past the TTL loses it to the first standby that polls.
The lease's value is the holder's name and a random suffix, so two processes given the same
name still hold different leases.

The local clock only decides when to renew and when to give up; what makes a stale holder
harmless is the fence: every write that needs the lease checks the key's value under WATCH
inside its MULTI/EXEC (``check``), and reads check it in the same script (the consumer's
``LEASED_READ``), so a holder paused past its TTL can neither commit nor take entries.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from streams.core.keys import lease_value
from streams.core.replies import reply_text

RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """The lease is no longer this holder's: stop applying before the next batch."""


class Lease:
    """This process's claim on one lease key; ``valid_until`` is on the monotonic clock."""

    def __init__(self, key: str, owner: str, ttl_ms: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.token = lease_value(owner, secrets.token_hex(4))
        self.ttl_ms = ttl_ms
        self.clock = clock
        self.valid_until = 0.0

    @property
    def renew_every(self) -> float:
        """Seconds between renewals, and between a standby's attempts to acquire."""
        return self.ttl_ms / 3000

    def held(self) -> bool:
        """True while the last acquire or renewal, timed from when it was sent, lasts."""
        return self.clock() < self.valid_until

    def due(self) -> bool:
        """True once a renewal is more than ``renew_every`` old (a third of the TTL)."""
        return self.clock() >= self.valid_until - self.ttl_ms / 1000 + self.renew_every

    async def acquire(self, client: aioredis.Redis) -> bool:
        """Take the lease if nobody holds it (SET NX PX)."""
        sent = self.clock()
        taken = await client.set(self.key, self.token, nx=True, px=self.ttl_ms)
        self.renewed(sent, bool(taken))
        return bool(taken)

    async def keep(self, client: aioredis.Redis) -> None:
        """Renew when due; raise LeaseLost if the lease lapsed or is someone else's."""
        if not self.held():
            raise LeaseLost(f"lease {self.key} lapsed before it could be renewed")
        if self.due():
            sent = self.clock()
            renewed = await client.eval(RENEW, 1, self.key, self.token, self.ttl_ms)
            self.renewed(sent, bool(renewed))
            if not renewed:
                raise LeaseLost(f"lease {self.key} was taken over")

    async def check(self, pipe: Any) -> None:
        """Inside a WATCHing pipeline (the lease key among the watched keys): raise
        LeaseLost unless the lease is still ours, so the EXEC after it commits only if no
        one took the lease since."""
        value = await pipe.get(self.key)
        if value is None or reply_text(value) != self.token:
            self.valid_until = 0.0
            raise LeaseLost(f"lease {self.key} is no longer ours")

    async def release(self, client: aioredis.Redis) -> None:
        """Give the lease up (only if still ours), so a standby takes it at its next poll."""
        self.valid_until = 0.0
        await client.eval(RELEASE, 1, self.key, self.token)

    async def holder(self, client: aioredis.Redis) -> str | None:
        """Who holds the lease now (its value), for logs."""
        value = await client.get(self.key)
        return None if value is None else reply_text(value)

    def renewed(self, sent: float, ok: bool) -> None:
        """Record an acquire or renewal sent at ``sent`` (monotonic) and its answer."""
        self.valid_until = sent + self.ttl_ms / 1000 if ok else 0.0
