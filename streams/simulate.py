"""`python -m streams simulate`: the simulated Hartford feeds, paced by the wall clock.

The simulation itself is pure (``streams.core.simulation``); this module only maps its
clock onto real time (``speed`` simulated seconds per real second), publishes what falls
due in small pipelined batches, and survives Redis going away: a failed batch is kept
and published again after reconnecting, which is safe because consumers drop events
whose ids they have already applied.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from streams.connections import RETRYABLE, connect
from streams.core.events import Event, source_of
from streams.core.geography import geography_from_settings
from streams.core.keys import HEALTH_TTL_SECONDS, Keys
from streams.core.settings import Settings
from streams.core.simulation import Simulation
from streams.partition_count import check_partition_count
from streams.publish import publish

log = logging.getLogger(__name__)

BATCH = 500
"""Events per pipelined XADD round trip."""
TICK_SECONDS = 0.25
"""How often the real-time loop wakes to publish what has fallen due."""
REPORT_SECONDS = 60.0
"""How often counters are logged while running."""
HEARTBEAT_SECONDS = 5.0


class Publisher:
    """Publishes batches, reconnecting (with connect's backoff) when Redis fails."""

    def __init__(self, url: str, keys: Keys) -> None:
        self.url = url
        self.keys = keys
        self.client: aioredis.Redis | None = None
        self.counts: Counter[str] = Counter()
        self.reconnects = 0
        self._last_heartbeat = 0.0

    async def send(self, events: list[Event], stop: asyncio.Event) -> bool:
        """Publish ``events``; retry across reconnects until done or ``stop`` is set."""
        while not stop.is_set():
            try:
                if self.client is None:
                    self.client = await connect(self.url)
                    await check_partition_count(self.client, self.keys)
                await publish(self.client, self.keys, events)
                break
            except RETRYABLE as error:
                log.warning("publishing %d events failed (%s); reconnecting", len(events), error)
                self.reconnects += 1
                await self.close()
                await asyncio.sleep(0.5)
        else:
            return False
        self.counts.update(source_of(event) for event in events)
        return True

    async def heartbeat(self, sim_time: datetime) -> None:
        """Keep a health key with counters, so `make run` and operators can see us alive."""
        if self.client is None or time.monotonic() - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        self._last_heartbeat = time.monotonic()
        body = json.dumps({"sim_time": sim_time.isoformat(), "published": dict(self.counts),
                           "reconnects": self.reconnects, "seen": time.time()})
        try:
            await self.client.set(self.keys.health("simulator"), body, ex=HEALTH_TTL_SECONDS)
        except RETRYABLE as error:
            log.warning("heartbeat failed (%s)", error)

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.aclose()
            except RETRYABLE:
                pass
            self.client = None


def batches(events: Iterator[Event], size: int = BATCH) -> Iterator[list[Event]]:
    """Consecutive lists of at most ``size`` events."""
    while batch := list(itertools.islice(events, size)):
        yield batch


async def publish_until(sim: Simulation, until: datetime, publisher: Publisher,
                        stop: asyncio.Event) -> int:
    """Publish every event due by ``until``; return how many were published."""
    published = 0
    for batch in batches(sim.events_until(until)):
        if not await publisher.send(batch, stop):
            break
        published += len(batch)
        await asyncio.sleep(0)  # let signal handlers and the heartbeat run during warm-up
    return published


async def run_simulation(settings: Settings, seed: int, speed: float, stop: asyncio.Event,
                         start: datetime | None = None, warmup_hours: float = 0.0) -> None:
    """Run the simulation against the wall clock until ``stop`` is set.

    The simulated clock starts at ``start`` (default: now minus ``warmup_hours``); the
    first ``warmup_hours`` are published as fast as Redis takes them, so the dashboard
    has history at once, then ``speed`` simulated seconds pass per real second until the
    simulated clock reaches the wall clock, which it then follows.
    """
    if speed <= 0:
        raise ValueError("the simulation speed must be above 0 simulated seconds per second")
    geography = geography_from_settings(settings)
    sim_start = start or datetime.now(UTC) - timedelta(hours=warmup_hours)
    sim = Simulation(seed, sim_start, geography, settings.timezone)
    publisher = Publisher(settings.redis_address, settings.keys)
    anchor_sim = sim_start + timedelta(hours=warmup_hours)
    log.info("simulating Hartford from %s (seed %d, speed %gx, warm-up %gh)",
             sim_start.isoformat(), seed, speed, warmup_hours)
    try:
        warm = await publish_until(sim, anchor_sim, publisher, stop)
        if warm:
            log.info("warm-up published %d events up to %s", warm, anchor_sim.isoformat())
        await _run_paced(sim, anchor_sim, speed, publisher, stop)
    finally:
        log.info("simulator stopped: published %s, reconnects %d",
                 dict(publisher.counts), publisher.reconnects)
        await publisher.close()


async def _run_paced(sim: Simulation, anchor_sim: datetime, speed: float,
                     publisher: Publisher, stop: asyncio.Event) -> None:
    anchor_real = time.monotonic()
    last_report = anchor_real
    while not stop.is_set():
        elapsed = time.monotonic() - anchor_real
        # Never ahead of the wall clock: the consumer refuses events from the future, so a
        # speed above 1 fast-forwards a simulation that started in the past until it is now.
        sim_now = min(anchor_sim + timedelta(seconds=elapsed * speed), datetime.now(UTC))
        await publish_until(sim, sim_now, publisher, stop)
        await publisher.heartbeat(sim_now)
        if time.monotonic() - last_report >= REPORT_SECONDS:
            last_report = time.monotonic()
            log.info("simulated time %s; published %s", sim_now.isoformat(),
                     dict(publisher.counts))
        try:
            await asyncio.wait_for(stop.wait(), TICK_SECONDS)
        except TimeoutError:
            pass
