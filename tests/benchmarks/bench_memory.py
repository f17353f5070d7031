"""How much Redis memory a day, a month and a year of Hartford traffic take.

Publishes DAYS simulated days (seed 2014, about 500 calls and 100,000 events a day) into a
fresh embedded Redis, lets one real consumer process apply them, then measures bytes per
entry of every stream and the size of the live state, and projects a day, 30 days and 365
days under the caps in ``streams/core/keys.py``. Last line: JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from streams.connections import connect
from streams.core.geography import geography_from_settings
from streams.core.keys import (
    CHANGES_MAXLEN,
    CLOSED_MAXLEN,
    DEADLETTER_MAXLEN,
    RAW_STREAM_MAXLEN,
    SOURCES,
    Keys,
)
from streams.core.settings import Settings
from streams.core.simulation import Simulation
from streams.publish import publish
from streams.redis_server import EmbeddedRedis, free_port

DAYS = 3
START = datetime(2014, 6, 1, 4, 0, tzinfo=UTC)


async def publish_days(settings: Settings, days: int) -> dict[str, int]:
    client = await connect(settings.redis_url or "")
    keys = Keys(settings.key_prefix)
    simulation = Simulation(settings.sim_seed, START, geography_from_settings(settings),
                            settings.timezone)
    counts = dict.fromkeys(SOURCES, 0)
    batch = []
    for event in simulation.events_until(START.replace(day=START.day + days)):
        batch.append(event)
        if len(batch) == 2000:
            await publish(client, keys, batch)
            batch.clear()
    await publish(client, keys, batch)
    for source in SOURCES:
        counts[source] = await client.xlen(keys.raw_stream(source))
    await client.aclose()
    return counts


def drain(client: redis.Redis, keys: Keys, total: int) -> None:
    """Wait until the consumer group has acknowledged everything."""
    while True:
        lag = 0
        for source in SOURCES:
            for group in client.xinfo_groups(keys.raw_stream(source)):
                lag += int(group.get("pending", 0)) + int(group.get("lag") or 0)
        applied = sum(int(v) for k, v in client.hgetall(keys.counts).items()
                      if b":" not in k)
        if applied >= total * 0.99 and lag == 0:
            return
        time.sleep(1)


def stream_bytes_per_entry(client: redis.Redis, name: str) -> float:
    length = client.xlen(name)
    return (client.memory_usage(name, samples=0) or 0) / length if length else 0.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            EmbeddedRedis(Path(tmp), free_port(), appendonly=False) as server:
        settings = Settings(redis_url=server.url, data_dir=Path(tmp))
        keys = Keys(settings.key_prefix)
        counts = asyncio.run(publish_days(settings, DAYS))
        consumer = subprocess.Popen(
            [sys.executable, "-m", "streams", "consume", "--name", "bench"],
            env={"REDIS_URL": server.url, "PATH": "/usr/bin:/bin",
                 "DISPATCH_LOG_LEVEL": "WARNING"})
        client = redis.Redis.from_url(server.url)
        try:
            drain(client, keys, sum(counts.values()))
        finally:
            consumer.terminate()
            consumer.wait(30)
        per_day = {source: counts[source] / DAYS for source in SOURCES}
        entry = {source: stream_bytes_per_entry(client, keys.raw_stream(source))
                 for source in SOURCES}
        closed_entry = stream_bytes_per_entry(client, keys.closed)
        changes_entry = stream_bytes_per_entry(client, keys.changes)
        closed_per_day = client.xlen(keys.closed) / DAYS
        live_state = sum(client.memory_usage(name, samples=0) or 0 for name in (
            keys.calls, keys.calls_open, keys.units, keys.units_geo, keys.alerts,
            keys.alerts_active, keys.shares, keys.shares_active, keys.closed_ids,
            keys.calls_closed_index))
        changes_per_day = client.xlen(keys.changes) / DAYS

        def projected(days: int) -> float:
            raw = sum(min(per_day[s] * days, RAW_STREAM_MAXLEN[s]) * entry[s] for s in SOURCES)
            closed = min(closed_per_day * days, CLOSED_MAXLEN) * closed_entry
            changes = min(changes_per_day * days, CHANGES_MAXLEN) * changes_entry
            return raw + closed + changes + live_state

        used = int(client.info("memory")["used_memory"])
        client.close()
    figures = {
        "simulated_days": DAYS, "events_per_day": round(sum(per_day.values())),
        "calls_closed_per_day": round(closed_per_day),
        "bytes_per_entry": {**{s: round(entry[s]) for s in SOURCES},
                            "closed": round(closed_entry), "changes": round(changes_entry)},
        "live_state_mb": round(live_state / 1e6, 2), "redis_used_mb": round(used / 1e6, 1),
        "projected_mb": {"day": round(projected(1) / 1e6, 1),
                         "month": round(projected(30) / 1e6, 1),
                         "year": round(projected(365) / 1e6, 1)},
        "deadletter_cap_entries": DEADLETTER_MAXLEN,
    }
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
