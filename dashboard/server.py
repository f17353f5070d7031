"""Serve the dashboard with gunicorn (a production server, never Flask's development one).

Each worker builds its own app (and Redis connection pool) after the fork. Threads per
worker let a slow response-time query and the quick live callbacks run side by side.
SIGTERM stops gunicorn gracefully: workers finish their requests, then exit.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from streams.core.settings import Settings

log = logging.getLogger(__name__)

THREADS_PER_WORKER = 8
GRACEFUL_TIMEOUT_SECONDS = 10
REQUEST_TIMEOUT_SECONDS = 120
"""Headroom over the slowest request: a /response or wall query that arrives while this
worker is still reading a million closed calls waits on that load (tens of seconds on a
busy machine) rather than being killed; the page itself polls instead of waiting."""


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """gunicorn settings derived from ours."""
    return {
        "bind": f"{settings.web_host}:{settings.web_port}",
        "workers": settings.web_workers,
        "worker_class": "gthread",
        "threads": THREADS_PER_WORKER,
        "timeout": REQUEST_TIMEOUT_SECONDS,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "loglevel": settings.log_level.lower(),
        "errorlog": "-",
        "accesslog": None,
        "proc_name": "dispatch-web",
        "control_socket_disable": True,
    }


class DashboardServer(BaseApplication):  # type: ignore[misc]
    """gunicorn application whose workers each call ``create_app(settings)``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for name, value in gunicorn_options(self.settings).items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def load(self) -> Any:
        from dashboard.app import create_app  # noqa: PLC0415 - after the fork, per worker

        app = create_app(self.settings)
        # Dash finishes its setup on a worker's first request; make that request here,
        # before gunicorn's threads can race through the setup together (seen as
        # "dictionary changed size during iteration" and a 500 on the first page load).
        app.server.test_client().get("/healthz")
        # Read the closed-calls history now, in the background, so the first response-
        # times request finds it warm (or shows progress) instead of paying for it.
        from dashboard import runtime  # noqa: PLC0415 - initialised by create_app

        runtime.reader().prefetch_closed_calls()
        return app.server


def serve(settings: Settings) -> int:
    """Run gunicorn in the foreground until SIGTERM/SIGINT."""
    log.info("dashboard on http://%s:%d/ with %d workers", settings.web_host,
             settings.web_port, settings.web_workers)
    DashboardServer(settings).run()
    return 0
