"""Which client a Redis URL gets (no server: redis-py clients connect lazily)."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from streams.clients import async_client, sync_client


def test_one_server_urls_get_the_plain_client_with_their_options() -> None:
    """redis:// keeps Redis.from_url's client, options and all."""
    client = sync_client("redis://:secret@127.0.0.1:6390/2", socket_timeout=5)
    assert type(client) is redis.Redis
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["password"], kwargs["db"], kwargs["socket_timeout"]) == ("secret", 2, 5)
    client.close()


@pytest.mark.parametrize("scheme", ["redis+cluster", "rediss+cluster"])
def test_cluster_urls_get_the_cluster_client_with_user_and_password(scheme: str) -> None:
    """redis+cluster:// (and rediss+cluster://) get the cluster client, credentials, TLS and
    options kept (the asyncio one connects lazily; the sync one connects when made, so the
    integration tests cover it)."""
    client = async_client(f"{scheme}://consumer:secret@127.0.0.1:7000/0",
                          health_check_interval=15)
    assert isinstance(client, AsyncRedisCluster)
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("consumer", "secret")
    assert kwargs["health_check_interval"] == 15
    tls = kwargs["connection_class"].__name__ == "SSLConnection"
    assert tls == (scheme == "rediss+cluster")
    assert [node.port for node in client.startup_nodes] == [7000]
    assert type(async_client("redis://127.0.0.1:6390/0")) is aioredis.Redis
