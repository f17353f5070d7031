"""Process plumbing shared by every `python -m streams` command: logging and signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def setup_logging(level: str) -> None:
    """Log to stderr in one format for every process, so `make run` output reads as one."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[int | None]]) -> int:
    """Run ``main(stop)`` on a fresh loop; SIGTERM or SIGINT sets ``stop`` so it can
    finish what is in flight and return."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        result = await main(stop)
        return int(result or 0)

    return asyncio.run(runner())
