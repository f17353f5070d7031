"""Which feeds' sources are alive, read from the real health keys (feed health's QUIET)."""

from __future__ import annotations

import json

import pytest
import redis

from dashboard import wallview
from dashboard.readapi import LiveReader
from streams.core.keys import Keys


def test_heartbeats_name_the_sources_that_are_alive(r: redis.Redis, keys: Keys) -> None:
    r.set(keys.health("webhook"), json.dumps({"time": 990.0, "accepted": 3}), ex=30)
    r.set(keys.health("poll:hartford"), json.dumps(
        {"time": 995.0, "state": "ok", "source": "cad"}), ex=90)
    r.set(keys.health("poll:broken"), json.dumps(
        {"time": 996.0, "state": "error", "source": "avl"}), ex=90)
    r.set(keys.health("consumer-1"), json.dumps({"time": 999.0}), ex=30)
    r.set(keys.health("garbled"), b"\xff not json", ex=30)
    r.set(keys.health("forever"), json.dumps({"time": 1.0}))  # no TTL: not a heartbeat
    beats = LiveReader(r, keys).heartbeats()
    assert [name for name, _, _ in beats] == ["consumer-1", "poll:broken", "poll:hartford",
                                              "webhook"]
    assert all(0 < ttl <= 90 for _, _, ttl in beats)
    alive = wallview.source_heartbeats(beats, now=1000.0)
    assert set(alive) == {"shotspotter", "cad"}  # a failing poller keeps nothing alive
    assert alive["cad"]["heard"] == 995.0
    assert alive["cad"]["until"] == pytest.approx(1090.0, abs=2)
    assert alive["shotspotter"]["until"] == pytest.approx(1030.0, abs=2)


def test_no_heartbeats_no_sources(r: redis.Redis, keys: Keys) -> None:
    assert LiveReader(r, keys).heartbeats() == []
