"""Writing events onto their raw streams, and refusals onto the dead-letter stream: the one
way every producer publishes and every process dead-letters.

Each event goes to the raw stream of its entity's partition (``Keys.of_entity``), so every
event of one call, unit, alert or share is in one stream, in the order published."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from streams.core.events import Event, decode_event, encode_event, source_of
from streams.core.keys import (
    DEADLETTER_MAXLEN,
    EVENT_FIELD,
    HISTORY_FIELD,
    RAW_STREAM_MAXLEN,
    Keys,
)
from streams.core.livestate import entity_id_of
from streams.core.replies import reply_text


async def publish(client: aioredis.Redis, keys: Keys, events: Iterable[Event],
                  history: bool = False) -> int:
    """XADD each event to its source's stream in one pipeline; return how many.

    ``history`` marks events of a replay of old data, judged by the history window.
    """
    count = 0
    async with client.pipeline(transaction=False) as pipe:
        for event in events:
            source = source_of(event)
            fields: dict[str, bytes] = {EVENT_FIELD: encode_event(event)}
            if history:
                fields[HISTORY_FIELD] = b"1"
            stream = keys.of_entity(entity_id_of(event)).raw_stream(source)
            pipe.xadd(stream, fields,  # type: ignore[arg-type]
                      maxlen=RAW_STREAM_MAXLEN[source], approximate=True)
            count += 1
        if count:
            await pipe.execute()
    return count


async def publish_raw(client: aioredis.Redis, keys: Keys, source: str, payload: bytes) -> str:
    """XADD bytes that may not be a valid event (webhooks, tests); the consumer judges.
    Bytes that do not decode go to partition 0, whose consumer dead-letters them."""
    entry_id = await client.xadd(partition_of_payload(keys, payload).raw_stream(source),
                                 {EVENT_FIELD: payload},
                                 maxlen=RAW_STREAM_MAXLEN[source], approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def partition_of_payload(keys: Keys, payload: bytes) -> Keys:
    """The partition of the entity an event's bytes name (partition 0 if they name none)."""
    if keys.partitions == 1:
        return keys.partition(0)
    try:
        return keys.of_entity(entity_id_of(decode_event(payload)))
    except Exception:  # noqa: BLE001 - any bytes at all: the consumer gives the reason
        return keys.partition(0)


def queue_deadletter(pipe: Any, keys: Keys, entry: Mapping[str, bytes | str]) -> None:
    """Queue one dead letter (``deadletter_entry``) and its counts on ``pipe``."""
    queue_deadletters(pipe, keys, [entry])


def queue_deadletters(pipe: Any, keys: Keys,
                      entries: Sequence[Mapping[str, bytes | str]]) -> None:
    """Queue dead letters and their counts on ``pipe``, one count command per source and
    per code (a batch of junk costs one command per letter, not three)."""
    rejected: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for entry in entries:
        pipe.xadd(keys.deadletter, dict(entry), maxlen=DEADLETTER_MAXLEN, approximate=True)
        rejected[f"{reply_text(entry['source'])}:rejected"] += 1
        codes[reply_text(entry["code"])] += 1
    for name, amount in rejected.items():
        pipe.hincrby(keys.counts, name, amount)
    for code, amount in codes.items():
        pipe.hincrby(keys.rejected_codes, code, amount)


