"""Benchmark: seeding simulated history on the first start (target: 8 weeks in <= 60 s).

Usage: python tests/benchmarks/bench_seed.py [--weeks W]
Starts a fresh embedded redis-server, runs ``streams.seed.seed_history`` (what `make run`
does on an empty Redis) and prints calls seeded, seconds and the machine's load, then as
LAST line JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streams.core.settings import Settings  # noqa: E402
from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402
from streams.seed import seed_history  # noqa: E402

TARGET_S = 60.0


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the seed's
    worker processes)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=float, default=Settings().seed_history_weeks)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), free_port(), appendonly=False).start()
        try:
            settings = replace(Settings(), redis_url=server.url, key_prefix="bench-seed",
                               data_dir=Path(tmp), seed_history_weeks=args.weeks)
            started = time.perf_counter()
            cpu_before = _cpu_seconds()
            summary = seed_history(settings)
            took = time.perf_counter() - started
            cpu = _cpu_seconds() - cpu_before
        finally:
            server.stop()
    calls = summary.loaded if summary else 0
    print(f"machine load at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"seeded {calls:,} closed calls over {args.weeks:g} weeks in {took:.1f} s "
          f"(target {TARGET_S:.0f} s): {'OK' if took <= TARGET_S else 'TOO SLOW'}")
    print(f"CPU time {cpu:.1f} s (this process and its simulation workers: what a busy "
          f"machine inflates far less than wall time; {cpu / 2:.1f} s a core on 2 cores)")
    print(json.dumps({"bench": "seed", "weeks": args.weeks, "calls": calls,
                      "seconds": round(took, 2), "cpu_s": round(cpu, 2), "target_s": TARGET_S,
                      "load": round(load[0], 1), "ok": took <= TARGET_S}))
    return 0 if took <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
