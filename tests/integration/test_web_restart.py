"""Graceful web restarts under load: signed-in clients keep getting answers, none fails,
while the launcher replaces its web server (real `python -m streams up`, real gunicorn)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from streams.redis_server import free_port
from tests.conftest import SHARED_DATA, TIMEOUT_SCALE

CLIENTS = 12
LONGEST_SILENCE_S = 3.0 * TIMEOUT_SCALE
"""No stretch this long may pass without some client getting an answer: no gap."""


@dataclass
class Load:
    """Signed-in clients, each asking for pages and the app's layout as fast as answered."""

    base_url: str
    password: str
    stop: threading.Event = field(default_factory=threading.Event)
    answered: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        # Signed in one after another: every client comes from this one address, and the
        # sign-in gate counts an attempt in flight as a failure until its password checks.
        clients = []
        for _ in range(CLIENTS):
            client = httpx.Client(base_url=self.base_url, timeout=60 * TIMEOUT_SCALE)
            sign_in(client, "supervisor", self.password)
            clients.append(client)
        for client in clients:
            thread = threading.Thread(target=self._client, args=(client,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _client(self, client: httpx.Client) -> None:
        try:
            paths = ("/_dash-layout", "/healthz", "/")
            number = 0
            while not self.stop.is_set():
                path = paths[number % len(paths)]
                number += 1
                try:
                    reply = client.get(path)
                except httpx.HTTPError as error:
                    self.failures.append(f"{path}: {type(error).__name__}: {error}")
                    time.sleep(0.1)  # as a page retrying would, not a spin
                    continue
                if reply.status_code != 200:
                    self.failures.append(f"{path}: HTTP {reply.status_code}")
                else:
                    self.answered.append(time.monotonic())
        finally:
            client.close()

    def longest_silence(self, start: float, end: float) -> float:
        """Longest time within [start, end] in which no request was answered."""
        times = sorted(t for t in self.answered if start <= t <= end)
        edges = [start, *times, end]
        return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def sign_in(client: httpx.Client, name: str, password: str, tries: int = 10) -> None:
    """Sign in, waiting as told while the shared hash budget is spent (503 Retry-After)."""
    for _ in range(tries):
        form = client.get("/login").text
        nonce = re.search(r'name="nonce" value="([^"]+)"', form)
        assert nonce, form
        reply = client.post("/login", data={"name": name, "password": password,
                                            "nonce": nonce.group(1), "next": "/"})
        if reply.status_code != 503:
            break
        time.sleep(float(reply.headers.get("Retry-After", "1")))
    assert reply.status_code == 302, reply.text


def children(pid: int) -> dict[int, str]:
    """pid -> command line of each child of ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(
                    b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


def web_masters(launcher: int) -> list[int]:
    return [pid for pid, line in children(launcher).items() if "dashboard serve" in line]


def wait_for(condition: object, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def launched(redis_url: str, key_prefix: str, tmp_path: Path) -> Iterator[tuple[int, str, str]]:
    """`python -m streams up` (no simulator) on the test Redis: (pid, web URL, password)."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "DISPATCH_KEY_PREFIX": key_prefix,
           "DISPATCH_DATA_DIR": str(tmp_path / "var"), "DISPATCH_SHARED_DATA": str(SHARED_DATA),
           "DISPATCH_WEB_PORT": str(port), "DISPATCH_PUSH_PORT": str(free_port()),
           "DISPATCH_WEB_WORKERS": "2", "DISPATCH_SIMULATE": "false"}
    with (tmp_path / "up.log").open("wb") as log:
        launcher = subprocess.Popen([sys.executable, "-m", "streams", "up"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), "the web server", 60)
        credentials = (tmp_path / "var" / "demo-credentials.txt").read_text()
        found = re.search(r"^supervisor\s+password (\S+)", credentials, re.M)
        assert found
        yield launcher.pid, url, found.group(1)
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(60 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        for pid in processes_mentioning(str(tmp_path)):  # e.g. left by a launcher that died
            os.kill(pid, signal.SIGKILL)


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or environment contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen:
            found.append(int(entry.name))
    return found


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def replace_and_watch(load: Load, launcher: int, send: object) -> tuple[float, float]:
    """Run ``send()`` (a signal), wait until another web server serves and the old one has
    exited, then a little longer; returns (sent at, old one gone at)."""
    old = web_masters(launcher)
    assert len(old) == 1
    sent = time.monotonic()
    send()  # type: ignore[operator]
    wait_for(lambda: web_masters(launcher) and old[0] not in web_masters(launcher),
             "the old web server to exit and a new one to serve", 120)
    gone = time.monotonic()
    time.sleep(1.0)
    return sent, gone


def assert_no_gap(load: Load, sent: float, gone: float) -> None:
    assert load.failures == [], f"{len(load.failures)} failed: {load.failures[:5]}"
    silence = load.longest_silence(sent, gone)
    assert silence < LONGEST_SILENCE_S, f"no answer for {silence:.1f} s"
    assert sum(sent <= t <= gone for t in load.answered) > 10


def test_web_restarts_drain_and_leave_no_gap(launched: tuple[int, str, str]) -> None:
    """SIGTERM to the web server, then SIGHUP to the launcher (a deploy): each time a new
    server takes over, the old one drains, no request fails and answers never stop."""
    launcher, url, password = launched
    load = Load(url, password)
    load.start()
    try:
        wait_for(lambda: len(load.answered) > 50, "the load to run", 30)
        old = web_masters(launcher)[0]
        assert_no_gap(load, *replace_and_watch(
            load, launcher, lambda: os.kill(old, signal.SIGTERM)))
        assert_no_gap(load, *replace_and_watch(
            load, launcher, lambda: os.kill(launcher, signal.SIGHUP)))
    finally:
        load.finish()
