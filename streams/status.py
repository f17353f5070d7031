"""`python -m streams status [--json]`: an operator's view of the Redis it is pointed at.

Reads every partition's live-state counts, dead letters, feed counters and freshness,
lease and raw streams' consumer group (each partition in pipelines of its own keys: one
slot on a cluster), the processes' heartbeats and the running consumers, and prints
``streams.core.status``'s report (the rules live there). Exit 0 when Redis answered, 2 with
one line on stderr when it cannot be reached or refuses the credentials.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    ResponseError,
)

from streams.clients import async_client
from streams.connections import RETRYABLE
from streams.core import feedhealth
from streams.core import status as report
from streams.core.keys import ALERT_ACTIVE_SECONDS, CONSUMER_GROUP, SOURCES, Keys
from streams.core.settings import Settings, redacted

UNREACHABLE = (*RETRYABLE, AuthenticationWrongNumberOfArgsError, NoPermissionError)
"""Redis down, too slow, or refusing our credentials or commands: one line, exit 2."""
TIMEOUT_SECONDS = 5.0


async def run_status(settings: Settings, as_json: bool) -> int:
    """Print the report; 2 (with one line on stderr) when Redis cannot be read."""
    url = settings.redis_address
    client = async_client(url, socket_connect_timeout=TIMEOUT_SECONDS,
                          socket_timeout=TIMEOUT_SECONDS)
    try:
        replies = await read_replies(client, settings.keys, redacted(url))
    except UNREACHABLE as error:
        print(f"status: Redis at {redacted(url)} {failure(error)}", file=sys.stderr)
        return 2
    finally:
        await client.aclose()
    built = report.build_report(replies, expected(settings))
    if as_json:
        print(json.dumps(report.report_json(built), indent=2))
    else:
        print(report.report_text(built), end="")
    return 0


def failure(error: BaseException) -> str:
    """What went wrong, on one line (the URL is said before it, redacted)."""
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return f"refused the credentials: {detail}"
    if isinstance(error, NoPermissionError):
        return f"refused a command to this user: {detail}"
    return f"cannot be reached: {detail}"


def expected(settings: Settings) -> report.Expected:
    """What these settings make `make run` start, and the limits they set."""
    return report.Expected(
        feed_limits={source: settings.feed_stale_after.of(source) for source in SOURCES},
        processes=report.expected_processes(settings.simulate, bool(settings.webhook_secret),
                                            [poll_feed(settings, path)
                                             for path in settings.poll_mappings]),
        recent_ms=settings.claim_idle_ms)


def poll_feed(settings: Settings, path: Any) -> str:
    """The feed name a mapping's poller keeps its heartbeat under (its file's name when
    the mapping cannot be read here: the poller itself will say why)."""
    from streams.poll import load_feed  # noqa: PLC0415 - httpx and mappings only when polling

    try:
        return load_feed(settings, path)[1].feed
    except (OSError, ValueError):
        return str(path.stem)


async def read_replies(client: aioredis.Redis, keys: Keys, url: str) -> report.Replies:
    """Everything the report needs: each partition in a few round trips of its own (one
    slot on a cluster), the deployment's heartbeats and running consumers."""
    now = time.time()
    version = await server_version(client)
    parts = [await read_partition(client, part, number, now)
             for number, part in enumerate(keys.every_partition)]
    running: Any = await client.zrange(keys.consumers, 0, -1, withscores=True)
    return report.Replies(
        now=now, redis_url=url, key_prefix=keys.prefix, redis_version=version,
        **report.totals(parts), beats=await read_beats(client, keys), partitions=parts,
        running=[(name, float(score)) for name, score in running])


async def read_partition(client: aioredis.Redis, keys: Keys, number: int,
                         now: float) -> report.PartitionReplies:
    """One partition's live-state counts, dead letters, counters, lease and raw streams,
    in one pipeline over its keys only."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.calls_open)
        pipe.zcard(keys.calls_closed_index)
        pipe.xlen(keys.closed)
        pipe.hlen(keys.units)
        pipe.zcount(keys.alerts_active, now - ALERT_ACTIVE_SECONDS, "+inf")
        pipe.zcard(keys.shares_active)
        pipe.xlen(keys.deadletter)
        pipe.xrevrange(keys.deadletter, "+", "-", count=report.DEADLETTER_SCAN)
        pipe.hgetall(keys.rejected_codes)
        pipe.hgetall(keys.freshness)
        pipe.hgetall(keys.counts)
        pipe.get(keys.lease())
        pipe.pttl(keys.lease())
        for source in SOURCES:
            pipe.xinfo_stream(keys.raw_stream(source))
            pipe.xinfo_groups(keys.raw_stream(source))
        replies = await pipe.execute(raise_on_error=False)
    *live, dl_length, dl_newest, dl_codes, freshness, counts = replies[:11]
    lease_value, lease_ttl = (_answer(reply) for reply in replies[11:13])
    return report.PartitionReplies(
        partition=number, key_prefix=keys.prefix,
        live=dict(zip(("open_calls", "closed_calls_recent", "closed_records", "units",
                       "active_alerts", "active_shares"), map(_answer, live), strict=True)),
        deadletter_length=_answer(dl_length), deadletters=_answer(dl_newest),
        deadletter_codes=_answer(dl_codes), freshness=_answer(freshness),
        counts=_answer(counts), streams=await read_streams(client, keys, replies[13:], number),
        lease=None if lease_value is None else (lease_value, int(lease_ttl)))


async def server_version(client: aioredis.Redis) -> str | None:
    """The server's version (not pipelined: a cluster client refuses INFO in a pipeline and
    answers it per node, {node: info})."""
    try:
        info = await client.info("server")
    except ResponseError:
        return None
    if "redis_version" not in info and info:
        info = next(iter(info.values()))
    version = info.get("redis_version") if isinstance(info, dict) else None
    return None if version is None else str(version)


async def read_streams(client: aioredis.Redis, keys: Keys, replies: list[Any],
                       number: int = 0) -> list[report.StreamReplies]:
    """Each raw stream of partition ``number`` with its group's consumers and, where Redis
    gives no lag, a count of the entries not yet delivered (at most LAG_COUNT_LIMIT + 1)."""
    streams = [report.StreamReplies(source, keys.raw_stream(source), _unless_missing(info),
                                    _unless_missing(groups) or [], partition=number)
               for source, info, groups in zip(SOURCES, replies[::2], replies[1::2],
                                               strict=True)]
    grouped = [s for s in streams if report.consumer_group(s.groups) is not None]
    counted = [(s, start) for s in grouped if (start := report.lag_count_start(s)) is not None]
    async with client.pipeline(transaction=False) as pipe:
        for stream in grouped:
            pipe.xinfo_consumers(stream.stream, CONSUMER_GROUP)
        for stream, start in counted:
            pipe.xrange(stream.stream, f"({start}", "+", count=report.LAG_COUNT_LIMIT + 1)
        answers = [_answer(answer) for answer in await pipe.execute(raise_on_error=False)]
    consumers = dict(zip((s.source for s in grouped), answers[:len(grouped)],
                         strict=True))
    undelivered = {s.source: len(entries) for (s, _), entries
                   in zip(counted, answers[len(grouped):], strict=True)}
    return [report.StreamReplies(s.source, s.stream, s.info, s.groups,
                                 consumers.get(s.source, []), undelivered.get(s.source),
                                 number) for s in streams]


async def read_beats(client: aioredis.Redis,
                     keys: Keys) -> list[tuple[str, dict[str, Any], float]]:
    """Every health key with its body and time to live (``feedhealth.heartbeats``)."""
    names = [name async for name in client.scan_iter(match=keys.health("*"), count=200)]
    if not names:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(name)
            pipe.pttl(name)
        replies = await pipe.execute()
    return feedhealth.heartbeats(names, keys.health(""), replies[::2], replies[1::2])


def _answer(value: Any) -> Any:
    """A pipelined reply, raising the error Redis answered instead."""
    if isinstance(value, Exception):
        raise value
    return value


def _unless_missing(value: Any) -> Any:
    """A reply about a stream, None when the stream does not exist."""
    if isinstance(value, ResponseError) and "no such key" in str(value).lower():
        return None
    return _answer(value)
