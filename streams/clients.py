"""Redis clients built from a URL, sync and asyncio: the one place that reads its scheme.

``redis+cluster://[user:password@]host:port/0`` (or ``rediss+cluster://``) names a Redis
Cluster by any one of its nodes and gets redis-py's cluster client; every other URL gets
the one-server client, exactly as ``Redis.from_url`` builds it. The cluster client serves
the same commands for keys in one slot (``Settings.keys_prefix`` puts them there), so
callers keep their ``Redis`` types.
"""

from __future__ import annotations

from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from streams.core.settings import is_cluster_url


async def ping(client: aioredis.Redis) -> bool:
    """PING the server; on a cluster only the node the URL names: a node down elsewhere (a
    replica, the master of another deployment's slot) must not keep a process from
    starting, and cluster-wide PING asks every node."""
    if isinstance(client, AsyncRedisCluster):
        return bool(await client.ping(target_nodes=AsyncRedisCluster.DEFAULT_NODE))
    return bool(await client.ping())


def _node_url(url: str) -> str:
    """redis+cluster://... -> redis://... (rediss+ -> rediss://), what redis-py parses."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower().removesuffix('+cluster')}://{rest}"


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A synchronous client for ``url`` (a cluster client for a cluster URL)."""
    if is_cluster_url(url):
        return cast(redis.Redis, RedisCluster.from_url(_node_url(url), **options))
    return redis.Redis.from_url(url, **options)


def async_client(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url`` (a cluster client for a cluster URL)."""
    if is_cluster_url(url):
        return cast(aioredis.Redis, AsyncRedisCluster.from_url(_node_url(url), **options))
    return aioredis.Redis.from_url(url, **options)


def close(client: redis.Redis) -> None:
    """Close a client from ``sync_client``; for a cluster client its nodes' pools too:
    redis-py's RedisCluster.close() leaves a from_url client's sockets open."""
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():
            if node.redis_connection:
                node.redis_connection.connection_pool.disconnect()
    client.close()
