"""A real gunicorn web server (``python -m dashboard serve``) for integration tests.

``web_server(**settings)`` starts one on a free port, on the session's Redis under this
test's key prefix, with 2 workers (so limits and sessions must be shared through Redis),
and stops it (its whole process group) at teardown. Users are added to Redis before or
after the start with ``server.users``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard import auth
from dashboard.auth.users import UserStore
from streams.core.settings import PROJECT_ROOT, Settings
from streams.redis_server import free_port
from tests.browser.conftest import settings_env
from tests.conftest import TIMEOUT_SCALE
from tests.feedserver import feed_server  # noqa: F401 (a fixture of the pollers' tests)

SECRET = "integration-web-secret-0123456789"
PASSWORD = "test-password-1"


def form_nonce(client: httpx.Client, headers: dict[str, str] | None = None) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', client.get("/login", headers=headers).text)
    assert found, "no sign-in form"
    return found.group(1)


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD, target: str = "/",
            headers: dict[str, str] | None = None) -> httpx.Response:
    """Post the real sign-in form (fetched first, as a browser does)."""
    nonce = form_nonce(client, headers)
    return client.post("/login", data={"name": name, "password": password, "nonce": nonce,
                                       "next": target}, headers=headers)


@dataclass
class WebServer:
    settings: Settings
    users: UserStore
    log: Path
    process: subprocess.Popen[bytes] | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def client(self, **options: Any) -> httpx.Client:
        """An HTTP client with its own cookies (one browser), closed at teardown. It opens a
        connection per request: gunicorn closes idle keep-alive connections after 2 s, and
        a client reusing one it has not noticed closed would see a reset, not an answer."""
        made = httpx.Client(base_url=self.url, timeout=60 * TIMEOUT_SCALE,
                            limits=httpx.Limits(max_keepalive_connections=0), **options)
        self.clients.append(made)
        return made

    def signed_in(self, name: str, password: str = PASSWORD) -> httpx.Client:
        browser = self.client()
        reply = sign_in(browser, name, password)
        assert reply.status_code == 302, reply.text
        browser.get("/")  # the CSRF cookie comes with the first page
        return browser

    def start(self) -> None:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dashboard", "serve"], env=env, cwd=PROJECT_ROOT,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60 * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"web server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"web server not healthy:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def web_server(settings: Settings, tmp_path: Path, redis_factory: Any,
               ) -> Iterator[Callable[..., WebServer]]:
    """Factory: ``web_server(**setting_overrides)`` -> a started gunicorn WebServer."""
    started: list[WebServer] = []
    redis_factory()  # the factory's teardown deletes this test's keys

    def start(**overrides: Any) -> WebServer:
        configured = dataclasses.replace(settings, secret_key=SECRET, web_port=free_port(),
                                         web_workers=2, log_level="INFO", **overrides)
        server = WebServer(configured, auth.open_users(configured),
                           tmp_path / f"web-{len(started)}.log")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
        server.users.client.close()
