"""Redis access (issue 8 item 7): the embedded Redis is behind a generated password kept
0600 in the data dir, listens on 127.0.0.1 only, keeps its folder 0700 and AOF 0600, and a
REDIS_URL with a user name and password works for the consumer and the web."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.cluster import RedisCluster

from dashboard import auth
from dashboard.readapi import LiveReader
from streams.clients import sync_client
from streams.connections import connect
from streams.core.keys import Keys
from streams.core.settings import Settings
from streams.launcher import load_or_create_redis_password, private_data_dir, redis_lines
from streams.redis_server import EmbeddedRedis, free_port
from tests.conftest import close_client
from tests.eventgen import generate_events
from tests.integration.test_consumer import consume_until_drained, publish_events


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _other_address() -> str | None:
    """An address of this host other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_password_is_generated_once_and_kept_owner_only(tmp_path: Path) -> None:
    """The first start makes a password, 0600 beside the secret key; later starts reuse it
    (a file left readable by others is made 0600 again), and the data dir is 0700."""
    settings = Settings(data_dir=tmp_path / "var")
    private_data_dir(settings)
    first = load_or_create_redis_password(settings)
    assert len(first) >= 32
    assert settings.redis_password_file == tmp_path / "var" / "redis_password"
    assert _mode(settings.redis_password_file) == 0o600
    assert _mode(settings.data_dir) == 0o700
    settings.redis_password_file.chmod(0o644)
    assert load_or_create_redis_password(settings) == first
    assert _mode(settings.redis_password_file) == 0o600


def test_embedded_redis_needs_the_password_and_listens_on_loopback_only(
        tmp_path: Path) -> None:
    """An unauthenticated client is refused (CONFIG too), the password works and is not in
    the server's command line, the server is not reachable on another address, its folder
    is 0700 and its AOF and log 0600, and a restart keeps data and password."""
    settings = Settings(data_dir=tmp_path / "var", embedded_redis_port=free_port())
    private_data_dir(settings)
    password = load_or_create_redis_password(settings)
    server = EmbeddedRedis(settings.data_dir / "redis", settings.embedded_redis_port,
                           password=password)
    with server:
        assert server.process is not None
        stranger = redis.Redis(port=server.port, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            stranger.config_get("dir")
        stranger.close()
        # What another terminal's `python -m dashboard adduser` uses: the kept password.
        client = redis.Redis.from_url(settings.redis_address, socket_timeout=5)
        client.set("kept", "1")
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        client.close()
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline
        other = _other_address()
        if other is not None:
            with pytest.raises(OSError), socket.create_connection((other, server.port), 2):
                pass
        folder = settings.data_dir / "redis"
        assert _mode(folder) == 0o700
        aof = [path for path in folder.rglob("*") if "appendonly" in path.name]
        assert aof and {_mode(path) for path in aof} == {0o600}
        assert _mode(folder / "redis.log") == 0o600
    again = EmbeddedRedis(settings.data_dir / "redis", settings.embedded_redis_port,
                          password=load_or_create_redis_password(settings))
    with again:
        client = redis.Redis.from_url(settings.redis_address, socket_timeout=5)
        assert client.get("kept") == b"1"  # the AOF reloaded, behind the same password
        client.close()


def test_the_welcome_hides_the_password_and_says_how_to_use_redis_cli(
        tmp_path: Path) -> None:
    """`make run` prints where Redis is without its password, and a redis-cli line that
    reads the password from its file."""
    settings = Settings(data_dir=tmp_path / "var", embedded_redis_port=6390)
    lines = "\n".join(redis_lines(settings, "redis://:s3cret@127.0.0.1:6390/0", True))
    assert "s3cret" not in lines
    assert "redis://:***@127.0.0.1:6390/0" in lines
    assert f'REDISCLI_AUTH="$(cat {settings.redis_password_file})" redis-cli -p 6390' in lines
    given = redis_lines(settings, "redis://web:pw@redis.example:6379/0", False)
    assert given == ["  Redis: redis://web:***@redis.example:6379/0"]


@pytest.fixture
def user_url(redis_url: str, r: redis.Redis) -> Iterator[str]:
    """The session's Redis with an ACL user of its own: redis://user:password@host:port/0
    (on a cluster the user is made on every node)."""
    name, password = f"app-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    everywhere = {"target_nodes": RedisCluster.ALL_NODES} if isinstance(r, RedisCluster) else {}
    r.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~*", "&*", "+@all",
                      **everywhere)
    parts = urlsplit(redis_url)
    yield parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}").geturl()
    r.execute_command("ACL", "DELUSER", name, **everywhere)


def test_a_redis_url_with_user_and_password_works_for_consumer_and_web(
        user_url: str, settings: Settings, r: redis.Redis, keys: Keys) -> None:
    """REDIS_URL=redis://user:password@host:port/0: the consumer applies events and the web
    reads them and signs users in, as that user (a wrong password is refused)."""
    as_user = dataclasses.replace(settings, redis_url=user_url)
    events = generate_events(7, calls=5, units=2, fixes_per_unit=2, alerts=0, shares=0)

    async def apply() -> int:
        await publish_events(user_url, keys, events)
        return (await consume_until_drained(as_user, r)).applied

    assert asyncio.run(apply()) == len(events)
    web = sync_client(as_user.redis_address)
    reader = LiveReader(web, keys)
    assert len(reader.units()) == 2
    assert len(reader.open_calls()) == r.zcard(keys.calls_open)
    close_client(web)
    users = auth.open_users(as_user)
    users.add("acl-supervisor", "supervisor", "a long password 1", None)
    assert users.authenticate("acl-supervisor", "a long password 1") is not None
    close_client(users.client)
    parts = urlsplit(user_url)
    wrong = redis.Redis(host=parts.hostname, port=parts.port, username=parts.username,
                        password="wrong")
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    wrong.close()


def test_connection_retries_log_the_address_without_its_password(
        caplog: pytest.LogCaptureFixture) -> None:
    """A process retrying an unreachable Redis names it in the log, never its password."""
    url = f"redis://web:s3cret-pw@127.0.0.1:{free_port()}/0"
    with pytest.raises(redis.ConnectionError):
        asyncio.run(connect(url, attempts=2))
    assert f"redis://web:***@127.0.0.1:{urlsplit(url).port}/0" in caplog.text
    assert "s3cret-pw" not in caplog.text
