"""Benchmark: events/s 1, 2 and 4 consumer processes apply, against the raw pipelined XADD
rate on the same server.

Usage: python tests/benchmarks/bench_consumer.py [REDIS_URL | --cluster] [--events N]
       [--batch B] [--consumers 1,2,4] [--partitions P]
Without a URL it starts its own embedded redis-server (AOF on, as under `make run`); a
``redis+cluster://`` URL runs against a Redis Cluster, and --cluster starts a local one
(3 masters, 3 replicas of Debian's redis-server 7, tests/redis_cluster.py). Events go to
P partitions (default: the largest consumer count) and the consumers split the leases
(streams/consumer.py), so on a machine with cores to spare N consumers apply up to N
times one's rate; with P=1 the others only stand by.
Prints figures, then as LAST line JSON: a list of {consumers, partitions, events,
applied_per_s, xadd_per_s, ratio, rss_*_mb} (RSS of the consumer that applied most).
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
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streams.clients import sync_client  # noqa: E402
from streams.core.events import encode_event, source_of  # noqa: E402
from streams.core.keys import EVENT_FIELD, RAW_STREAM_MAXLEN, SOURCES, Keys  # noqa: E402
from streams.core.livestate import entity_id_of  # noqa: E402
from streams.core.settings import Settings  # noqa: E402
from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402
from tests import redis_cluster  # noqa: E402
from tests.eventgen import generate_events  # noqa: E402

CONSUMER_SCRIPT = """
import asyncio, sys
from streams.core.settings import Settings
from streams.consumer import run_consumer
settings = Settings(redis_url=sys.argv[1], key_prefix=sys.argv[2],
                    consumer_batch=int(sys.argv[3]), consumer_block_ms=200,
                    partitions=int(sys.argv[5]))
print("ready", flush=True)
asyncio.run(run_consumer(settings, sys.argv[4], asyncio.Event()))
"""


def mixed_events(total: int) -> list[tuple[str, str, bytes]]:
    """About ``total`` events: ~45% AVL, ~45% call lifecycle, the rest alerts and shares."""
    calls = int(total * 0.45 / 6.3)
    units = 60
    events = generate_events(2014, calls=calls, units=units,
                             fixes_per_unit=int(total * 0.45 / units),
                             alerts=int(total * 0.05), shares=int(total * 0.025),
                             span_s=2.5 * 86400)  # all inside the live window
    return [(source_of(event), entity_id_of(event), encode_event(event)) for event in events]


def xadd_all(client: redis.Redis, keys: Keys, payloads: list, chunk: int = 2000) -> float:
    """XADD every payload in pipelines of ``chunk``; return seconds taken."""
    started = time.perf_counter()
    for offset in range(0, len(payloads), chunk):
        with client.pipeline(transaction=False) as pipe:
            for source, entity_id, payload in payloads[offset:offset + chunk]:
                pipe.xadd(keys.of_entity(entity_id).raw_stream(source), {EVENT_FIELD: payload},
                          maxlen=RAW_STREAM_MAXLEN[source], approximate=True)
            pipe.execute()
    return time.perf_counter() - started


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summed_counts(client: redis.Redis, keys: Keys) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in keys.every_partition:
        for name, value in client.hgetall(part.counts).items():
            total[name.decode()] = total.get(name.decode(), 0) + int(value)
    return total


def handled(client: redis.Redis, keys: Keys) -> int:
    return sum(value for name, value in summed_counts(client, keys).items()
               if ":" not in name or name.endswith((":rejected", ":duplicate", ":stale")))


def run(url: str, total: int, batch: int, consumers: int, partitions: int,
        ) -> dict[str, float]:
    client = sync_client(url)
    keys = Settings(redis_url=url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
                    partitions=partitions).keys
    payloads = mixed_events(total)
    events = len(payloads)
    print(f"generated {events} events "
          f"({', '.join(f'{s}={sum(1 for p in payloads if p[0] == s)}' for s in SOURCES)})")
    xadd_seconds = xadd_all(client, keys, payloads)
    xadd_rate = events / xadd_seconds
    print(f"XADD pipelined: {events} in {xadd_seconds:.2f}s = {xadd_rate:,.0f}/s")
    processes = [subprocess.Popen(
        [sys.executable, "-c", CONSUMER_SCRIPT, url, keys.prefix.strip("{}"), str(batch),
         f"bench-{n}", str(partitions)],
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
    counts = summed_counts(client, keys)
    print(f"{consumers} consumer(s) over {partitions} partition(s) (batch {batch}): {events} "
          f"applied in {seconds:.2f}s = {rate:,.0f}/s")
    print(f"counts: {counts}")
    rss = samples[0]
    print(f"applying consumer's RSS MB: start {rss[0]:.1f}, end {rss[-1]:.1f}, "
          f"max {max(rss):.1f}")
    for part in [keys, *keys.every_partition[1:]]:
        for key in client.scan_iter(match=f"{part.prefix}:*", count=1000):
            client.delete(key)
    client.close()
    return {"consumers": consumers, "partitions": partitions, "events": events,
            "applied_per_s": round(rate),
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
    parser.add_argument("--on", default="embedded,cluster",
                        help="without a URL: embedded (its own redis-server, AOF on), "
                             "cluster (a local Redis 7 Cluster, 3 masters and 3 replicas, "
                             "when Debian's redis-server 7 is there), or both (default)")
    parser.add_argument("--partitions", type=int, default=None,
                        help="partitions (default: the largest consumer count)")
    args = parser.parse_args()
    counts = [int(n) for n in args.consumers.split(",")]
    partitions = args.partitions or max(counts)

    def runs(url: str, server: str) -> list[dict[str, Any]]:
        return [{"server": server, **run(url, args.events, args.batch, n, partitions)}
                for n in counts]

    figures: list[dict[str, Any]] = []
    if args.redis_url:
        figures += runs(args.redis_url, "given")
    targets = [] if args.redis_url else args.on.split(",")
    if "embedded" in targets:
        with tempfile.TemporaryDirectory() as folder, \
                EmbeddedRedis(Path(folder), free_port(), appendonly=True) as server:
            figures += runs(server.url, "embedded 6.2")
    if "cluster" in targets and redis_cluster.available():
        with tempfile.TemporaryDirectory() as folder, \
                redis_cluster.running(Path(folder), 7400) as cluster:
            figures += runs(cluster.url(), "cluster 7 (3+3)")
    print("server           consumers  partitions  applied/s   XADD/s  ratio")
    for row in figures:
        print(f"{row['server']:<15}  {row['consumers']:>9}  {row['partitions']:>10}"
              f"  {row['applied_per_s']:>9,}  {row['xadd_per_s']:>7,}  {row['ratio']:.3f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
