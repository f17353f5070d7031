"""Push's watch on the partitions' leases: every page hears which partitions no consumer
is applying (``streams.core.applying``), at once when that changes and on connecting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from streams.connections import RETRYABLE
from streams.core.applying import Unapplied, applying_message
from streams.core.keys import Keys

WATCH_SECONDS = 1.0
"""How often the leases are read (one GET each)."""


class ApplyingWatch:
    """Reads every partition's lease each WATCH_SECONDS; ``on_change`` gets the new
    message (JSON text) when the unapplied partitions change."""

    def __init__(self, redis: Callable[[], aioredis.Redis], keys: Keys, lease_ms: int,
                 on_change: Callable[[str], None]) -> None:
        self._redis = redis
        self.keys = keys
        self.state = Unapplied(grace_s=lease_ms / 1000)
        self.on_change = on_change
        self.stop = asyncio.Event()
        self.consumer_ran = False
        self.message = self._encode()

    def _encode(self) -> str:
        return json.dumps(applying_message(self.keys.partitions, self.state))

    @property
    def any_unapplied(self) -> bool:
        return bool(self.state.reported)

    async def read(self) -> None:
        """One reading of every lease (one EXISTS each: their keys are in different slots
        on a cluster). Before any consumer ever ran (no partition count recorded) there is
        nothing a consumer stopped applying: the pages' feeds say "never" already."""
        redis = self._redis()
        # The count, once recorded, is never removed: ask until it is there, then no more.
        self.consumer_ran = self.consumer_ran or bool(
            await redis.exists(self.keys.partition_count))
        if not self.consumer_ran:
            held = [True] * self.keys.partitions
        else:
            held = [await redis.exists(part.lease()) == 1
                    for part in self.keys.every_partition]
        if self.state.observe(held, time.time()):
            self.message = self._encode()
            self.on_change(self.message)

    async def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(*RETRYABLE):  # Redis away: the reader says so already
                await self.read()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=WATCH_SECONDS)
