"""Async Redis connections with bounded, logged retries (arq's shape)."""

from __future__ import annotations

import asyncio
import logging
import random

import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    TimeoutError,
    TryAgainError,
)

log = logging.getLogger(__name__)

RETRYABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError, OutOfMemoryError,
             ReadOnlyError, TryAgainError, ClusterDownError)
"""Errors that mean 'Redis cannot serve us right now' (unreachable, loading, out of memory,
a replica during a failover), worth retrying: never a reason to give up on the data."""


def backoff_seconds(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Exponential backoff with full jitter for retry number ``attempt`` (0-based)."""
    return random.uniform(0, min(cap, base * 2**attempt))


POOL_WAIT_SECONDS = 30.0
"""How long a command waits for a free connection of a bounded pool before failing."""


async def connect(url: str, attempts: int = 30, pool_size: int | None = None,
                  ) -> aioredis.Redis:
    """Connect and PING, retrying with backoff; raise the last error after ``attempts``.

    With ``pool_size`` the client holds at most that many connections and a command that
    finds them all busy waits for one (up to POOL_WAIT_SECONDS) instead of failing; the
    default pool fails with "Too many connections" past 100.
    """
    for attempt in range(attempts):
        client = _client(url, pool_size)
        try:
            await client.ping()
            return client
        except RETRYABLE as error:
            await client.aclose()
            if attempt == attempts - 1:
                raise
            delay = backoff_seconds(attempt)
            log.warning("redis at %s not reachable (%s); retry %d in %.1fs",
                        url, error, attempt + 1, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _client(url: str, pool_size: int | None) -> aioredis.Redis:
    if pool_size is None:
        return aioredis.Redis.from_url(url, health_check_interval=15)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=POOL_WAIT_SECONDS, health_check_interval=15)
    return aioredis.Redis.from_pool(pool)
