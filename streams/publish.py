"""Writing events onto their raw streams: the one way every producer publishes."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from streams.core.events import Event, encode_event, source_of
from streams.core.keys import EVENT_FIELD, RAW_STREAM_MAXLEN, Keys


async def publish(client: aioredis.Redis, keys: Keys, events: Iterable[Event]) -> int:
    """XADD each event to its source's stream in one pipeline; return how many."""
    count = 0
    async with client.pipeline(transaction=False) as pipe:
        for event in events:
            source = source_of(event)
            pipe.xadd(keys.raw_stream(source), {EVENT_FIELD: encode_event(event)},
                      maxlen=RAW_STREAM_MAXLEN[source], approximate=True)
            count += 1
        if count:
            await pipe.execute()
    return count


async def publish_raw(client: aioredis.Redis, keys: Keys, source: str, payload: bytes) -> str:
    """XADD bytes that may not be a valid event (webhooks, tests); the consumer judges."""
    entry_id = await client.xadd(keys.raw_stream(source), {EVENT_FIELD: payload},
                                 maxlen=RAW_STREAM_MAXLEN[source], approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
