"""The deployment's partition count in Redis (``Keys.partition_count``): the first consumer
records it, and every process that routes events to partitions or reads them refuses to
run with another, naming both (entities would otherwise change partition while their
state stays behind: ``streams.core.partitions``).

A deployment that already holds data from before the key existed was built with one
partition, so that is what gets recorded for it.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from streams.core.keys import Keys
from streams.core.partitions import count_mismatch


class PartitionCountMismatch(RuntimeError):
    """DISPATCH_PARTITIONS differs from the count the deployment's data was built with."""


def _live_state_keys(keys: Keys) -> list[str]:
    """Partition 0's live state, which only a consumer writes: present once one ran.
    (Not the raw streams: publishers write them before any consumer runs, routed by the
    count they were given, which the consumer then checks.)"""
    return [keys.calls, keys.units, keys.alerts, keys.shares]


async def record_partition_count(client: aioredis.Redis, keys: Keys) -> None:
    """Record the count on a deployment's first start (1 if it holds older data); raise
    PartitionCountMismatch when the recorded count is not ``keys.partitions``."""
    if not await client.exists(keys.partition_count):
        older = [await client.exists(key) for key in _live_state_keys(keys)]
        await client.set(keys.partition_count, 1 if any(older) else keys.partitions, nx=True)
    await check_partition_count(client, keys)


async def check_partition_count(client: aioredis.Redis, keys: Keys) -> None:
    """Raise PartitionCountMismatch when a recorded count is not ``keys.partitions``
    (nothing recorded yet: no consumer has run, so nothing to disagree with)."""
    problem = count_mismatch(await client.get(keys.partition_count), keys)
    if problem:
        raise PartitionCountMismatch(problem)


def check_partition_count_sync(client: redis.Redis, keys: Keys) -> None:
    """``check_partition_count`` for a synchronous client."""
    problem = count_mismatch(client.get(keys.partition_count), keys)
    if problem:
        raise PartitionCountMismatch(problem)
