"""Benchmark: tablet actions through ActionStore.apply, the one writer (issue 11 item 1).

Usage: python tests/benchmarks/bench_actions.py [REDIS_URL] [--calls N] [--claimers K]
Without a URL it starts a fresh embedded redis-server. It opens N QoL calls as the consumer
stores them, then times, per call: a claim, a note and a handled action (each one
transaction under WATCH, writing the work record, the action id, the actions and outcomes
streams and one changes entry), a resend of an id already applied, and a race of K threads
on their own connections claiming one fresh call at once (exactly one must win).
Prints figures, then as LAST line JSON: per-kind p50/p95 ms, race wall time and winners.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dashboard.actionstore import ActionStore  # noqa: E402
from streams.core.actions import Action, Actor  # noqa: E402
from streams.core.keys import Keys  # noqa: E402
from tests.benchmarks.common import percentile, redis_under_test  # noqa: E402

CSO = Actor("cso-north", "cso", "North")


def put_calls(client: redis.Redis, keys: Keys, count: int) -> list[str]:
    ids = [f"B{number:06d}" for number in range(count)]
    with client.pipeline(transaction=False) as pipe:
        for call_id in ids:
            pipe.hset(keys.calls, call_id, json.dumps({
                "call_id": call_id, "category": "noise", "status": "pending",
                "district": "North", "neighborhood": "Blue Hills", "priority": 3,
                "received_time": time.time() - 300, "caller_name": "A Caller",
                "caller_phone": "860-555-0100"}))
        pipe.execute()
    return ids


def timed(store: ActionStore, action: Action) -> float:
    started = time.perf_counter()
    store.apply(action, CSO)
    return (time.perf_counter() - started) * 1000


def race(url: str, keys: Keys, call_id: str, claimers: int) -> tuple[float, int]:
    stores = [ActionStore(redis.Redis.from_url(url), keys) for _ in range(claimers)]
    start = threading.Barrier(claimers + 1)
    answers: list[dict[str, Any]] = []

    def claim(index: int) -> None:
        start.wait()
        answer, _ = stores[index].apply(
            Action(uuid.uuid4().hex, call_id, "claim"),
            Actor(f"cso-{index:03d}", "cso", "North"))
        answers.append(answer)

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(claimers)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = (time.perf_counter() - began) * 1000
    for store in stores:
        store.client.close()
    return elapsed, sum(1 for answer in answers if answer["status"] == "applied")


def run(url: str, calls: int, claimers: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    keys = Keys(f"bench-actions-{uuid.uuid4().hex[:8]}")
    store = ActionStore(client, keys)
    ids = put_calls(client, keys, calls + 1)
    figures: dict[str, list[float]] = {"claim": [], "note": [], "handled": [], "resend": []}
    for call_id in ids[:calls]:
        figures["claim"].append(timed(store, Action(uuid.uuid4().hex, call_id, "claim")))
        note = Action(uuid.uuid4().hex, call_id, "note", text="Spoke to resident")
        figures["note"].append(timed(store, note))
        figures["resend"].append(timed(store, note))
        figures["handled"].append(timed(store, Action(uuid.uuid4().hex, call_id, "handled",
                                                      outcome="warned")))
    race_ms, winners = race(url, keys, ids[calls], claimers)
    result: dict[str, Any] = {"calls": calls, "claimers": claimers,
                              "race_ms": round(race_ms, 1), "race_winners": winners}
    for kind, values in figures.items():
        result[f"{kind}_p50_ms"] = round(statistics.median(values), 2)
        result[f"{kind}_p95_ms"] = round(percentile(values, 0.95), 2)
        print(f"{kind:8s} p50 {result[f'{kind}_p50_ms']:6.2f} ms   "
              f"p95 {result[f'{kind}_p95_ms']:6.2f} ms   ({len(values)} actions)")
    print(f"race: {claimers} claimers on one call, {winners} winner(s), {race_ms:.1f} ms")
    for key in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
        client.delete(key)
    client.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("redis_url", nargs="?")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--claimers", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_under_test(args.redis_url, Path(tmp)) as url:
        result = run(url, args.calls, args.claimers)
    print(json.dumps(result))
    return 0 if result["race_winners"] == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
