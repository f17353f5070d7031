"""What several benchmarks share: percentiles, a coroutine run beside Playwright, and the
Redis to measure against (the one ``--redis-url`` names, or a fresh embedded server)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from streams.redis_server import EmbeddedRedis, free_port

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation; NaN for no values (never a made-up 0)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on its own loop in a worker thread (Playwright owns this thread's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@contextmanager
def redis_under_test(url: str | None, folder: Path) -> Iterator[str]:
    """``url`` itself, or the URL of a fresh embedded redis-server in ``folder`` that is
    stopped afterwards (its server can outlive this process otherwise)."""
    if url is not None:
        yield url
        return
    server = EmbeddedRedis(folder, free_port(), appendonly=False).start()
    try:
        yield server.url
    finally:
        server.stop()
