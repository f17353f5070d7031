"""`python -m streams up`: the whole system in one command, for `make run`.

Starts the embedded Redis (unless REDIS_URL names one), seeds simulated history on an
empty Redis (streams/seed.py), then the consumer, simulators, push service, history
writer, web server and (when configured) the gunshot webhook as child processes.
A child that dies is restarted with backoff; so is the embedded Redis, which reloads its
AOF, so a Redis restart loses nothing. The web server is replaced without a gap (its socket
stays open; see ``streams.web_supervisor``): when it dies, when it is sent SIGTERM, and on
SIGHUP to the launcher (a deploy). Ctrl-C or SIGTERM stops every child, Redis last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import redis

from streams.core.settings import Settings, redacted
from streams.redis_server import EmbeddedRedis

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0
"""A child that ran this long before dying is restarted at once, not with backoff."""


@dataclass
class Child:
    """One supervised process: its command, and how often it has been restarted."""

    name: str
    argv: list[str]
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = field(default=0)


def load_or_create_secret(settings: Settings) -> str:
    """The configured secret, else one kept in the data dir so sessions survive restarts."""
    if settings.secret_key:
        return settings.secret_key
    return _kept_secret(settings.data_dir / "secret_key")


def load_or_create_redis_password(settings: Settings) -> str:
    """The embedded Redis's password: generated once, kept 0600 beside the secret key (so
    the AOF's data stays reachable across restarts, and an operator can `cat` it)."""
    return _kept_secret(settings.redis_password_file)


def private_data_dir(settings: Settings) -> None:
    """The data dir (AOF, secrets, users, history files) is its owner's alone: 0700."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)


def _kept_secret(path: Path) -> str:
    """A random secret kept in ``path`` (0600), made on the first call."""
    if path.exists():
        path.chmod(0o600)  # a file from before this rule, or copied in by hand
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


def child_commands(settings: Settings) -> list[Child]:
    """The processes `make run` supervises, as argv lists of real entry points."""
    python = sys.executable
    children = [
        Child("consumer", [python, "-m", "streams", "consume"]),
        Child("push", [python, "-m", "streams", "push"]),
        Child("history", [python, "-m", "streams", "history"]),
        Child("web", [python, "-m", "dashboard", "serve"]),
    ]
    if settings.simulate:
        children.append(Child("simulator", [python, "-m", "streams", "simulate",
                                            "--warmup-hours", "6"]))
    for number, mapping in enumerate(settings.poll_mappings, start=1):
        children.append(Child(f"poll-{number}", [python, "-m", "streams", "poll",
                                                 "--mapping", str(mapping)]))
    if settings.webhook_secret:
        children.append(Child("webhook", [python, "-m", "streams", "webhook"]))
    return children


def child_environment(settings: Settings, redis_url: str, secret: str) -> dict[str, str]:
    """Environment for children: ours, plus the Redis URL and secret they must share."""
    env = dict(os.environ)
    env.update({"REDIS_URL": redis_url, "DISPATCH_SECRET_KEY": secret,
                "DISPATCH_DATA_DIR": str(settings.data_dir), "PYTHONUNBUFFERED": "1"})
    return env


class Supervisor:
    """Starts children, restarts the ones that die, stops them all on request."""

    def __init__(self, children: list[Child], env: Mapping[str, str],
                 redis: EmbeddedRedis | None) -> None:
        self.children = children
        self.env = dict(env)
        self.redis = redis

    async def start(self, child: Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            *child.argv, env=self.env, start_new_session=True, stdin=asyncio.subprocess.DEVNULL)
        child.started = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.process.pid)

    async def watch(self, child: Child, stop: asyncio.Event) -> None:
        """Keep one child running until ``stop`` is set."""
        while not stop.is_set():
            await self.start(child)
            assert child.process is not None
            waiter = asyncio.ensure_future(child.process.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set():
                waiter.cancel()
                return
            ran = time.monotonic() - child.started
            child.failures = 0 if ran > HEALTHY_RUN_SECONDS else child.failures + 1
            delay = min(RESTART_BACKOFF_MAX_SECONDS, 0.5 * 2**child.failures)
            log.warning("%s exited with %s after %.0fs; restarting in %.1fs",
                        child.name, child.process.returncode, ran, delay)
            await _sleep_unless(stop, delay)

    async def watch_redis(self, stop: asyncio.Event) -> None:
        """Restart the embedded Redis if it dies; its AOF brings the state back."""
        if self.redis is None:
            return
        while not stop.is_set():
            await _sleep_unless(stop, 1.0)
            process = self.redis.process
            if stop.is_set() or process is None or process.poll() is None:
                continue
            log.warning("embedded redis exited with %s; restarting it", process.returncode)
            try:
                await asyncio.to_thread(self.redis.start)
            except (RuntimeError, OSError) as error:
                log.error("embedded redis did not restart: %s", error)

    async def stop_all(self) -> None:
        """SIGTERM each child's process group, then SIGKILL what is left after the grace."""
        running = [c for c in self.children if c.process and c.process.returncode is None]
        for child in running:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in running:
            assert child.process is not None
            try:
                await asyncio.wait_for(child.process.wait(),
                                       max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("%s did not stop in %.0fs; killing it", child.name,
                            STOP_GRACE_SECONDS)
                _signal_group(child, signal.SIGKILL)
                await child.process.wait()
            _signal_group(child, signal.SIGKILL)  # stragglers such as gunicorn workers
        log.info("all children stopped")


def _signal_group(child: Child, signum: int) -> None:
    if child.process is None:
        return
    try:
        os.killpg(child.process.pid, signum)
    except ProcessLookupError:
        pass


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def print_welcome(settings: Settings, redis_url: str, embedded: bool = False) -> None:
    """Tell the person at the terminal where to go and how to sign in."""
    lines = [
        "",
        f"  Hartford dispatch dashboard: http://{settings.web_host}:{settings.web_port}/",
        *redis_lines(settings, redis_url, embedded),
    ]
    credentials = settings.data_dir / "demo-credentials.txt"
    if credentials.exists():
        lines.append(f"  Demo sign-ins (from {credentials}):")
        lines += [f"    {line}" for line in credentials.read_text().splitlines() if line]
    lines += ["  Add a user: .venv/bin/python -m dashboard adduser NAME --role ROLE",
              f"  Restart the web server without a gap: kill -HUP {os.getpid()}", "",
              "  Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


def redis_lines(settings: Settings, redis_url: str, embedded: bool) -> list[str]:
    """Where Redis is, without its password, and how to open redis-cli on it."""
    shown = redacted(redis_url)
    if embedded and shown != redis_url:  # its password is kept in a file
        return [f"  Redis: {shown} (password in {settings.redis_password_file})",
                f"  redis-cli: REDISCLI_AUTH=\"$(cat {settings.redis_password_file})\" "
                f"redis-cli -p {settings.embedded_redis_port}"]
    return [f"  Redis: {shown}"]


async def run_up(settings: Settings, stop: asyncio.Event) -> int:
    """Run the whole system until ``stop`` is set."""
    redis = None
    redis_url = settings.redis_url
    private_data_dir(settings)
    if redis_url is None:
        redis = EmbeddedRedis(settings.data_dir / "redis", settings.embedded_redis_port,
                              password=load_or_create_redis_password(settings))
        await asyncio.to_thread(redis.start)
        redis_url = redis.url
    try:
        secret = load_or_create_secret(settings)
        settings = replace(settings, redis_url=redis_url, secret_key=secret)
        _ensure_demo_users(settings)
        from streams.web_supervisor import WebSupervisor  # noqa: PLC0415 - only `up` needs it

        if await asyncio.to_thread(_should_seed, settings):
            # Beside the live feeds, so the dashboard is up at once; asked first, so the
            # live simulator's first closed calls do not look like existing history.
            threading.Thread(target=_seed_history, args=(settings,), name="seed-history",
                             daemon=True).start()
        env = child_environment(settings, redis_url, secret)
        children = child_commands(settings)
        web = next(child for child in children if child.name == "web")
        web_supervisor = WebSupervisor(web.argv, env, settings.web_host, settings.web_port,
                                       settings.web_workers)
        supervisor = Supervisor([c for c in children if c is not web], env, redis)
        print_welcome(settings, redis_url, embedded=redis is not None)
        restart_web = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, restart_web.set)
        watchers = [asyncio.create_task(supervisor.watch(c, stop)) for c in supervisor.children]
        watchers.append(asyncio.create_task(supervisor.watch_redis(stop)))
        watchers.append(asyncio.create_task(web_supervisor.run(stop, restart_web)))
        await stop.wait()
        log.info("stopping")
        # The web server drains while the other children stop.
        await asyncio.gather(*watchers, supervisor.stop_all(), return_exceptions=True)
    finally:
        if redis is not None:
            await asyncio.to_thread(redis.stop)
            log.info("embedded redis stopped")
    return 0


def _should_seed(settings: Settings) -> bool:
    from streams.seed import should_seed  # noqa: PLC0415 - only under make run

    try:
        return should_seed(settings)
    except redis.RedisError as error:
        log.error("cannot tell whether to seed history: %s", error)
        return False


def _seed_history(settings: Settings) -> None:
    """Weeks of simulated history on an empty Redis (streams/seed.py says when)."""
    from streams.seed import seed_history  # noqa: PLC0415 - only under make run

    try:
        seed_history(settings, checked=True)
    except (OSError, RuntimeError, ValueError, redis.RedisError) as error:
        log.error("seeding history failed (the dashboard starts without it): %s", error)


def _ensure_demo_users(settings: Settings) -> None:
    # The launcher sits above both halves, so it may reach into the dashboard package.
    from dashboard.auth import ensure_demo_users  # noqa: PLC0415

    ensure_demo_users(settings)
