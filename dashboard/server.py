"""Serve the dashboard with gunicorn (a production server, never Flask's development one).

Each worker builds its own app (and Redis connection pool) after the fork. Threads per
worker let a slow response-time query and the quick live callbacks run side by side.

SIGTERM drains: the server stops accepting, answers every request already received (a
request arriving meanwhile on a kept-alive connection is answered with "Connection:
close"), then exits, within ``GRACEFUL_TIMEOUT_SECONDS``.

Under the launcher (`make run`) the listening socket belongs to the launcher, which hands
it to each web server it starts (``listen_fd``), and a pipe (``notify_fd``) carries two
messages back: ``ready <pid>`` from each worker once it can serve, and ``stopping <pid>``
from the master when it gets SIGTERM. Then the master keeps serving until the launcher's
replacement is ready and the launcher closes the pipe and signals again (or
``HANDOVER_TIMEOUT_SECONDS`` pass), so a restart never leaves the port without a server.
Connections that arrive in between wait in the socket's backlog; none is refused.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from streams.core.settings import Settings

log = logging.getLogger(__name__)

THREADS_PER_WORKER = 8
"""Threads per worker process. A worker runs Python one thread at a time, so the number of
workers (``web_workers``, one per core) sets the CPU pages get; the threads overlap Redis
round trips, password hashes and DuckDB queries (both release the interpreter) with other
requests. Not gevent: that work is CPU or C code that never yields to an event loop, so a
cooperative worker would run it strictly one request at a time."""
GRACEFUL_TIMEOUT_SECONDS = 30
"""How long SIGTERM waits for requests in flight (a cold response-times query can take
tens of seconds on a busy machine) before workers are killed."""
REQUEST_TIMEOUT_SECONDS = 120
"""Headroom over the slowest request on a very busy machine (history queries read the
history writer's files, never a whole history into the worker)."""
HANDOVER_TIMEOUT_SECONDS = 90
"""Longest a server asked to stop keeps serving while the launcher starts its replacement."""
LISTEN_BACKLOG = 2048
"""Connections the kernel queues while no worker accepts (during a replacement)."""
KEEPALIVE_SECONDS = 75
"""How long an idle kept-alive connection stays open. gunicorn's default (2 s) is shorter
than the pauses between a page's own requests (a tap every few seconds; a lagging client
or network): a request sent as the server closed the connection was lost ("Server
disconnected without sending a response", or a reset), 210 of them in 30 s under the web
benchmark. Longer than the 60 s idle timeout of common proxies and load balancers, so they
close first (the side that closes an idle connection never loses a request on it)."""


@dataclass(frozen=True)
class Handover:
    """File descriptors the launcher passes to a web server it supervises."""

    listen_fd: int | None = None
    """An already listening TCP socket to serve (shared by successive servers)."""
    notify_fd: int | None = None
    """Write end of a pipe to the launcher: "ready <pid>" and "stopping <pid>" lines."""


def notify(handover: Handover, message: str) -> bool:
    """Send one line to the launcher; False when there is no launcher listening."""
    if handover.notify_fd is None:
        return False
    try:
        # One short write to a pipe is atomic, so lines from several workers never mix.
        os.write(handover.notify_fd, f"{message} {os.getpid()}\n".encode())
    except OSError:
        return False
    return True


def gunicorn_options(settings: Settings, handover: Handover = Handover()) -> dict[str, Any]:
    """gunicorn settings derived from ours."""
    bind = (f"fd://{handover.listen_fd}" if handover.listen_fd is not None
            else f"{settings.web_host}:{settings.web_port}")
    return {
        "bind": bind,
        "backlog": LISTEN_BACKLOG,
        "workers": settings.web_workers,
        "worker_class": "gthread",
        "threads": THREADS_PER_WORKER,
        "keepalive": KEEPALIVE_SECONDS,
        "timeout": REQUEST_TIMEOUT_SECONDS,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "loglevel": settings.log_level.lower(),
        "errorlog": "-",
        "accesslog": None,
        "proc_name": "dispatch-web",
        "control_socket_disable": True,
        "worker_exit": exit_at_once,
    }


def exit_at_once(_arbiter: Any, _worker: Any) -> None:
    """End a worker as soon as it has finished its requests.

    Measured here: after its last request a worker's interpreter shutdown (C-level, past
    every thread and atexit hook) took 9-10 s, so every SIGTERM waited for the graceful
    timeout and ended in SIGKILL. Nothing is left to finalize: responses are sent and
    connections closed. Logs are flushed first.
    """
    logging.shutdown()
    os._exit(0)


class HandoverArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, which on SIGTERM under the launcher first asks for a replacement
    and keeps serving until it is ready (see the module docstring)."""

    handover: Handover = Handover()
    _until: float | None = None

    def handle_term(self) -> None:
        if self._until is None and notify(self.handover, "stopping"):
            self.log.info("SIGTERM: serving until the launcher's replacement is ready")
            self._until = time.monotonic() + HANDOVER_TIMEOUT_SECONDS
            return
        raise StopIteration

    def manage_workers(self) -> None:
        if self._until is not None and time.monotonic() > self._until:
            self.log.warning("no replacement after %ds; stopping", HANDOVER_TIMEOUT_SECONDS)
            raise StopIteration
        super().manage_workers()


class DashboardServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose workers each call ``create_app(settings)``."""

    def __init__(self, settings: Settings, handover: Handover = Handover()) -> None:
        self.settings = settings
        self.handover = handover
        super().__init__()

    def load_config(self) -> None:
        for name, value in gunicorn_options(self.settings, self.handover).items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def load(self) -> Any:
        from dashboard.app import create_app  # noqa: PLC0415 - after the fork, per worker

        app = create_app(self.settings)
        # Dash finishes its setup on a worker's first request; make that request here,
        # before gunicorn's threads can race through the setup together (seen as
        # "dictionary changed size during iteration" and a 500 on the first page load).
        app.server.test_client().get("/healthz")
        notify(self.handover, "ready")
        return app.server

    def run(self) -> None:
        arbiter = HandoverArbiter(self)
        arbiter.handover = self.handover
        try:
            arbiter.run()
        except RuntimeError as error:  # gunicorn's way of saying the config cannot work
            raise SystemExit(f"error: {error}") from None


def serve(settings: Settings, handover: Handover = Handover()) -> int:
    """Run gunicorn in the foreground until SIGTERM/SIGINT."""
    where = (f"inherited socket {handover.listen_fd}" if handover.listen_fd is not None
             else f"http://{settings.web_host}:{settings.web_port}/")
    log.info("dashboard on %s with %d workers", where, settings.web_workers)
    DashboardServer(settings, handover).run()
    return 0
