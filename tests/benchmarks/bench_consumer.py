"""Benchmark: events/s 1, 2 and 4 consumer processes apply, against the raw pipelined XADD
rate on the same server.

Usage: python tests/benchmarks/bench_consumer.py [REDIS_URL] [--events N] [--batch B]
       [--consumers 1,2,4]
Without a URL it starts its own embedded redis-server (AOF on, as under `make run`).
Several consumers share one lease (streams/lease.py): one applies, the others stand by, so
the figure shows what the lease costs and that standbys neither help nor hurt (partitioned
streams, where they would share the work, are not built yet).
Prints figures, then as LAST line JSON: a list of {consumers, events, applied_per_s,
xadd_per_s, ratio, rss_*_mb} (RSS of the consumer that applied most).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streams.core.events import encode_event, source_of  # noqa: E402
from streams.core.keys import EVENT_FIELD, RAW_STREAM_MAXLEN, SOURCES, Keys  # noqa: E402
from streams.core.settings import Settings  # noqa: E402
from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402
from tests.eventgen import generate_events  # noqa: E402

CONSUMER_SCRIPT = """
import asyncio, sys
from streams.core.settings import Settings
from streams.consumer import run_consumer
settings = Settings(redis_url=sys.argv[1], key_prefix=sys.argv[2],
                    consumer_batch=int(sys.argv[3]), consumer_block_ms=200)
print("ready", flush=True)
asyncio.run(run_consumer(settings, sys.argv[4], asyncio.Event()))
"""


def mixed_events(total: int) -> list[bytes | tuple[str, bytes]]:
    """About ``total`` events: ~45% AVL, ~45% call lifecycle, the rest alerts and shares."""
    calls = int(total * 0.45 / 6.3)
    units = 60
    events = generate_events(2014, calls=calls, units=units,
                             fixes_per_unit=int(total * 0.45 / units),
                             alerts=int(total * 0.05), shares=int(total * 0.025),
                             span_s=calls * 170.0)
    return [(source_of(event), encode_event(event)) for event in events]  # type: ignore[misc]


def xadd_all(client: redis.Redis, keys: Keys, payloads: list, chunk: int = 2000) -> float:
    """XADD every payload in pipelines of ``chunk``; return seconds taken."""
    started = time.perf_counter()
    for offset in range(0, len(payloads), chunk):
        with client.pipeline(transaction=False) as pipe:
            for source, payload in payloads[offset:offset + chunk]:
                pipe.xadd(keys.raw_stream(source), {EVENT_FIELD: payload},
                          maxlen=RAW_STREAM_MAXLEN[source], approximate=True)
            pipe.execute()
    return time.perf_counter() - started


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def handled(client: redis.Redis, keys: Keys) -> int:
    counts = client.hgetall(keys.counts)
    return sum(int(value) for name, value in counts.items()
               if b":" not in name or name.endswith((b":rejected", b":duplicate", b":stale")))


def run(url: str, total: int, batch: int, consumers: int = 1) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
    payloads = mixed_events(total)
    events = len(payloads)
    print(f"generated {events} events "
          f"({', '.join(f'{s}={sum(1 for p in payloads if p[0] == s)}' for s in SOURCES)})")
    xadd_seconds = xadd_all(client, keys, payloads)
    xadd_rate = events / xadd_seconds
    print(f"XADD pipelined: {events} in {xadd_seconds:.2f}s = {xadd_rate:,.0f}/s")
    processes = [subprocess.Popen(
        [sys.executable, "-c", CONSUMER_SCRIPT, url, keys.prefix, str(batch), f"bench-{n}"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}) for n in range(consumers)]
    try:
        for process in processes:
            assert process.stdout is not None
            process.stdout.readline()  # "ready": imports done
        started = time.perf_counter()
        samples = [[rss_mb(process.pid)] for process in processes]
        done = 0
        while done < events:
            time.sleep(0.1)
            for sample, process in zip(samples, processes, strict=True):
                sample.append(rss_mb(process.pid))
                if process.poll() is not None:
                    raise RuntimeError(f"consumer exited with {process.returncode}")
            done = handled(client, keys)
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    samples = [max(samples, key=lambda sample: sample[-1] - sample[0])]  # the applier
    rate = events / seconds
    counts = {k.decode(): int(v) for k, v in client.hgetall(keys.counts).items()}
    print(f"{consumers} consumer(s) (batch {batch}): {events} applied in {seconds:.2f}s = "
          f"{rate:,.0f}/s")
    print(f"counts: {counts}")
    rss = samples[0]
    print(f"applying consumer's RSS MB: start {rss[0]:.1f}, end {rss[-1]:.1f}, "
          f"max {max(rss):.1f}")
    for key in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
        client.delete(key)
    return {"consumers": consumers, "events": events, "applied_per_s": round(rate),
            "xadd_per_s": round(xadd_rate), "ratio": round(rate / xadd_rate, 3),
            "rss_start_mb": round(rss[0], 1), "rss_end_mb": round(rss[-1], 1),
            "rss_max_mb": round(max(rss), 1), "batch": batch}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("redis_url", nargs="?", default=None)
    parser.add_argument("--events", type=int, default=230_000)
    parser.add_argument("--batch", type=int, default=Settings().consumer_batch,
                        help="events per XREADGROUP (default: the settings default)")
    parser.add_argument("--consumers", default="1,2,4",
                        help="comma-separated consumer counts, one run each (default 1,2,4)")
    args = parser.parse_args()
    counts = [int(n) for n in args.consumers.split(",")]
    if args.redis_url:
        figures = [run(args.redis_url, args.events, args.batch, n) for n in counts]
    else:
        with tempfile.TemporaryDirectory() as folder, \
                EmbeddedRedis(Path(folder), free_port(), appendonly=True) as server:
            figures = [run(server.url, args.events, args.batch, n) for n in counts]
    print("consumers  applied/s  XADD/s  ratio")
    for row in figures:
        print(f"{row['consumers']:>9}  {row['applied_per_s']:>9,}  {row['xadd_per_s']:>6,}"
              f"  {row['ratio']:.3f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
