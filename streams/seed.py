"""Seed simulated history on first start (`python -m streams seed-history`, run by `make run`).

On an empty Redis (no closed calls, never seeded) with only the simulated feeds
configured, the simulator's model of Hartford is run over the span before the live
simulator's warm-up begins (``DISPATCH_SEED_HISTORY_WEEKS``, default 8 weeks), its call
events are applied with the consumer's own transitions (``livestate.apply_call``), and
every call that closed becomes a closed record written by the backfill's idempotent
writer. So presets and previous-period comparisons on /response mean something on day
one. Unit positions are not simulated (nothing reads them from history), which keeps
8 weeks to a few seconds of work.

Nothing is seeded when a real feed is configured (``DISPATCH_POLL_MAPPINGS``, or the
simulator switched off), when closed calls exist, or when a seed was written before.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import redis

from streams.backfill import Summary, write_closed_records
from streams.clients import close as close_client
from streams.clients import sync_client
from streams.core.admission import Admission, city_area
from streams.core.events import CallEvent, InvalidEvent
from streams.core.geography import Geography, city_of
from streams.core.keys import Keys
from streams.core.livestate import apply_call
from streams.core.settings import Settings
from streams.core.simulation import Simulation

log = logging.getLogger(__name__)

LIVE_WARMUP_HOURS = 6.0
"""The live simulator's warm-up under `make run`; the seed ends where it begins."""
SEED_SOURCE = "seed"
SEED_OFFSET = 7919
"""Added to the simulator seed so the seeded weeks are not the live run's calls."""
SPAN_DAYS = 7.0


def seed_reason_to_skip(settings: Settings, client: redis.Redis, keys: Keys) -> str | None:
    """Why no history is seeded now, or None when it should be."""
    if settings.seed_history_weeks <= 0:
        return "DISPATCH_SEED_HISTORY_WEEKS is 0"
    if settings.poll_mappings or not settings.simulate:
        return "a real feed is configured (DISPATCH_POLL_MAPPINGS or DISPATCH_SIMULATE=false)"
    if client.exists(keys.history_seeded):
        return "history was seeded before"
    if any(client.xlen(part.closed) for part in keys.every_partition):
        return "closed calls exist already"
    return None


def _geography(settings: Settings) -> Geography:
    """The city's geography, parsed once per process (1-2 s of GeoJSON: each worker
    process simulates several spans)."""
    return city_of(settings)


def closed_records(settings: Settings, start: datetime, end: datetime,
                   now: float | None = None) -> Iterator[dict[str, str]]:
    """Closed records of the simulated calls received in [start, end) that closed by end.

    Every event is judged as history is (``admission.check(event, now, history=True)``:
    the ``DISPATCH_HISTORY_MAX_AGE_DAYS`` window, not the live ``DISPATCH_MAX_EVENT_AGE``,
    so weeks-old calls pass while a time ahead of ``now`` or a place outside the service
    area does not); a refused event, and what then arrives out of order, is left out, as
    the consumer would leave it out."""
    geography = _geography(settings)
    city = None if settings.service_area.strip() else city_area(geography)
    admission = Admission.from_settings(settings, city)
    judged_at = time.time() if now is None else now
    sim = Simulation(settings.sim_seed + SEED_OFFSET, start, geography, settings.timezone,
                     positions=False)
    states: dict[str, dict[str, object]] = {}
    refused: Counter[str] = Counter()
    for event in sim.events_until(end):
        if not isinstance(event, CallEvent):
            continue
        try:
            admission.check(event, judged_at, history=True)
            outcome = apply_call(states.get(event.call_id), event)
        except InvalidEvent as error:  # as the consumer would, leave it out
            refused[error.code] += 1
            continue
        if outcome.verdict != "applied" or outcome.state is None:
            continue
        if outcome.closed is not None:
            states.pop(event.call_id, None)
            yield {**outcome.closed, "source": SEED_SOURCE}
        else:
            states[event.call_id] = outcome.state
    if refused:
        log.warning("seed: %s simulated events refused (%s)",
                    sum(refused.values()), ", ".join(f"{code} {n}" for code, n in
                                                     refused.most_common()))


def week_records(settings: Settings, start: float, end: float, now: float
                 ) -> list[dict[str, str]]:
    """One span's closed records (a worker process's share of the seed)."""
    return list(closed_records(settings, datetime.fromtimestamp(start, UTC),
                               datetime.fromtimestamp(end, UTC), now))


def spans(start: datetime, end: datetime, days: float = SPAN_DAYS) -> list[tuple[float, float]]:
    """[start, end) cut into spans of ``days``: each is simulated on its own (in parallel);
    a call still open at the end of its span is not seeded."""
    cuts, edge = [], start.timestamp()
    while edge < end.timestamp():
        cuts.append((edge, min(edge + days * 86400, end.timestamp())))
        edge += days * 86400
    return cuts


def seeded_records(settings: Settings, start: datetime, end: datetime, now: float
                   ) -> Iterator[dict[str, str]]:
    """Every span's records, simulated in worker processes (one per core, at most 4)."""
    parts = spans(start, end)
    workers = max(1, min(4, os.cpu_count() or 1, len(parts)))
    if workers == 1:
        for first, last in parts:
            yield from week_records(settings, first, last, now)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(week_records, replace(settings, sim_seed=settings.sim_seed + n),
                               first, last, now) for n, (first, last) in enumerate(parts)]
        for future in futures:
            yield from future.result()


def seed_start(settings: Settings, end: datetime, now: float) -> datetime:
    """``DISPATCH_SEED_HISTORY_WEEKS`` before ``end``, but never before the history window
    (``DISPATCH_HISTORY_MAX_AGE_DAYS``) admits: seeded calls are judged as history."""
    wanted = end - timedelta(weeks=settings.seed_history_weeks)
    earliest = datetime.fromtimestamp(now - settings.history_max_age_days * 86400, UTC)
    if wanted < earliest:
        log.warning("seed: DISPATCH_HISTORY_MAX_AGE_DAYS (%g) admits less than "
                    "DISPATCH_SEED_HISTORY_WEEKS (%g); seeding from %s",
                    settings.history_max_age_days, settings.seed_history_weeks,
                    earliest.isoformat(timespec="minutes"))
        return earliest
    return wanted


def seed_history(settings: Settings, now: float | None = None,
                 checked: bool = False) -> Summary | None:
    """Seed the history if it should be (see the module doc); the summary, or None.
    ``checked``: the caller has already asked ``seed_reason_to_skip`` (the launcher asks
    before the live feeds start, then seeds beside them)."""
    keys = settings.keys
    client = sync_client(settings.redis_address)
    try:
        reason = None if checked else seed_reason_to_skip(settings, client, keys)
        if reason is not None:
            log.info("no history seeded: %s", reason)
            return None
        judged_at = now if now is not None else time.time()
        end = datetime.fromtimestamp(judged_at, UTC) - timedelta(hours=LIVE_WARMUP_HOURS)
        start = seed_start(settings, end, judged_at)
        started = time.monotonic()
        summary = Summary()
        write_closed_records(client, keys, SEED_SOURCE,
                             seeded_records(settings, start, end, judged_at), summary)
        client.set(keys.history_seeded, json.dumps({
            "start": start.isoformat(), "end": end.isoformat(), "calls": summary.loaded,
            "seconds": round(time.monotonic() - started, 1)}))
        log.info("seeded %d simulated closed calls from %s to %s in %.1f s", summary.loaded,
                 start.isoformat(timespec="minutes"), end.isoformat(timespec="minutes"),
                 time.monotonic() - started)
        return summary
    finally:
        close_client(client)


def should_seed(settings: Settings) -> bool:
    """True when seed_history would seed now (asked once, before the live feeds start)."""
    keys = settings.keys
    client = sync_client(settings.redis_address)
    try:
        reason = seed_reason_to_skip(settings, client, keys)
    finally:
        close_client(client)
    if reason is not None:
        log.info("no history seeded: %s", reason)
    return reason is None
