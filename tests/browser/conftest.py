"""Browser test harness: the real stack in subprocesses, driven by headless Chromium.

Fixtures:
- ``stack`` (session): consumer (`python -m streams consume`), push service
  (`python -m streams push`), history writer (`python -m streams history`) and web
  server (`python -m dashboard serve`, gunicorn) on the session's Redis under a unique
  key prefix, free ports, a temp data dir, a known secret and one test user per role.
  See ``Stack`` for what tests can use.
- ``browser`` (session): Playwright's Chromium from /usr/bin/chromium.
- ``page_for`` (per test): ``page_for(role, viewport=(w, h), path="/")`` signs in through
  the real form and opens ``path``; requests to other hosts (map tiles) are answered with
  a transparent pixel; at teardown every page's console errors and page errors must be
  none, and a screenshot goes to tests/artifacts/<test name>[-<n>-<role>].png.

Every test in this folder is marked ``browser`` and skipped only when /usr/bin/chromium is
missing (CI installs Debian's chromium).
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import redis

from dashboard import auth
from dashboard.readapi import LiveReader
from streams.core.access import User
from streams.core.events import Event, encode_event, source_of
from streams.core.keys import EVENT_FIELD, HISTORY_FIELD, RAW_STREAM_MAXLEN, Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.redis_server import free_port
from tests.conftest import ARTIFACTS, SHARED_DATA, TIMEOUT_SCALE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SECRET_KEY = "browser-tests-secret-key-0123456789abcdef"
ROLE_USERS: dict[str, User] = {
    "commander": User("commander", "commander"),
    "cso": User("cso-north", "cso", "North"),
    "sro": User("sro-south", "sro", "South"),
    "supervisor": User("supervisor", "supervisor"),
    "admin": User("admin", "admin"),
}
"""The user each role signs in as (cso and sro have a district)."""
START_TIMEOUT_S = 30 * TIMEOUT_SCALE
STOP_TIMEOUT_S = 10 * TIMEOUT_SCALE
UI_TIMEOUT_MS = int(15_000 * TIMEOUT_SCALE)
TRANSPARENT_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def password_of(name: str) -> str:
    """The known password of a test user."""
    return f"pw-{name}-browser"


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the DISPATCH_* / REDIS_URL variables ``Settings.from_env`` reads."""
    env = {}
    for spec in dataclasses.fields(Settings):
        value = getattr(settings, spec.name)
        if value is None:
            env[spec.metadata["env"]] = ""
        elif isinstance(value, bool):
            env[spec.metadata["env"]] = "true" if value else "false"
        elif isinstance(value, tuple):
            env[spec.metadata["env"]] = ",".join(str(part) for part in value)
        else:
            env[spec.metadata["env"]] = str(value)
    return env


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install chromium")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(skip)


@dataclass
class Stack:
    """The running system a browser test talks to."""

    settings: Settings
    """What every subprocess was started with (ports, key prefix, data dir, secret)."""
    keys: Keys
    redis: redis.Redis
    """A sync client on the stack's Redis (write raw events here, e.g. with publish)."""
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    @property
    def push_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.push_port}/live"

    @property
    def users(self) -> dict[str, User]:
        """role -> the user that role signs in as."""
        return ROLE_USERS

    def password(self, name: str) -> str:
        return password_of(name)

    def publish(self, events: Iterable[Event], history: bool = False) -> int:
        """XADD events to their raw streams (sync twin of streams.publish.publish: the
        Playwright sync API already runs an event loop in the test thread); ``history``
        marks old data, judged by the consumer's history window."""
        count = 0
        with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                source = source_of(event)
                fields = {EVENT_FIELD: encode_event(event)}
                if history:
                    fields[HISTORY_FIELD] = b"1"
                pipe.xadd(self.keys.raw_stream(source), fields,  # type: ignore[arg-type]
                          maxlen=RAW_STREAM_MAXLEN[source], approximate=True)
                count += 1
            pipe.execute()
        return count

    def publish_raw(self, source: str, payload: bytes) -> None:
        """XADD bytes that may not be a valid event (they should be dead-lettered)."""
        self.redis.xadd(self.keys.raw_stream(source), {EVENT_FIELD: payload})

    def commands(self) -> dict[str, list[str]]:
        python = sys.executable
        wanted = {
            "consumer": ("streams.consumer", [python, "-m", "streams", "consume",
                                              "--name", "browser-consumer"]),
            "push": ("streams.push", [python, "-m", "streams", "push"]),
            "history": ("streams.history", [python, "-m", "streams", "history"]),
            "web": ("dashboard.app", [python, "-m", "dashboard", "serve"]),
        }
        return {name: argv for name, (module, argv) in wanted.items()
                if importlib.util.find_spec(module) is not None}

    def start(self, name: str) -> None:
        """Start one process (consumer, push or web) and wait until it is ready."""
        log_file = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.commands()[name], env=self.env, cwd=PROJECT_ROOT, stdout=log_file,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()
        health = {"web": f"{self.base_url}/healthz",
                  "push": f"http://127.0.0.1:{self.settings.push_port}/healthz"}.get(name)
        if health:
            self._wait_healthy(name, health)

    def stop(self, name: str, signum: int = signal.SIGTERM) -> None:
        """Signal one process's whole group, then SIGKILL whatever is left (workers too)."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        _signal_group(process, signum)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process, signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_healthy(self, name: str, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running(name):
                raise RuntimeError(f"{name} exited at start:\n{self.log_text(name)[-3000:]}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy after {START_TIMEOUT_S}s:\n"
                           f"{self.log_text(name)[-3000:]}")


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Consumer, push service and gunicorn web server on free ports, one user per role."""
    data_dir = tmp_path_factory.mktemp("stack")
    settings = Settings(
        redis_url=redis_url, key_prefix=f"browser-{uuid.uuid4().hex[:10]}", data_dir=data_dir,
        shared_data_dir=SHARED_DATA, secret_key=SECRET_KEY, web_port=free_port(),
        push_port=free_port(), web_workers=2, consumer_block_ms=100, claim_idle_ms=500,
        simulate=False, log_level="INFO", history_flush_seconds=0.5)
    users = auth.open_users(settings)
    for user in ROLE_USERS.values():
        users.add(user.name, user.role, password_of(user.name), user.district)
    users.client.close()
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    logs = data_dir / "logs"
    logs.mkdir()
    client = redis.Redis.from_url(redis_url)
    running = Stack(settings, Keys(settings.key_prefix), client, env, logs)
    try:
        for name in running.commands():
            running.start(name)
        yield running
    finally:
        for name in list(running.processes):
            running.stop(name)
        for key in client.scan_iter(match=f"{settings.key_prefix}:*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), shared by the session."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_for_page(page: Any) -> None:
    """Wait until Dash has rendered the routed page's content."""
    page.wait_for_function(
        "() => { const c = document.getElementById('_pages_content');"
        " return c && c.children.length > 0 }", timeout=UI_TIMEOUT_MS)


def sign_in(page: Any, stack: Stack, name: str, password: str, path: str = "/") -> None:
    """Fill and submit the real sign-in form."""
    page.goto(f"{stack.base_url}/login?next={quote(path)}")
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_load_state("domcontentloaded")


@dataclass
class Opened:
    role: str | None
    page: Any
    errors: list[str]
    allowed: list[re.Pattern[str]]


class PageFactory:
    """``page_for(role, viewport=(w, h), path="/")`` -> a signed-in Playwright page."""

    def __init__(self, browser: Any, stack: Stack) -> None:
        self.browser = browser
        self.stack = stack
        self.opened: list[Opened] = []
        self.blocked_urls: list[str] = []

    def __call__(self, role: str | None, viewport: tuple[int, int] = (1280, 800),
                 path: str = "/", wait: bool = True, address: str | None = None) -> Any:
        """Sign in as ``role`` (or a user name; None: stay anonymous) and open ``path``;
        ``address`` is the client address the trusted proxy (loopback) reports for this
        browser (X-Forwarded-For), so a test of the sign-in limit locks only its own."""
        context = self.browser.new_context(viewport={"width": viewport[0],
                                                     "height": viewport[1]})
        if address:
            context.set_extra_http_headers({"X-Forwarded-For": address})
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.route("**/*", self._route)
        page = context.new_page()
        opened = Opened(role, page, [], [])
        page.on("console", lambda message: opened.errors.append(
            f"console: {message.text}") if message.type == "error" else None)
        page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))
        self.opened.append(opened)
        if role is None:
            page.goto(f"{self.stack.base_url}{path}")
            return page
        # A role, or the name of a user a test added (with password_of(name)).
        name = ROLE_USERS[role].name if role in ROLE_USERS else role
        sign_in(page, self.stack, name, password_of(name), path)
        assert urlsplit(page.url).path == path, f"sign-in as {name} ended on {page.url}"
        if wait:
            wait_for_page(page)
        return page

    def errors(self, page: Any) -> list[str]:
        """Console and page errors collected so far on ``page`` (minus allowed ones)."""
        for opened in self.opened:
            if opened.page is page:
                return [e for e in opened.errors
                        if not any(p.search(e) for p in opened.allowed)]
        raise KeyError("page was not opened by page_for")

    def allow_errors(self, page: Any, pattern: str) -> None:
        """Accept console errors matching ``pattern`` on ``page`` (e.g. a websocket drop
        while a test restarts the push service)."""
        for opened in self.opened:
            if opened.page is page:
                opened.allowed.append(re.compile(pattern))

    def _route(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in {"127.0.0.1", "localhost"} or route.request.url.startswith("data:"):
            route.continue_()
            return
        # Answer instead of aborting: an aborted tile would be a console error.
        self.blocked_urls.append(route.request.url)
        route.fulfill(status=200, content_type="image/png", body=TRANSPARENT_PNG)

    def finish(self, test_name: str) -> list[str]:
        """Screenshot every page, close them, and return their unexpected errors."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")
        problems = []
        for number, opened in enumerate(self.opened):
            suffix = "" if len(self.opened) == 1 else f"-{number}-{opened.role or 'anonymous'}"
            try:
                opened.page.screenshot(path=str(ARTIFACTS / f"{safe}{suffix}.png"))
            except Exception as error:  # noqa: BLE001 - a failed screenshot must not hide errors
                problems.append(f"screenshot failed: {error}")
            problems += [f"[{opened.role}] {e}" for e in self.errors(opened.page)]
            opened.page.context.close()
        return problems


@pytest.fixture
def page_for(browser: Any, stack: Stack, request: pytest.FixtureRequest,
             ) -> Iterator[Callable[..., Any]]:
    """Factory of signed-in pages; asserts no console errors and saves screenshots."""
    factory = PageFactory(browser, stack)
    yield factory
    problems = factory.finish(request.node.name)
    assert not problems, "browser console errors:\n" + "\n".join(problems)


def wait_until(condition: Callable[[], bool], what: str,
               seconds: float = 15 * TIMEOUT_SCALE) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def reader_of(stack: Stack) -> LiveReader:
    """A read API on the stack's Redis, as the web workers build it."""
    return LiveReader(stack.redis, stack.keys)
