"""The audit trail from the asyncio side (the push service records socket connections).

Same entries as the web side (``streams.core.audit`` builds them), same stream, same age
cap. ``record`` raises when Redis is unreachable, like every other write of the caller.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from streams.core import audit as rules
from streams.core.audit import Actor
from streams.core.keys import Keys


class AuditWriter:
    """Append audit entries to one Redis from asyncio code."""

    def __init__(self, client: aioredis.Redis, keys: Keys, max_age_s: float) -> None:
        self.client = client
        self.keys = keys
        self.max_age_s = max_age_s

    async def record(self, action: str, actor: Actor, /, call_id: str | None = None,
                     **detail: Any) -> str:
        """Record that ``actor`` did ``action`` (on ``call_id``); returns the entry's id."""
        return (await self.append_all([rules.entry(action, actor, call_id, detail)]))[0]

    async def append_all(self, entries: Sequence[Mapping[str, str]]) -> list[str]:
        """Append entries built by ``streams.core.audit.entry`` in one round trip (one XADD
        each, pipelined); returns their ids."""
        minid = rules.trim_min_id(time.time(), self.max_age_s)
        async with self.client.pipeline(transaction=False) as pipe:
            for fields in entries:
                pipe.xadd(self.keys.audit, fields,  # type: ignore[arg-type]
                          minid=minid, approximate=False)
            found = await pipe.execute()
        return [entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                for entry_id in found]
