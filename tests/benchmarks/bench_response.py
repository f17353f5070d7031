"""Benchmark: /response answering filter changes over 1,000,000 closed calls.

Usage: python tests/benchmarks/bench_response.py [REDIS_URL] [--calls N] [--repeat R]
Without a URL it starts a fresh embedded redis-server. It writes N closed-call records (the
consumer's format, ``livestate.closed_record``) to the closed stream, spread over three
years up to now, then calls the page's own callback (``layouts.response.update``, role check
included, in a Flask request signed in as a supervisor) on a cold cache (it answers with a
loading note within LOADING_WAIT_S while the history loads in the background; the cold load
is timed until that load ends), once warm, and again for each filter change, encoding the
outputs to JSON as Dash does. Target: every change <= 1 s.
Prints figures, then as LAST line JSON: calls, cold_load_s, first_request_s, load_s,
per-change p50/max, overall.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import flask  # noqa: E402
import plotly.io  # noqa: E402

from dashboard import runtime  # noqa: E402
from dashboard.readapi import LiveReader  # noqa: E402
from streams.core.events import CATEGORIES, is_qol  # noqa: E402
from streams.core.keys import CLOSED_MAXLEN, Keys  # noqa: E402
from streams.core.livestate import closed_record  # noqa: E402
from streams.core.settings import Settings  # noqa: E402
from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402

TARGET_S = 1.0
SPAN_S = 3 * 365 * 86400.0
DISTRICT_HOODS = {"North": ("Blue Hills", "Northeast", "Upper Albany"),
                  "Central": ("Asylum Hill", "Frog Hollow", "West End"),
                  "South": ("Barry Square", "South Green", "Southwest")}

FILTER_CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("preset 30 days", {"preset": "30d"}),
    ("split by district", {"split": "district"}),
    ("bucket hour", {"bucket": "hour"}),
    ("metric dispatch", {"metric": "dispatch"}),
    ("split by category", {"split": "category"}),
    ("bucket week", {"bucket": "week"}),
    ("districts North+South", {"districts": ["North", "South"]}),
    ("priorities P1,P2", {"priorities": [1, 2]}),
    ("split by priority", {"split": "priority"}),
    ("preset summer season", {"preset": "summer"}),
    ("bucket day", {"bucket": "day"}),
    ("categories QoL", {"categories": ["noise", "atv", "loitering", "dumping"]}),
    ("clear filters", {"districts": [], "priorities": [], "categories": []}),
    ("custom one year", {"preset": "custom", "start_date": "YEAR_AGO", "end_date": "TODAY"}),
    ("custom one year, hourly by category", {"bucket": "hour", "split": "category"}),
    ("preset today", {"preset": "today", "bucket": "hour"}),
    ("preset 7 days", {"preset": "7d", "split": "none", "metric": "travel"}),
]
"""Each change is applied on top of the previous ones, as a user clicking through would."""


def closed_records(count: int, now: float, seed: int = 2014) -> list[dict[str, str]]:
    """``count`` closed-call records as the consumer writes them, oldest first."""
    rng = random.Random(seed)
    received = sorted(now - rng.random() * SPAN_S for _ in range(count))
    records = []
    for number, start in enumerate(received):
        district = rng.choice(tuple(DISTRICT_HOODS))
        category = rng.choice(CATEGORIES)
        dispatched = start + rng.gammavariate(2.0, 60.0)
        on_scene = dispatched + rng.gammavariate(3.0, 110.0) if rng.random() > 0.08 else None
        cancelled = rng.random() < 0.03
        records.append(closed_record({
            "call_id": f"B{number:07d}", "category": category, "qol": is_qol(category),
            "priority": rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5)), "district": district,
            "neighborhood": rng.choice(DISTRICT_HOODS[district]), "call_type": category,
            "received_time": start, "dispatched_time": dispatched, "on_scene_time": on_scene,
            "closed_time": (on_scene or dispatched) + 900.0,
            "status": "cancelled" if cancelled else "closed", "source": "bench"}))
    return records


def write_closed(client: redis.Redis, keys: Keys, records: list[dict[str, str]],
                 chunk: int = 5000) -> float:
    started = time.perf_counter()
    for offset in range(0, len(records), chunk):
        with client.pipeline(transaction=False) as pipe:
            for record in records[offset:offset + chunk]:
                pipe.xadd(keys.closed, record, maxlen=CLOSED_MAXLEN, approximate=True)
            pipe.execute()
    return time.perf_counter() - started


def call_update(server: flask.Flask, state: dict[str, Any]) -> float:
    """Run the page's callback for ``state`` as a signed-in supervisor; seconds taken,
    including the JSON encoding Dash does on the way out."""
    from layouts import response  # noqa: PLC0415 - after runtime.init

    with server.test_request_context("/_dash-update-component", method="POST"):
        flask.session["user"] = {"name": "bench", "role": "supervisor"}
        started = time.perf_counter()
        outputs = response.update(
            state["preset"], state["start_date"], state["end_date"], state["metric"],
            state["split"], state["bucket"], state["districts"], state["priorities"],
            state["categories"])
        plotly.io.json.to_json_plotly(list(outputs))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("redis_url", nargs="?")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each filter change")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        url = args.redis_url
        if url is None:
            server = EmbeddedRedis(Path(tmp), free_port(), appendonly=False).start()
            url = server.url
        try:
            return run(url, args.calls, args.repeat, Path(tmp))
        finally:
            if server is not None:
                server.stop()


def run(url: str, calls: int, repeat: int, data_dir: Path) -> int:
    settings = Settings(redis_url=url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
                        data_dir=data_dir)
    keys = Keys(settings.key_prefix)
    client = redis.Redis.from_url(url)
    now = time.time()
    started = time.perf_counter()
    records = closed_records(calls, now)
    print(f"generated {calls:,} closed records in {time.perf_counter() - started:.1f} s")
    print(f"XADD to {keys.closed} in {write_closed(client, keys, records):.1f} s")
    del records

    reader = LiveReader(client, keys)
    runtime.init(settings, reader)
    server = flask.Flask(__name__)
    server.secret_key = "bench"
    today = time.strftime("%Y-%m-%d", time.localtime(now))
    year_ago = time.strftime("%Y-%m-%d", time.localtime(now - 365 * 86400))
    state: dict[str, Any] = {"preset": "7d", "start_date": None, "end_date": None,
                             "metric": "response", "split": "none", "bucket": "day",
                             "districts": [], "priorities": [], "categories": []}
    started = time.perf_counter()
    first_request_s = call_update(server, state)
    loading = not reader.closed_calls_ready()
    reader.prefetch_closed_calls().join()
    cold_load_s = time.perf_counter() - started
    print(f"first request on a cold cache: {first_request_s:.2f} s"
          f" ({'loading note' if loading else 'full view'})")
    print(f"cold load of {len(reader.closed_calls(0, 2e9)):,} closed calls: {cold_load_s:.2f} s")
    load_s = call_update(server, state)
    print(f"first full view (warm cache): {load_s:.2f} s")

    results = []
    for name, change in FILTER_CHANGES:
        state.update({key: {"TODAY": today, "YEAR_AGO": year_ago}.get(value, value)
                      if isinstance(value, str) else value for key, value in change.items()})
        times = [call_update(server, state) for _ in range(repeat)]
        results.append({"change": name, "p50_s": round(statistics.median(times), 4),
                        "max_s": round(max(times), 4)})
        print(f"{name:40s} p50 {statistics.median(times) * 1000:7.1f} ms"
              f"   max {max(times) * 1000:7.1f} ms")
    every = [row["max_s"] for row in results]
    worst = max(every)
    print(f"worst filter change {worst * 1000:.0f} ms (target {TARGET_S * 1000:.0f} ms): "
          f"{'OK' if worst <= TARGET_S else 'TOO SLOW'}")
    client.delete(keys.closed)
    client.close()
    print(json.dumps({"bench": "response", "calls": calls,
                      "cold_load_s": round(cold_load_s, 3),
                      "first_request_s": round(first_request_s, 3),
                      "load_s": round(load_s, 3),
                      "changes": results,
                      "p50_s": round(statistics.median(r["p50_s"] for r in results), 4),
                      "max_s": round(worst, 4), "target_s": TARGET_S,
                      "ok": worst <= TARGET_S}))
    return 0 if worst <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
