"""The launcher's web supervisor stops a server at once when the launcher stops: the
server's pipe is closed before its SIGTERM, so it never waits for a replacement.

A stand-in server speaks the handover protocol of ``dashboard.server`` (a real process, a
real pipe and real signals) without the cost of gunicorn and the app."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from streams import web_supervisor
from streams.redis_server import free_port
from tests.conftest import TIMEOUT_SCALE

STAND_IN = r"""
import os, signal, sys, time
notify = int(sys.argv[sys.argv.index("--notify-fd") + 1])
marker = sys.argv[1]

def on_term(*_):
    try:
        os.write(notify, b"stopping %d\n" % os.getpid())
    except BrokenPipeError:
        sys.exit(0)  # the launcher hung up: stop at once, as dashboard.server does
    open(marker, "w").write("waited for a replacement")

signal.signal(signal.SIGTERM, on_term)
os.write(notify, b"ready %d\n" % os.getpid())
while True:
    time.sleep(0.05)
"""


def test_stopping_hangs_up_before_sigterm_so_the_server_exits_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "handover"
    open_at_sigterm: list[bool] = []
    signal_group = web_supervisor.WebServer.signal_group

    def recording(server: web_supervisor.WebServer, signum: int) -> None:
        if signum == signal.SIGTERM:
            open_at_sigterm.append(not server.transport.get_extra_info("pipe").closed)
        signal_group(server, signum)

    monkeypatch.setattr(web_supervisor.WebServer, "signal_group", recording)
    supervisor = web_supervisor.WebSupervisor(
        [sys.executable, "-c", STAND_IN, str(marker)], {}, "127.0.0.1", free_port(), 1)

    async def serve_then_stop() -> float:
        stop, restart = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(supervisor.run(stop, restart))
        await asyncio.sleep(1.0 * TIMEOUT_SCALE)  # the stand-in is up and said ready
        stopped_at = time.monotonic()
        stop.set()
        await asyncio.wait_for(running, 20 * TIMEOUT_SCALE)
        return time.monotonic() - stopped_at

    took = asyncio.run(serve_then_stop())
    assert open_at_sigterm == [False]
    assert not marker.exists()
    assert took < web_supervisor.STOP_GRACE_SECONDS / 2
