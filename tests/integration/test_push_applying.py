"""Push tells every page which partitions no consumer is applying (streams/core/applying.py):
at once when that changes, and to a page on connecting; a lease handed over within its TTL
is never reported."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from streams.core.keys import Keys
from streams.core.settings import Settings
from tests.conftest import TIMEOUT_SCALE
from tests.integration import test_push
from tests.integration.test_push import SECRET, PushThread, open_client, receive

start_push = test_push.start_push  # shared fixture, on this module's push_settings
sessions = test_push.sessions  # push checks each token's session: pages sign in first

LEASE_MS = 300


@pytest.fixture
def push_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, partitions=2, consumer_lease_ms=LEASE_MS,
                               secret_key=SECRET, push_host="127.0.0.1")


@pytest.fixture
def keys(push_settings: Settings) -> Keys:
    return push_settings.keys


def message_types(page: Any, seconds: float) -> list[str]:
    """The type of every message a page gets in the next ``seconds``."""
    got = []
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            got.append(json.loads(page.recv(timeout=left))["type"])
    return got


def next_applying(page: Any) -> dict[str, Any]:
    while (message := receive(page, applying=True))["type"] != "applying":
        pass
    return message


def test_pages_hear_which_partitions_no_consumer_applies(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """Partition 0 held, partition 1's lease lapsed: a page open before hears it once the
    lease has been free for longer than its TTL, one connecting later after its snapshot;
    both hear when a consumer takes partition 1 again."""
    r.set(keys.partition_count, 2)  # a consumer ran on this deployment
    r.set(keys.partition(0).lease(), "c0/0001", px=600_000)
    free_at = time.time()
    push = start_push()
    with open_client(push.port) as early:
        assert receive(early)["type"] == "snapshot"
        told = next_applying(early)
        assert (told["partitions"], told["unapplied"]) == (2, [1])
        assert free_at - 1 <= told["since"] <= time.time()
        with open_client(push.port) as late:
            assert receive(late, applying=True)["type"] == "snapshot"
            assert next_applying(late)["unapplied"] == [1]
            r.set(keys.partition(1).lease(), "c1/0001", px=600_000)
            for page in (early, late):
                assert next_applying(page) == {"type": "applying", "partitions": 2,
                                               "unapplied": [], "since": None}


def test_a_hand_over_within_the_ttl_is_not_reported(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """Leases given up and taken again within their TTL: the page hears nothing of it."""
    r.set(keys.partition_count, 2)
    for part in keys.every_partition:
        r.set(part.lease(), "c0/0001", px=600_000)
    push = start_push()
    with open_client(push.port) as page:
        assert receive(page)["type"] == "snapshot"
        deadline = time.monotonic() + 3 * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            r.delete(keys.partition(1).lease())
            time.sleep(LEASE_MS / 1000 / 3)
            r.set(keys.partition(1).lease(), "c1/0001", px=600_000)
            time.sleep(0.1)
        got = message_types(page, 1.5)
        assert got and "applying" not in got  # pings arrived, and nothing else


def test_nothing_is_reported_before_any_consumer_ran(
        start_push: Callable[..., PushThread], keys: Keys) -> None:
    """No partition count recorded: no consumer ever ran here, so none stopped."""
    push = start_push()
    with open_client(push.port) as page:
        assert receive(page, applying=True)["type"] == "snapshot"
        got = message_types(page, LEASE_MS / 1000 * 4 + 1.5)  # past a watch with no holder
        assert got and set(got) <= {"ping", "delta"}
