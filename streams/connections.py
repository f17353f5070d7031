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

from streams.clients import async_client, ping
from streams.core.settings import redacted

log = logging.getLogger(__name__)

RETRYABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError, OutOfMemoryError,
             ReadOnlyError, TryAgainError, ClusterDownError)
"""Errors that mean 'Redis cannot serve us right now' (unreachable, loading, out of memory,
a replica during a failover), worth retrying: never a reason to give up on the data."""


def backoff_seconds(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Exponential backoff with full jitter for retry number ``attempt`` (0-based)."""
    return random.uniform(0, min(cap, base * 2**attempt))


async def connect(url: str, attempts: int = 30) -> aioredis.Redis:
    """Connect and PING, retrying with backoff; raise the last error after ``attempts``."""
    for attempt in range(attempts):
        client = async_client(url, health_check_interval=15)
        try:
            await ping(client)
            return client
        except RETRYABLE as error:
            await client.aclose()
            if attempt == attempts - 1:
                raise
            delay = backoff_seconds(attempt)
            log.warning("redis at %s not reachable (%s); retry %d in %.1fs",
                        redacted(url), error, attempt + 1, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
