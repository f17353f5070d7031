"""The production ACL (streams/deploy/redis-acl.txt) on Redis 7: every process runs its real
code under its own least-privilege user, and what a user has no business doing is refused
(issue 8 item 7). Starts its own Debian redis-server 7 (key permissions need 7)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import connect as ws_connect

from dashboard import auth
from dashboard.actionstore import ActionStore
from dashboard.audit import AuditLog
from dashboard.readapi import LiveReader
from streams.connections import connect
from streams.core.access import User
from streams.core.actions import Action, Actor
from streams.core.admission import admission_from_settings
from streams.core.audit import Actor as AuditActor
from streams.core.audit import AuditQuery
from streams.core.keys import Keys
from streams.core.settings import PROJECT_ROOT, Settings
from streams.core.signatures import sign
from streams.core.tokens import make_ws_token
from streams.redis_server import EmbeddedRedis, free_port
from streams.seed import should_seed
from streams.simulate import Publisher
from streams.webhook import WebhookApp
from tests.conftest import SHARED_DATA, TIMEOUT_SCALE
from tests.eventgen import generate_events
from tests.feedserver import FeedServer
from tests.integration.conftest import PASSWORD, WebServer
from tests.integration.test_backfill import SF_CSV
from tests.integration.test_backfill import run as backfill
from tests.integration.test_consumer import consume_until_drained
from tests.integration.test_history_writer import Writer, manifest
from tests.integration.test_poll import SODA_SETTINGS, first_poll_rows, live_mapping, sf_rows
from tests.integration.test_poll import poll as poll_once
from tests.integration.test_push import PushThread
from tests.integration.test_replay import DC_CSV
from tests.integration.test_replay import run as replay

ACL_FILE = PROJECT_ROOT / "streams" / "deploy" / "redis-acl.txt"
REDIS_7 = Path("/usr/bin/redis-server")
SECRET = "acl-test-secret-0123456789abcdef"
HOOK_SECRET = "acl-hook-secret"
KEYS = Keys("dispatch")  # the prefix the ACL file is written for

if not REDIS_7.exists():
    pytest.skip("needs Debian's redis-server 7 at /usr/bin/redis-server (ACL key "
                "permissions are Redis 7)", allow_module_level=True)


def acl_users() -> list[str]:
    return [line.split()[2] for line in ACL_FILE.read_text().splitlines()
            if line.startswith("ACL SETUSER") and line.split()[2] != "default"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """Redis 7 with the file's users (password "<user>-pw"), an admin user, default off."""
    running = EmbeddedRedis(tmp_path_factory.mktemp("acl"), free_port(), binary=str(REDIS_7),
                            appendonly=False, password="admin-pw").start()
    try:
        first = redis.Redis(port=running.port, password="admin-pw")
        first.execute_command("ACL", "SETUSER", "admin", "on", ">admin-pw", "~*", "&*",
                              "+@all")
        first.close()
        admin = admin_client(running)
        for line in ACL_FILE.read_text().splitlines():
            if line.startswith("ACL SETUSER"):
                user = line.split()[2]
                admin.execute_command(*line.replace("PASSWORD", f"{user}-pw").split())
        admin.close()
        yield running
    finally:
        running.stop()


@pytest.fixture
def admin(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """An admin client; the test's keys are flushed at teardown."""
    client = admin_client(server)
    yield client
    client.flushall()
    client.close()


def admin_client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(port=server.port, username="admin", password="admin-pw")


def url_of(server: EmbeddedRedis, user: str) -> str:
    return f"redis://{user}:{user}-pw@127.0.0.1:{server.port}/0"


def as_user(server: EmbeddedRedis, user: str, tmp_path: Path, **changes: Any) -> Settings:
    return Settings(redis_url=url_of(server, user), key_prefix=KEYS.prefix,
                    data_dir=tmp_path / "var", shared_data_dir=SHARED_DATA,
                    secret_key=SECRET, consumer_block_ms=100, claim_idle_ms=500, **changes)


def test_the_file_has_a_user_per_process_and_turns_default_off() -> None:
    """One user for each process main runs, and no connection without one."""
    assert acl_users() == ["consumer", "push", "web", "webhook", "history", "simulator",
                           "poller", "backfill"]
    assert "ACL SETUSER default off" in ACL_FILE.read_text()


def test_producers_and_the_consumer_run_under_their_users(
        server: EmbeddedRedis, admin: redis.Redis, tmp_path: Path,
        feed_server: tuple[FeedServer, str], caplog: pytest.LogCaptureFixture) -> None:
    """The simulator and a replay publish, a poller polls, the consumer applies all of it,
    the history writer files the closed calls, backfill and the history seed load and
    check history: each as its own user."""
    events = generate_events(71, calls=30, units=4, fixes_per_unit=6, alerts=2, shares=2)

    async def simulate() -> None:
        publisher = Publisher(url_of(server, "simulator"), KEYS)
        assert await publisher.send(events, asyncio.Event())
        await publisher.heartbeat(events[-1].event_time)
        assert publisher.client is not None
        await publisher.client.aclose()

    asyncio.run(simulate())
    assert admin.exists(KEYS.health("simulator"))
    assert replay(url_of(server, "simulator"), KEYS, "dc_shotspotter", [DC_CSV]).published

    feeds, base = feed_server
    mapping = live_mapping(tmp_path, "sf_fire_live.toml", f"{base}/resource/sf.json",
                           SODA_SETTINGS)
    feeds.soda_rows = first_poll_rows(sf_rows())
    assert poll_once(as_user(server, "poller", tmp_path), mapping) == 0
    assert admin.exists(KEYS.health("poll:sf-fire-live"))

    consumer = as_user(server, "consumer", tmp_path, max_event_age_seconds=40 * 365 * 86400)
    applied = asyncio.run(_consume_until_drained(consumer, admin))
    assert applied > len(events)
    assert admin.hlen(KEYS.calls) and admin.xlen(KEYS.closed) and admin.xlen(KEYS.changes)

    history = as_user(server, "history", tmp_path, history_flush_seconds=0.2)
    with Writer(history):
        _wait_for(lambda: manifest(history)["rows"] == admin.xlen(KEYS.closed),
                  "the history writer's files")
    assert admin.exists(KEYS.health("history"))

    sample = tmp_path / "sf_sample.csv"
    sample.write_text("".join(SF_CSV.read_text().splitlines(True)[:200]))
    closed_before = admin.xlen(KEYS.closed)
    assert backfill(url_of(server, "backfill"), KEYS, "sf_fire_calls", sample).loaded
    assert admin.xlen(KEYS.closed) > closed_before
    assert not should_seed(as_user(server, "backfill", tmp_path))  # closed calls exist
    assert "no permissions" not in caplog.text  # nothing refused and retried


def test_backfill_and_history_reach_every_partition_under_their_users(
        server: EmbeddedRedis, admin: redis.Redis, tmp_path: Path) -> None:
    """With 3 partitions, backfill writes each call's record and closed id in its partition
    and the history writer files every partition's closed stream, each as its own user."""
    keys = Keys(KEYS.prefix, 3)
    sample = tmp_path / "sf_sample.csv"
    sample.write_text("".join(SF_CSV.read_text().splitlines(True)[:200]))
    loaded = backfill(url_of(server, "backfill"), keys, "sf_fire_calls", sample).loaded
    assert loaded and all(admin.xlen(part.closed) for part in keys.every_partition)
    history = as_user(server, "history", tmp_path, history_flush_seconds=0.2, partitions=3)
    with Writer(history):
        _wait_for(lambda: manifest(history)["rows"] == loaded, "every partition's records")


def test_producers_and_the_consumer_reach_every_partition_under_their_users(
        server: EmbeddedRedis, admin: redis.Redis, tmp_path: Path) -> None:
    """With 3 partitions the simulator publishes to each entity's partition and the
    consumer applies every partition, registering and recording the count, as their users."""
    keys = Keys(KEYS.prefix, 3)
    events = generate_events(73, calls=30, units=4, fixes_per_unit=6, alerts=2, shares=2)
    for key in admin.scan_iter(match=f"{KEYS.prefix}:*"):  # a new deployment: 3 from the start
        admin.delete(key)

    async def simulate() -> None:
        publisher = Publisher(url_of(server, "simulator"), keys)
        assert await publisher.send(events, asyncio.Event())
        assert publisher.client is not None
        await publisher.client.aclose()

    asyncio.run(simulate())
    consumer = as_user(server, "consumer", tmp_path, partitions=3)
    assert asyncio.run(_consume_until_drained(consumer, admin)) == len(events)
    assert all(admin.hlen(part.calls) and admin.xlen(part.changes)
               for part in keys.every_partition)
    assert admin.get(keys.partition_count) == b"3"


async def _consume_until_drained(settings: Settings, admin: redis.Redis) -> int:
    counters = await consume_until_drained(settings, admin, "consumer-acl")
    assert admin.exists(KEYS.health("consumer-acl"))
    return counters.applied


def _wait_for(check: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds * TIMEOUT_SCALE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_web_push_and_webhook_run_under_their_users(
        server: EmbeddedRedis, admin: redis.Redis, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The real web server signs a user in and out, the web's reads, tablet actions and
    audit trail work, push serves a signed-in page its snapshot, and the webhook takes a
    signed alert: each as its own user."""
    events = generate_events(72, calls=40, units=3, fixes_per_unit=2, alerts=1, shares=1)
    asyncio.run(_publish_and_consume(server, admin, tmp_path, events))

    web_settings = dataclasses.replace(as_user(server, "web", tmp_path), web_port=free_port(),
                                       web_workers=1)
    web = WebServer(web_settings, auth.open_users(web_settings), tmp_path / "web.log")
    web.users.add("supervisor-acl", "supervisor", PASSWORD, None)
    try:
        web.start()
        browser = web.signed_in("supervisor-acl")
        assert browser.get("/").status_code == 200
        assert len(_sessions(admin)) == 1
        out = browser.post("/logout", data={"csrf": browser.cookies["_csrf_token"]})
        assert out.status_code == 302 and _sessions(admin) == [], out.text
        assert "no permissions" not in web.log_text()
    finally:
        web.stop()
        web.users.client.close()

    client = redis.Redis.from_url(url_of(server, "web"))
    try:
        reader = LiveReader(client, KEYS)
        open_calls = reader.open_calls()
        assert open_calls and len(reader.units()) == 3
        assert reader.snapshot() and reader.heartbeats() is not None
        reader.deadletters()
        call = reader.open_calls(qol_only=True)[0]  # tablets act on quality-of-life calls
        answer, _ = ActionStore(client, KEYS).apply(
            Action(id="acl-claim-1", call_id=str(call["call_id"]), kind="claim"),
            Actor("cso-acl", "cso", str(call.get("district") or "North")))
        assert answer["status"] == "applied", answer
        audit = AuditLog(client, KEYS, 86400.0)
        audit.append("call_detail", AuditActor("cso-acl", "cso", "North", "127.0.0.1"),
                     str(call["call_id"]))
        found = audit.search(AuditQuery(action="call_detail"),
                             AuditActor("admin-acl", "admin", None, "127.0.0.1"))
        assert len(found.entries) == 1
        sessions = auth.open_users(dataclasses.replace(web_settings)).sessions
        user = User("commander-acl", "commander", None)
        _, session = sessions.create(user, "password", "127.0.0.1", "test")
    finally:
        client.close()

    push = PushThread(as_user(server, "push", tmp_path, push_host="127.0.0.1")).start()
    try:
        token = make_ws_token(SECRET, user.name, user.role, None, sid=session.sid)
        with ws_connect(f"ws://127.0.0.1:{push.port}/live?token={token}",
                        open_timeout=10 * TIMEOUT_SCALE) as page:
            assert json.loads(page.recv(timeout=10 * TIMEOUT_SCALE))["type"] == "snapshot"
    finally:
        push.stop()
    assert any(entry[b"action"] == b"socket_open"
               for _, entry in admin.xrange(KEYS.audit))

    assert asyncio.run(_post_alert(url_of(server, "webhook"))) == 202
    assert admin.xlen(KEYS.raw_stream("shotspotter")) > 0
    assert "no permissions" not in caplog.text


def _sessions(admin: redis.Redis) -> list[bytes]:
    return list(admin.scan_iter(match=KEYS.session("*")))


async def _publish_and_consume(server: EmbeddedRedis, admin: redis.Redis, tmp_path: Path,
                               events: list[Any]) -> None:
    publisher = Publisher(url_of(server, "simulator"), KEYS)
    assert await publisher.send(events, asyncio.Event())
    assert publisher.client is not None
    await publisher.client.aclose()
    await _consume_until_drained(as_user(server, "consumer", tmp_path), admin)


async def _post_alert(url: str) -> int:
    body = json.dumps({"id": "ACL-1", "type": "Single Gunshot", "rounds": 1,
                       "lat": 41.7637, "lon": -72.6851,
                       "detected_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                       }).encode()
    stamp = int(time.time())
    client = await connect(url)
    try:
        app = WebhookApp(HOOK_SECRET, client, KEYS, admission_from_settings(
            Settings(shared_data_dir=SHARED_DATA)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://webhook") as http:
            reply = await http.post("/shotspotter", content=body, headers={
                "X-Timestamp": str(stamp), "Content-Type": "application/json",
                "X-Signature": "sha256=" + sign(HOOK_SECRET, stamp, body)})
        return reply.status_code
    finally:
        await client.aclose()


RAW = "dispatch:stream:cad"
REFUSED = [
    *[(user, ("CONFIG", "GET", "dir")) for user in acl_users()],
    *[(user, ("FLUSHALL",)) for user in acl_users()],
    *[(user, ("KEYS", "*")) for user in acl_users()],
    *[(user, ("ACL", "LIST")) for user in acl_users()],
    ("web", ("XADD", RAW, "*", "event", "{}")),
    ("web", ("HSET", "dispatch:calls", "C1", "{}")),
    ("web", ("XREAD", "STREAMS", RAW, "0")),
    ("push", ("HSET", "dispatch:calls", "C1", "{}")),
    ("push", ("XADD", RAW, "*", "event", "{}")),
    ("push", ("HGETALL", "dispatch:{auth}:user:supervisor")),
    ("push", ("XRANGE", "dispatch:stream:audit", "-", "+")),
    ("consumer", ("HGETALL", "dispatch:{auth}:user:supervisor")),
    ("consumer", ("XRANGE", "dispatch:stream:changes", "-", "+")),
    ("consumer", ("XADD", "dispatch:stream:audit", "*", "a", "b")),
    ("simulator", ("HGET", "dispatch:calls", "C1")),
    ("simulator", ("XRANGE", RAW, "-", "+")),
    ("simulator", ("XADD", "dispatch:stream:changes", "*", "batch", "[]")),
    ("poller", ("HGET", "dispatch:calls", "C1")),
    ("poller", ("XADD", "dispatch:stream:closed", "*", "call_id", "X")),
    ("webhook", ("XADD", RAW, "*", "event", "{}")),
    ("webhook", ("HGETALL", "dispatch:calls")),
    ("history", ("XADD", "dispatch:stream:closed", "*", "call_id", "X")),
    ("history", ("HGETALL", "dispatch:calls")),
    ("backfill", ("HGETALL", "dispatch:calls")),
    ("backfill", ("XADD", RAW, "*", "event", "{}")),
    ("backfill", ("DEL", "dispatch:stream:closed")),
]


@pytest.mark.parametrize(("user", "command"), REFUSED,
                         ids=[f"{user}-{' '.join(command[:2])}" for user, command in REFUSED])
def test_what_a_user_may_not_do_is_refused(server: EmbeddedRedis, user: str,
                                           command: tuple[str, ...]) -> None:
    """NOPERM outside a user's job: no CONFIG, FLUSHALL, KEYS or ACL for anyone (only an
    admin of your own), no raw feed writes by the web, push or webhook, no live-state
    writes but the consumer's, no reading live state by producers."""
    client = redis.Redis(port=server.port, username=user, password=f"{user}-pw")
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    finally:
        client.close()


def test_the_default_user_is_off(server: EmbeddedRedis) -> None:
    """Without a user name (the default user, even with the old password) nothing works."""
    client = redis.Redis(port=server.port, password="admin-pw")
    try:
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            client.ping()
    finally:
        client.close()
