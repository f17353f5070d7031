"""A real Redis Cluster on 127.0.0.1 for the tests: 3 masters and 3 replicas of Debian's
redis-server 7 in cluster mode, joined by ``redis-cli --cluster create``.

One home for the harness: ``tests/integration/test_cluster.py`` starts one per module (and
kills its masters), and `.ci/run` starts one for the whole suite's third pass::

    python -m tests.redis_cluster start --base-port 7100 --dir /tmp/ci-cluster
    python -m tests.redis_cluster stop --dir /tmp/ci-cluster

``start`` prints the cluster URL (``redis+cluster://127.0.0.1:7100/0``) once every node
says cluster_state:ok and every replica is in sync; ``stop`` shuts down the nodes it
started (their pids are in the folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from streams.connections import RETRYABLE

REDIS_SERVER = Path("/usr/bin/redis-server")
REDIS_CLI = Path("/usr/bin/redis-cli")
NODES = 6  # 3 masters, each with one replica
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
START_SECONDS = 60 * float(os.environ.get("DISPATCH_TEST_TIMEOUT_SCALE", "1"))


def available() -> bool:
    """Debian's redis-server and redis-cli are installed."""
    return REDIS_SERVER.exists() and REDIS_CLI.exists()


def wait_for(condition: Callable[[], bool], what: str, seconds: float = START_SECONDS) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except (*RETRYABLE, redis.RedisError, subprocess.CalledProcessError):
            pass  # a node is starting or down, or the cluster is electing: ask again
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    """Nobody listens on ``port`` nor on its cluster bus port."""
    with socket.socket() as one, socket.socket() as bus:
        try:
            one.bind(("127.0.0.1", port))
            bus.bind(("127.0.0.1", port + BUS_OFFSET))
        except OSError:
            return False
    return True


def free_ports(count: int, start: int) -> list[int]:
    """``count`` free ports from ``start`` on whose bus ports are free too."""
    ports: list[int] = []
    candidate = start
    while len(ports) < count:
        if port_is_free(candidate):
            ports.append(candidate)
        candidate += 1
    return ports


def cli(port: int, *args: str) -> str:
    return subprocess.run([str(REDIS_CLI), "-p", str(port), *args], capture_output=True,
                          text=True, timeout=30, check=True).stdout


def _port_of(address: str) -> int:
    """127.0.0.1:7100@17100 -> 7100"""
    return int(address.split("@")[0].rsplit(":", 1)[1])


@dataclass
class Cluster:
    ports: list[int]
    folder: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def alive(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def nodes(self) -> list[dict[str, Any]]:
        """CLUSTER NODES of a live node: port, id, flags, master id, link state."""
        rows = []
        for line in cli(self.alive()[0], "cluster", "nodes").splitlines():
            node_id, address, flags, master, *_rest = line.split()
            rows.append({"port": _port_of(address), "id": node_id, "flags": flags.split(","),
                         "master": master, "line": line})
        return rows

    def owner(self, key: str) -> int:
        """Port of the master serving ``key``'s slot."""
        slot = int(cli(self.alive()[0], "cluster", "keyslot", key))
        for line in cli(self.alive()[0], "cluster", "nodes").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for ranges in parts[8:]:
                low, _, high = ranges.partition("-")
                if int(low) <= slot <= int(high or low):
                    return _port_of(parts[1])
        raise AssertionError(f"no master serves slot {slot}")

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok and every replica's link is up."""
        for port in self.alive():
            if "cluster_state:ok" not in cli(port, "cluster", "info"):
                return False
            replication = cli(port, "info", "replication")
            if "role:slave" in replication and "master_link_status:up" not in replication:
                return False
        return True

    def url(self, avoid: int | None = None) -> str:
        port = next(port for port in self.alive() if port != avoid)
        return f"redis+cluster://127.0.0.1:{port}/0"

    def start(self, detach: bool = False) -> Cluster:
        """Start every node (in their own session when ``detach``, to outlive this process),
        join them, and wait until the cluster is ok and every replica in sync."""
        for port in self.ports:
            self.processes[port] = self._node(port, detach)
        for port in self.ports:
            wait_for(lambda port=port: cli(port, "ping").strip() == "PONG", f"node {port}")
        subprocess.run([str(REDIS_CLI), "--cluster", "create",
                        *(f"127.0.0.1:{port}" for port in self.ports),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       capture_output=True, timeout=60, check=True)
        wait_for(self.healthy, "cluster_state:ok with every replica in sync")
        return self

    def _node(self, port: int, detach: bool) -> subprocess.Popen[bytes]:
        folder = self.folder / str(port)
        folder.mkdir(parents=True)
        return subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "2000", "--appendonly", "no", "--save", "",
             "--dir", str(folder), "--logfile", str(folder / "redis.log"),
             "--pidfile", str(folder / "redis.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=detach)

    def kill(self) -> None:
        """kill -9 every node this object started."""
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            process.wait()


@contextmanager
def running(folder: Path, base_port: int) -> Iterator[Cluster]:
    """A started cluster on the first free ports from ``base_port``, killed at the end."""
    cluster = Cluster(free_ports(NODES, base_port), folder)
    try:
        yield cluster.start()
    finally:
        cluster.kill()


def stop(folder: Path) -> None:
    """Stop the nodes ``start`` left under ``folder`` (SIGKILL by their pid files: the data
    is a test's, nothing to save) and remove the folder."""
    for pidfile in sorted(folder.glob("*/redis.pid")):
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass  # already gone
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.redis_cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="the nodes' folders")
    parser.add_argument("--base-port", type=int, default=7100,
                        help="first port tried (6 nodes; each needs port + 10000 too)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(args.dir)
        return 0
    if args.dir.exists() and any(args.dir.iterdir()):
        parser.error(f"{args.dir} is not empty (stop the cluster there first)")
    cluster = Cluster(free_ports(NODES, args.base_port), args.dir)
    try:
        cluster.start(detach=True)
    except BaseException:
        cluster.kill()
        raise
    print(cluster.url())
    return 0


if __name__ == "__main__":
    sys.exit(main())
