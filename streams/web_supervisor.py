"""The launcher's web part: one listening socket, web servers replaced without a gap.

The launcher binds the dashboard's port once and hands the socket to every web server it
starts (`python -m dashboard serve --listen-fd N --notify-fd W`, see ``dashboard.server``),
so the port is never closed: while no server accepts, connections wait in the backlog.
A server is replaced

- when it is asked to stop (SIGTERM from anyone): it says ``stopping`` and keeps serving;
- when the launcher gets SIGHUP (a deploy: `kill -HUP <launcher pid>`);
- when it dies (a crash or SIGKILL): at once, the backlog holding new connections.

In the first two cases the replacement starts beside the running server, and only when
every one of its workers says ``ready`` is the old one told to stop (its pipe closed, then
SIGTERM): it drains its requests in flight and exits. A replacement that fails to become
ready is killed and the running server kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 120.0
"""Longest a replacement may take to load (every worker builds the app) before it is
given up and the running server kept."""
STOP_GRACE_SECONDS = 45.0
"""A retired server gets this long to drain (the server's own graceful timeout is 30 s)
before its process group is killed."""
RESTART_BACKOFF_MAX_SECONDS = 30.0
LISTEN_BACKLOG = 2048


def listening_socket(host: str, port: int) -> socket.socket:
    """The dashboard's port, bound once for the launcher's lifetime."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    listener.set_inheritable(True)
    return listener


@dataclass
class WebServer:
    """One started web server: its process and what it has said on its pipe."""

    process: asyncio.subprocess.Process
    pipe: asyncio.StreamReader
    transport: asyncio.BaseTransport
    workers: int
    ready_pids: set[int] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)
    listener: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        """Read the server's lines until its pipe closes."""
        while line := await self.pipe.readline():
            word, _, pid = line.decode(errors="replace").strip().partition(" ")
            if word == "ready" and pid.isdigit():
                self.ready_pids.add(int(pid))
                if len(self.ready_pids) >= self.workers:
                    self.ready.set()
            elif word == "stopping":
                self.stopping.set()

    async def hang_up(self) -> None:
        """Close our end of the pipe: from now on the server's SIGTERM means stop at once.

        Returns once the pipe is really closed: the transport closes it on a later turn of
        the loop, and a SIGTERM sent before then let a busy machine's server find the pipe
        open, say ``stopping`` and keep serving, waiting for a replacement nobody started.
        """
        self.transport.close()
        if self.listener is not None:
            await asyncio.gather(self.listener, return_exceptions=True)

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


class WebSupervisor:
    """Keeps one web server serving the launcher's socket, replacing it without a gap."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], host: str, port: int,
                 workers: int) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.workers = workers
        self.listener = listening_socket(host, port)
        self.retiring: set[asyncio.Task[None]] = set()
        self.failures = 0

    async def start(self) -> WebServer:
        read_fd, write_fd = os.pipe()
        fds = (self.listener.fileno(), write_fd)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv, "--listen-fd", str(fds[0]), "--notify-fd", str(fds[1]),
                env=self.env, pass_fds=fds, start_new_session=True,
                stdin=asyncio.subprocess.DEVNULL)
        finally:
            os.close(write_fd)  # the server holds it now; EOF when all its processes exit
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        server = WebServer(process, reader, transport, self.workers)
        server.listener = asyncio.create_task(server.listen())
        log.info("started web (pid %d)", process.pid)
        return server

    async def run(self, stop: asyncio.Event, restart: asyncio.Event) -> None:
        """Serve until ``stop``; ``restart`` (SIGHUP) asks for a replacement."""
        current = await self.start()
        try:
            while not stop.is_set():
                why = await _first(stop=stop.wait(), restart=restart.wait(),
                                   stopping=current.stopping.wait(),
                                   exited=current.process.wait())
                if why == "stop":
                    break
                if why == "exited":
                    current = await self._after_exit(current, stop)
                    continue
                restart.clear()
                log.info("replacing web (pid %d): %s", current.process.pid,
                         "SIGHUP" if why == "restart" else "it was asked to stop")
                current = await self._replace(current, stop)
        finally:
            self._retire(current)
            await asyncio.gather(*self.retiring, return_exceptions=True)
            self.listener.close()

    async def _after_exit(self, dead: WebServer, stop: asyncio.Event) -> WebServer:
        ran = time.monotonic() - dead.started
        self.failures = 0 if dead.ready.is_set() else self.failures + 1
        delay = min(RESTART_BACKOFF_MAX_SECONDS, 0.5 * 2**self.failures) if self.failures else 0
        log.warning("web exited with %s after %.0fs; starting another in %.1fs (connections "
                    "wait meanwhile)", dead.process.returncode, ran, delay)
        await dead.hang_up()
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        return await self.start()

    async def _replace(self, current: WebServer, stop: asyncio.Event) -> WebServer:
        """Start a replacement beside ``current``; retire ``current`` once it is ready."""
        new = await self.start()
        why = await _first(ready=new.ready.wait(), exited=new.process.wait(),
                           stop=stop.wait(), timeout=asyncio.sleep(READY_TIMEOUT_SECONDS))
        if why == "ready":
            log.info("web (pid %d) ready with %d workers; retiring pid %d",
                     new.process.pid, len(new.ready_pids), current.process.pid)
            self._retire(current)
            return new
        log.error("replacement web (pid %d) did not become ready (%s); keeping pid %d",
                  new.process.pid, why, current.process.pid)
        self._retire(new)
        return current

    def _retire(self, server: WebServer) -> None:
        """Tell ``server`` to drain and exit; kill it if it has not after the grace."""
        task = asyncio.create_task(self._reap(server))
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    async def _reap(self, server: WebServer) -> None:
        await server.hang_up()
        if server.process.returncode is not None:
            return
        server.signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("web (pid %d) did not stop in %.0fs; killing it", server.process.pid,
                        STOP_GRACE_SECONDS)
        server.signal_group(signal.SIGKILL)  # stragglers such as gunicorn workers
        await server.process.wait()
        log.info("web (pid %d) stopped", server.process.pid)


async def _first(**waits: Awaitable[Any]) -> str:
    """The name of whichever awaitable finishes first (the others are cancelled)."""
    tasks = {asyncio.ensure_future(wait): name for name, wait in waits.items()}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return tasks[next(iter(done))]
