"""The websocket push service against a real Redis and real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from dashboard.auth.sessions import SessionStore
from streams.clients import async_client, sync_client
from streams.core import audit as audit_rules
from streams.core import pushview
from streams.core.access import User
from streams.core.keys import Keys
from streams.core.sessions import RoleTable
from streams.core.settings import PROJECT_ROOT, Settings
from streams.core.tokens import make_ws_token
from streams.push import PushService
from streams.redis_server import EmbeddedRedis, free_port
from tests.conftest import TIMEOUT_SCALE, close_client

SECRET = "push-test-secret"
WAIT = 10 * TIMEOUT_SCALE


class PushThread:
    """A PushService running on its own event loop in a background thread."""

    def __init__(self, settings: Settings, port: int = 0, **options: Any) -> None:
        self.settings, self.requested_port, self.options = settings, port, options
        self.service: PushService | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # surfaced to the test by start()
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with PushService(self.settings, port=self.requested_port,
                               **self.options) as service:
            self.service = service
            self._ready.set()
            await self._stop.wait()

    def start(self) -> PushThread:
        self._thread.start()
        assert self._ready.wait(WAIT), "push service did not start"
        if self._error:
            raise self._error
        return self

    @property
    def port(self) -> int:
        assert self.service is not None
        return self.service.port

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "push service did not stop"


@pytest.fixture
def push_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, secret_key=SECRET, push_host="127.0.0.1")


@pytest.fixture
def start_push(push_settings: Settings) -> Iterator[Callable[..., PushThread]]:
    """Start push services for the test; all are stopped at teardown."""
    started: list[PushThread] = []

    def start(port: int = 0, settings: Settings | None = None, **options: Any) -> PushThread:
        service = PushThread(settings or push_settings, port, **options).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


_STORES: list[SessionStore] = []
"""The session store tokens get a session from: the test Redis's unless a test says."""


def session_store(client: redis.Redis, keys: Keys, idle_minutes: str = "*=60",
                  ) -> SessionStore:
    """The dashboard's own session store (sessions as sign-in makes them)."""
    return SessionStore(client, keys, RoleTable.parse(idle_minutes), RoleTable.parse("*=12"))


@pytest.fixture(autouse=True)
def sessions(r: redis.Redis, keys: Keys) -> Iterator[SessionStore]:
    store = session_store(r, keys)
    _STORES[:] = [store]
    yield store
    _STORES.clear()


def signed_in(role: str = "commander", district: str | None = None, user: str | None = None,
              store: SessionStore | None = None) -> tuple[str, str]:
    """(session id, websocket token) of a fresh session, as /auth/ws-token gives them."""
    name = user or f"{role}-user"
    _, session = (store or _STORES[0]).create(User(name, role, district), "password",
                                              "127.0.0.1", "test")
    return session.sid, make_ws_token(SECRET, name, role, district, sid=session.sid)


def token(role: str = "commander", district: str | None = None,
          user: str | None = None, store: SessionStore | None = None) -> str:
    return signed_in(role, district, user, store)[1]


def open_client(port: int, role: str = "commander", since: str | None = None,
                district: str | None = None, store: SessionStore | None = None,
                **options: Any) -> ClientConnection:
    url = f"ws://127.0.0.1:{port}/live?token={token(role, district, store=store)}"
    if since:
        url += f"&since={since}"
    return connect(url, max_size=None, open_timeout=WAIT, **options)


def receive(client: ClientConnection, applying: bool = False) -> dict[str, Any]:
    """The next message (skipping ``applying`` ones unless asked for: tests of deltas
    and pings run without a consumer, whose partitions push reports unapplied)."""
    while True:
        message = json.loads(client.recv(timeout=WAIT))
        assert isinstance(message, dict)
        if applying or message["type"] != "applying":
            return message


def call_change(index: int, **extra: Any) -> dict[str, Any]:
    call_id = f"C{index}"
    data = {"call_id": call_id, "status": "pending", "priority": 3, "address": f"{index} Main St",
            "caller_name": "Pat Doe", "caller_phone": "860-555-0100", **extra}
    return {"entity": "call", "op": "upsert", "id": call_id, "data": data}


def write_changes(r: redis.Redis, keys: Keys, changes: list[dict[str, Any]],
                  per_entry: int = 1) -> list[str]:
    """XADD changes to the changes stream like the consumer does; return the entry ids."""
    pipe = r.pipeline(transaction=False)
    for start in range(0, len(changes), per_entry):
        pipe.xadd(keys.changes, {"batch": json.dumps(changes[start:start + per_entry])})
    return [entry_id.decode() for entry_id in pipe.execute()]


def collect_changes(client: ClientConnection, expected: int) -> tuple[list[dict[str, Any]], int]:
    """Deltas until ``expected`` changes arrived: (changes, how many messages carried them)."""
    changes: list[dict[str, Any]] = []
    messages = 0
    deadline = time.monotonic() + WAIT
    while len(changes) < expected and time.monotonic() < deadline:
        message = receive(client)
        if message["type"] == "delta" and message["changes"]:
            changes.extend(message["changes"])
            messages += 1
    return changes, messages


def test_healthz_answers_ok(start_push: Callable[..., PushThread]) -> None:
    """GET /healthz on the push port answers 200 ok."""
    push = start_push()
    reply = httpx.get(f"http://127.0.0.1:{push.port}/healthz", timeout=WAIT)
    assert (reply.status_code, reply.text) == (200, "ok\n")


@pytest.mark.parametrize(("query", "status"), [
    ("", 401),
    ("?token=", 401),
    ("?token=not-a-token", 403),
    ("?token=" + make_ws_token("someone-elses-secret", "x", "admin"), 403),
    ("?token=" + make_ws_token(SECRET, "x", "admin", now=time.time() - 3600), 401),
])
def test_bad_missing_or_expired_token_is_refused(start_push: Callable[..., PushThread],
                                                 query: str, status: int) -> None:
    """Connections without a valid, unexpired token are refused with 401/403."""
    push = start_push()
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{push.port}/live{query}", open_timeout=WAIT)
    assert refused.value.response.status_code == status
    assert push.service is not None and push.service.counters["refused"] == 1


def test_unknown_path_is_404(start_push: Callable[..., PushThread]) -> None:
    """Only /live (and /) speak websocket."""
    push = start_push()
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{push.port}/other?token={token()}", open_timeout=WAIT)
    assert refused.value.response.status_code == 404


def seed_state(r: redis.Redis, keys: Keys) -> str:
    """Two open calls, a unit, an alert, a share, freshness; return the newest changes id."""
    now = time.time()
    calls = {"C1": {"call_id": "C1", "priority": 1, "caller_name": "Ann", "caller_phone": "1",
                    "applied": ["e1"], "status": "pending"},
             "C2": {"call_id": "C2", "priority": 3, "caller_name": "Bob", "caller_phone": "2",
                    "applied": ["e2"], "status": "assigned"},
             "C9": {"call_id": "C9", "status": "closed"}}
    r.hset(keys.calls, mapping={cid: json.dumps(call) for cid, call in calls.items()})
    r.zadd(keys.calls_open, {"C1": 1e11 + now, "C2": 3e11 + now})
    r.hset(keys.units, "U1", json.dumps({"unit_id": "U1", "status": "available"}))
    r.hset(keys.alerts, mapping={"A1": json.dumps({"alert_id": "A1", "rounds": 3}),
                                 "A0": json.dumps({"alert_id": "A0", "rounds": 1})})
    r.zadd(keys.alerts_active, {"A1": now - 60, "A0": now - 7200})
    r.hset(keys.shares, "S1", json.dumps({"share_id": "S1", "status": "open"}))
    r.zadd(keys.shares_active, {"S1": now})
    r.hset(keys.freshness, mapping={"cad": now - 5, "cad:seen": now - 4})
    r.hset(keys.counts, mapping={"cad": 12, "cad:rejected": 1})
    return write_changes(r, keys, [call_change(1)])[0]


def test_snapshot_on_connect(start_push: Callable[..., PushThread], r: redis.Redis,
                             keys: Keys) -> None:
    """A new client first gets the full live state as one snapshot message."""
    newest = seed_state(r, keys)
    push = start_push()
    with open_client(push.port) as client:
        snapshot = receive(client)
    assert snapshot["type"] == "snapshot" and snapshot["last_id"] == newest
    assert [call["call_id"] for call in snapshot["calls"]] == ["C1", "C2"]
    assert snapshot["calls"][0]["caller_name"] == "Ann"
    assert all("applied" not in call for call in snapshot["calls"])
    assert snapshot["units"] == [{"unit_id": "U1", "status": "available"}]
    assert [alert["alert_id"] for alert in snapshot["alerts"]] == ["A1"]
    assert [share["share_id"] for share in snapshot["shares"]] == ["S1"]
    assert snapshot["freshness"]["cad"]["count"] == 12
    assert snapshot["freshness"]["cad"]["rejected"] == 1


@pytest.mark.parametrize("role", ["cso", "sro"])
def test_tablet_roles_never_receive_caller_details(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys, role: str) -> None:
    """CSO/SRO get no caller name or phone, in the snapshot or in deltas; a commander does."""
    seed_state(r, keys)
    push = start_push()
    with open_client(push.port, role) as tablet, open_client(push.port) as wall:
        tablet_snapshot, wall_snapshot = receive(tablet), receive(wall)
        write_changes(r, keys, [call_change(i) for i in range(20)], per_entry=5)
        tablet_changes, _ = collect_changes(tablet, 20)
        wall_changes, _ = collect_changes(wall, 20)
    text = json.dumps([tablet_snapshot, tablet_changes])
    assert "caller_name" not in text and "caller_phone" not in text
    assert "Ann" not in text and "860-555-0100" not in text
    assert len(tablet_changes) == 20
    assert wall_snapshot["calls"][0]["caller_phone"] == "1"
    assert all(change["data"]["caller_name"] == "Pat Doe" for change in wall_changes)


def test_burst_of_1000_changes_arrives_complete_in_few_messages(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """1,000 changes XADDed at once all arrive, in order, batched into far fewer messages."""
    push = start_push()
    with open_client(push.port) as client:
        assert receive(client)["type"] == "snapshot"
        entry_ids = write_changes(r, keys, [call_change(i) for i in range(1000)])
        changes, messages = collect_changes(client, 1000)
    assert [change["id"] for change in changes] == [f"C{i}" for i in range(1000)]
    assert messages < 1000
    assert len(entry_ids) == 1000


def test_pages_in_every_lane_get_each_change_once_in_order_and_paced(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """Six pages (more than there are lanes) under a stream of 200 changes a second for one
    second: each gets every change once, in order, in at most about ten messages a second."""
    from streams.push import LANES, MIN_GAP_SECONDS  # noqa: PLC0415

    push = start_push()
    pages = 6
    assert pages > LANES
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(open_client(push.port)) for _ in range(pages)]
        for client in clients:
            assert receive(client)["type"] == "snapshot"
        assert push.service is not None
        lanes = sorted(client.lane for client in list(push.service.clients))
        assert lanes == sorted(index % LANES for index in range(pages))  # spread evenly
        started = time.monotonic()
        for index in range(200):
            write_changes(r, keys, [call_change(index)])
            time.sleep(max(0.0, started + (index + 1) / 200 - time.monotonic()))
        took = time.monotonic() - started
        received = [collect_changes(client, 200) for client in clients]
    for changes, messages in received:
        assert [change["id"] for change in changes] == [f"C{i}" for i in range(200)]
        assert messages <= took / MIN_GAP_SECONDS + 3


def test_client_connecting_mid_burst_misses_nothing(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A page that connects while changes pour in ends with every call (snapshot + deltas)."""
    push = start_push()

    def write_state_and_changes() -> None:
        writer = sync_client(push.settings.redis_url or "")
        for index in range(600):
            change = call_change(index)
            pipe = writer.pipeline(transaction=True)  # like the consumer: state + change
            pipe.hset(keys.calls, change["id"], json.dumps(change["data"]))
            pipe.zadd(keys.calls_open, {change["id"]: index})
            pipe.xadd(keys.changes, {"batch": json.dumps([change])})
            pipe.execute()
        close_client(writer)

    writer = threading.Thread(target=write_state_and_changes)
    writer.start()
    time.sleep(0.05 * TIMEOUT_SCALE)
    seen: set[str] = set()
    with open_client(push.port) as client:
        snapshot = receive(client)
        seen.update(call["call_id"] for call in snapshot["calls"])
        writer.join(WAIT)
        last_id = snapshot["last_id"]
        newest = r.xrevrange(keys.changes, count=1)[0][0].decode()
        while last_id != newest:
            delta = receive(client)
            seen.update(change["id"] for change in delta["changes"])
            last_id = delta["last_id"]
    assert seen == {f"C{i}" for i in range(600)}


def test_restart_resyncs_from_last_id_without_gap(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """Push restarts while a client is connected: it reconnects with since= and misses nothing."""
    port = free_port()
    first = start_push(port)
    received: list[str] = []
    with open_client(port) as client:
        last_id = receive(client)["last_id"]
        write_changes(r, keys, [call_change(i) for i in range(100)])
        changes, _ = collect_changes(client, 100)
        received += [change["id"] for change in changes]
        first.stop()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = receive(client)
                last_id = message.get("last_id", last_id)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    last_id = r.xrevrange(keys.changes, count=1)[0][0].decode()
    write_changes(r, keys, [call_change(i) for i in range(100, 200)])  # while it is down
    start_push(port)
    with open_client(port, since=last_id) as client:
        write_changes(r, keys, [call_change(i) for i in range(200, 300)])
        resync = receive(client)
        assert resync["type"] == "delta"
        received += [change["id"] for change in resync["changes"]]
        changes, _ = collect_changes(client, 300 - len(received))
        received += [change["id"] for change in changes]
    assert received == [f"C{i}" for i in range(300)]


def test_since_older_than_the_stream_gets_a_snapshot(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A client whose last id was trimmed away gets a fresh snapshot, not a gapped replay."""
    write_changes(r, keys, [call_change(i) for i in range(5)])
    push = start_push()
    with open_client(push.port, since="1-0") as client:
        assert receive(client)["type"] == "snapshot"
    with open_client(push.port, since="not-an-id") as client:
        assert receive(client)["type"] == "snapshot"


def test_two_push_processes_deliver_the_same_changes(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """Two push services fan out from Redis independently; both clients get every change."""
    one, two = start_push(), start_push()
    with open_client(one.port) as first, open_client(two.port) as second:
        receive(first), receive(second)
        write_changes(r, keys, [call_change(i) for i in range(50)], per_entry=10)
        got_first, _ = collect_changes(first, 50)
        got_second, _ = collect_changes(second, 50)
    assert got_first == got_second
    assert [change["id"] for change in got_first] == [f"C{i}" for i in range(50)]


def test_page_that_stops_reading_is_dropped_and_resyncs_without_a_gap(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """With the default send buffer limit, a page that stops reading is dropped once push
    holds more than that for it (a reading page still gets everything); reconnecting with
    the last id it applied, it gets every change since, in order, none twice."""
    write_changes(r, keys, [call_change(-1)])  # pages then start at a real stream id
    push = start_push()
    assert push.service is not None
    padding = "x" * 10_000
    written: list[str] = []
    with open_client(push.port) as fast, open_client(push.port, max_queue=1) as slow:
        receive(fast)
        applied = receive(slow)["last_id"]
        for round_ in range(100):  # up to ~20 MB: past the limit and any socket buffer
            batch = [call_change(round_ * 20 + i, note=padding) for i in range(20)]
            write_changes(r, keys, batch, per_entry=20)
            written += [change["id"] for change in batch]
            changes, _ = collect_changes(fast, 20)
            assert len(changes) == 20
            if push.service.counters["dropped"]:
                break
        assert push.service.counters["dropped"] == 1
        assert push.service.settings.push_send_buffer_bytes == 262_144
        with pytest.raises(ConnectionClosed):
            while True:
                slow.recv(timeout=WAIT)
    with open_client(push.port, since=applied) as again:
        replayed, _ = collect_changes(again, len(written))
    assert [change["id"] for change in replayed] == written


def test_reader_survives_a_redis_restart(push_settings: Settings, tmp_path: Path,
                                         start_push: Callable[..., PushThread]) -> None:
    """Redis restarts (AOF): push reconnects and continues from its last id, no gap."""
    server = EmbeddedRedis(tmp_path / "redis", free_port(), appendonly=True).start()
    try:
        own = dataclasses.replace(push_settings, redis_url=server.url)
        keys = own.keys
        push = start_push(settings=own)
        r = redis.Redis.from_url(server.url)
        with open_client(push.port, store=session_store(r, keys)) as client:
            receive(client)
            write_changes(r, keys, [call_change(i) for i in range(10)])
            first, _ = collect_changes(client, 10)
            r.execute_command("BGREWRITEAOF")
            time.sleep(0.5 * TIMEOUT_SCALE)
            r.close()
            server.stop()
            time.sleep(0.5 * TIMEOUT_SCALE)
            assert httpx.get(f"http://127.0.0.1:{push.port}/healthz",
                             timeout=WAIT).status_code == 503
            server.start()
            r = redis.Redis.from_url(server.url)
            write_changes(r, keys, [call_change(i) for i in range(10, 20)])
            second, _ = collect_changes(client, 10)
            r.close()
        assert [change["id"] for change in first + second] == [f"C{i}" for i in range(20)]
    finally:
        server.stop()


def test_sigterm_closes_clients_with_1001_and_exits_0(push_settings: Settings) -> None:
    """`python -m streams push` on SIGTERM closes connections (1001) and exits 0 promptly."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": push_settings.redis_url or "",
           "DISPATCH_KEY_PREFIX": push_settings.key_prefix, "DISPATCH_SECRET_KEY": SECRET,
           "DISPATCH_PUSH_HOST": "127.0.0.1", "DISPATCH_PUSH_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "streams", "push"], cwd=PROJECT_ROOT,
                               env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "push service did not come up"
            time.sleep(0.1)
        with open_client(port) as client:
            assert receive(client)["type"] == "snapshot"
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                receive(client)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_idle_clients_get_a_ping_with_the_server_time(
        start_push: Callable[..., PushThread]) -> None:
    """With nothing to send, a page gets {"type": "ping", "time": <server epoch s>}."""
    push = start_push()
    with open_client(push.port) as client:
        assert receive(client)["type"] == "snapshot"
        ping = receive(client)
    assert set(ping) == {"type", "time"} and ping["type"] == "ping"
    assert abs(ping["time"] - time.time()) < 5


def message_times(client: ClientConnection, seconds: float) -> list[float]:
    """Monotonic arrival times of every message ``client`` gets for ``seconds``."""
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            client.recv(timeout=left)
            times.append(time.monotonic())
    return times


def test_every_page_hears_from_push_at_least_every_2_seconds(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """Heartbeat (state contract): 12 pages in every lane, district-scoped or not, quiet or
    with changes only for other districts, never wait more than 2 s for a message."""
    push = start_push()
    roles = [("commander", None), ("cso", "North"), ("sro", "South"), ("cso", None)] * 3
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(open_client(push.port, role, district=district))
                   for role, district in roles]
        for client in clients:
            assert receive(client)["type"] == "snapshot"
        writer = threading.Thread(target=lambda: [
            (time.sleep(0.7), write_changes(r, keys, [district_call(f"S{i}", "South")]))
            for i in range(3)])
        writer.start()
        gathered: list[list[float]] = [[] for _ in clients]
        readers = [threading.Thread(target=lambda i=i: gathered[i].extend(
            message_times(clients[i], 6.0))) for i in range(len(clients))]
        started = time.monotonic()
        for reader in readers:
            reader.start()
        for reader in readers + [writer]:
            reader.join(WAIT)
    for times in gathered:
        ends = [*times, started + 6.0]
        gaps = [later - earlier for earlier, later in zip([started, *times], ends, strict=True)]
        assert len(times) >= 4 and max(gaps) <= 2.0, gaps


def test_resync_with_nothing_new_is_an_empty_delta(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A client that is already current gets an empty delta at its own id, not a snapshot."""
    newest = write_changes(r, keys, [call_change(i) for i in range(3)])[-1]
    push = start_push()
    with open_client(push.port, since=newest) as client:
        assert receive(client) == {"type": "delta", "last_id": newest, "changes": []}


def test_redis_coming_back_empty_makes_clients_resnapshot(
        push_settings: Settings, tmp_path: Path, start_push: Callable[..., PushThread]) -> None:
    """Redis restarts without its data: clients are closed (1012) and a reconnect gets a
    snapshot, then new changes flow again."""
    server = EmbeddedRedis(tmp_path / "redis", free_port(), appendonly=False).start()
    try:
        own = dataclasses.replace(push_settings, redis_url=server.url)
        keys = own.keys
        push = start_push(settings=own)
        r = redis.Redis.from_url(server.url)
        with open_client(push.port, store=session_store(r, keys)) as client:
            receive(client)
            last_id = write_changes(r, keys, [call_change(i) for i in range(10)])[-1]
            assert len(collect_changes(client, 10)[0]) == 10
            r.close()
            server.stop()
            server.start()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    receive(client)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        r = redis.Redis.from_url(server.url)
        # Its sessions went with its data: the page's user signs in again first.
        with open_client(push.port, since=last_id, store=session_store(r, keys)) as client:
            assert receive(client)["type"] == "snapshot"
            write_changes(r, keys, [call_change(i) for i in range(10, 15)])
            changes, _ = collect_changes(client, 5)
        r.close()
        assert [change["id"] for change in changes] == [f"C{i}" for i in range(10, 15)]
    finally:
        server.stop()


def district_call(call_id: str, district: str, op: str = "upsert", **extra: Any,
                  ) -> dict[str, Any]:
    data = {"call_id": call_id, "status": "pending", "priority": 3, "district": district,
            "category": "noise", "caller_name": "Pat Doe", "caller_phone": "860-555-0100",
            **extra}
    return {"entity": "call", "op": op, "id": call_id, "data": data}


def open_call(r: redis.Redis, keys: Keys, call_id: str, district: str) -> None:
    """An open call in live state, as the consumer leaves it."""
    r.hset(keys.calls, call_id, json.dumps(district_call(call_id, district)["data"]))
    r.zadd(keys.calls_open, {call_id: 3e11 + time.time()})


def changes_until(client: ClientConnection, last_id: str) -> list[dict[str, Any]]:
    """Every change delivered up to (and including) the delta carrying ``last_id``."""
    changes: list[dict[str, Any]] = []
    while True:
        message = receive(client)
        if message["type"] == "delta":
            changes.extend(message["changes"])
            if pushview.parse_stream_id(message["last_id"]) >= \
                    pushview.parse_stream_id(last_id):
                return changes


@pytest.mark.parametrize("role", ["cso", "sro"])
def test_district_tablet_never_receives_another_districts_call(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys, role: str) -> None:
    """A North cso/sro gets only North's calls, in the snapshot and in deltas, but every
    unit; a commander and a districtless cso get every call."""
    open_call(r, keys, "N1", "North")
    open_call(r, keys, "S1", "South")
    push = start_push()
    with open_client(push.port, role, district="North") as north, \
            open_client(push.port, "cso") as anywhere, open_client(push.port) as wall:
        snapshots = [receive(north), receive(anywhere), receive(wall)]
        last = write_changes(r, keys, [
            district_call("N2", "North"), district_call("S2", "South"),
            district_call("C2", "Central"),
            {"entity": "unit", "op": "upsert", "id": "U1",
             "data": {"unit_id": "U1", "district": "South", "status": "available"}},
            district_call("S1", "South", status="assigned"),
            district_call("S2", "South", op="remove", status="closed"),
        ], per_entry=2)[-1]
        north_changes = changes_until(north, last)
        anywhere_changes = changes_until(anywhere, last)
        wall_changes = changes_until(wall, last)
    assert [call["call_id"] for call in snapshots[0]["calls"]] == ["N1"]
    assert sorted(call["call_id"] for call in snapshots[1]["calls"]) == ["N1", "S1"]
    assert sorted(call["call_id"] for call in snapshots[2]["calls"]) == ["N1", "S1"]
    assert [(change["entity"], change["id"]) for change in north_changes] == [
        ("call", "N2"), ("unit", "U1")]
    assert "caller_name" not in north_changes[0]["data"]
    text = json.dumps([snapshots[0], north_changes])
    assert "S1" not in text and "S2" not in text and "C2" not in text
    assert [change["id"] for change in anywhere_changes] == ["N2", "S2", "C2", "U1", "S1", "S2"]
    assert [change["id"] for change in wall_changes] == ["N2", "S2", "C2", "U1", "S1", "S2"]


def test_call_moving_out_of_the_district_is_removed_for_its_tablets(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A call moved North -> South becomes a bare removal for North tablets and an upsert
    for South's; moved back, North gets it again; its later changes never reach North."""
    open_call(r, keys, "M1", "North")
    push = start_push()
    with open_client(push.port, "cso", district="North") as north, \
            open_client(push.port, "sro", district="South") as south:
        assert [call["call_id"] for call in receive(north)["calls"]] == ["M1"]
        assert receive(south)["calls"] == []
        last = write_changes(r, keys, [
            district_call("M1", "South", address="9 South St"),
            district_call("M1", "South", status="assigned"),
        ])[-1]
        north_changes = changes_until(north, last)
        south_changes = changes_until(south, last)
        assert north_changes == [{"entity": "call", "op": "remove", "id": "M1", "data": {}}]
        assert [(change["op"], change["data"]["district"]) for change in south_changes] == [
            ("upsert", "South"), ("upsert", "South")]
        last = write_changes(r, keys, [district_call("M1", "North", address="1 North St")])[-1]
        back = changes_until(north, last)
        gone = changes_until(south, last)
    assert [(change["op"], change["data"]["address"]) for change in back] == [
        ("upsert", "1 North St")]
    assert gone == [{"entity": "call", "op": "remove", "id": "M1", "data": {}}]


def test_call_moving_district_brings_its_work_record_to_the_new_districts_tablets(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A claimed North call moved to South reaches South's tablets with who claimed it,
    whether push read the claim from the stream or from live state when it started: a
    tablet must never show a taken call as free."""
    open_call(r, keys, "W1", "North")
    open_call(r, keys, "W2", "North")
    r.set(keys.work("W1"), json.dumps({"call_id": "W1", "claimed_by": "cso-north"}))
    push = start_push()
    with open_client(push.port, "sro", district="South") as south:
        assert receive(south)["calls"] == []
        claim = {"entity": "work", "op": "upsert", "id": "W2",
                 "data": {"call_id": "W2", "claimed_by": "sro-north"}}
        last = write_changes(r, keys, [claim, district_call("W1", "South"),
                                       district_call("W2", "South")])[-1]
        arrived = changes_until(south, last)
    assert [(change["entity"], change["id"], change["data"].get("claimed_by"))
            for change in arrived] == [("call", "W1", None), ("work", "W1", "cso-north"),
                                       ("call", "W2", None), ("work", "W2", "sro-north")]


def test_district_tablet_reconnecting_with_since_gets_its_districts_snapshot(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A scoped page that resyncs gets a fresh snapshot of its district (a replay could not
    tell it which of its calls left the district meanwhile)."""
    open_call(r, keys, "N1", "North")
    open_call(r, keys, "S1", "South")
    newest = write_changes(r, keys, [district_call("S1", "South")])[-1]
    push = start_push()
    with open_client(push.port, "cso", since=newest, district="North") as north:
        snapshot = receive(north)
    assert snapshot["type"] == "snapshot" and snapshot["last_id"] == newest
    assert [call["call_id"] for call in snapshot["calls"]] == ["N1"]


def open_calls(r: redis.Redis, keys: Keys, count: int, note_bytes: int) -> None:
    """``count`` open calls of about ``note_bytes`` each, as the consumer leaves them."""
    now = time.time()
    calls = {f"H{i}": district_call(f"H{i}", ("North", "Central", "South")[i % 3],
                                    note="n" * note_bytes)["data"] for i in range(count)}
    r.hset(keys.calls, mapping={call_id: json.dumps(call) for call_id, call in calls.items()})
    r.zadd(keys.calls_open, {call_id: 3e11 + now + i for i, call_id in enumerate(calls)})


def test_herd_of_pages_connecting_at_once_is_queued_not_refused(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """400 pages (more than redis-py's default pool of 100) connect at the same instant
    while changes flow: every one gets its snapshot (none is closed with 1013), pages of
    one view get the very same bytes, and they share a few reads of live state instead of
    one each; each then gets the changes after its snapshot."""
    from websockets.asyncio.client import connect as connect_async  # noqa: PLC0415

    open_calls(r, keys, 300, 1000)
    push = start_push()
    assert push.service is not None
    reads_before = push.service.syncs.snapshots.reads
    pages = 400
    roles = [("commander", None), ("cso", "North"), ("cso", None), ("supervisor", None)]
    tokens = [token(*roles[index % len(roles)], user=f"herd-{index}") for index in range(pages)]

    async def page(index: int) -> tuple[str, bytes, str]:
        role, district = roles[index % len(roles)]
        url = f"ws://127.0.0.1:{push.port}/live?token={tokens[index]}"
        async with connect_async(url, max_size=None, open_timeout=WAIT * 3) as ws, \
                asyncio.timeout(WAIT * 6):
            first = await ws.recv(decode=False)
            while True:  # until a delta with a change: the flow after the snapshot
                message = json.loads(await ws.recv())
                if message["type"] == "delta" and message["changes"]:
                    return role + str(district), first, message["changes"][0]["id"]

    async def herd() -> list[Any]:
        return await asyncio.gather(*(page(index) for index in range(pages)),
                                    return_exceptions=True)

    stop = threading.Event()

    def flow() -> None:
        index = 0
        while not stop.is_set():
            write_changes(r, keys, [district_call(f"F{index}", "North")])
            index += 1
            time.sleep(0.05)

    writer = threading.Thread(target=flow)
    writer.start()
    try:
        results = asyncio.run(herd())
    finally:
        stop.set()
        writer.join(WAIT)
    failures = [result for result in results if isinstance(result, BaseException)]
    assert failures == []
    firsts: dict[str, set[bytes]] = {}
    for view, first, _ in results:
        assert json.loads(first)["type"] == "snapshot"
        firsts.setdefault(view, set()).add(first)
    north = json.loads(next(iter(firsts["csoNorth"])))
    assert {call["district"] for call in north["calls"]} == {"North"}
    assert "caller_name" not in json.dumps(north)
    reads = push.service.syncs.snapshots.reads - reads_before
    assert reads < pages / 10, reads
    assert all(len(copies) <= reads for copies in firsts.values())
    assert push.service.counters["refused"] == 0 and push.service.counters["dropped"] == 0


def test_a_user_may_hold_only_so_many_connections(
        push_settings: Settings, start_push: Callable[..., PushThread]) -> None:
    """Past DISPATCH_PUSH_CONNECTIONS_PER_USER a user's next websocket is refused with 429;
    closing one lets the next in, and other users are not affected."""
    push = start_push(settings=dataclasses.replace(push_settings,
                                                   push_connections_per_user=3))
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(open_client(push.port)) for _ in range(3)]
        for client in held:
            assert receive(client)["type"] == "snapshot"
        with pytest.raises(InvalidStatus) as refused:
            open_client(push.port)
        assert refused.value.response.status_code == 429
        with open_client(push.port, "supervisor") as other:
            assert receive(other)["type"] == "snapshot"
        held.pop().close()
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with open_client(push.port) as again:
                    assert receive(again)["type"] == "snapshot"
                break
            except InvalidStatus:  # the closed one is counted until its TCP is gone
                assert time.monotonic() < deadline, "the freed connection was not released"
                time.sleep(0.05)
    assert push.service is not None and push.service.counters["refused_over_cap"] == 1


def stopped_page(port: int) -> socket.socket:
    """A page that reads its first message (one frame), then never reads again; its
    receive buffer is small, so what it does not read stays with push."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /live?token={token(user='stopped')} HTTP/1.1\r\nHost: x\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(1)
    assert reply.startswith(b"HTTP/1.1 101")
    head = _read_exactly(sock, 2)
    assert head[0] == 0x81, "one unfragmented text frame"
    length = head[1] & 0x7F
    if length >= 126:
        length = int.from_bytes(_read_exactly(sock, 2 if length == 126 else 8), "big")
    assert json.loads(_read_exactly(sock, length))["type"] == "snapshot"
    return sock


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_page_over_the_limit_when_changes_stop_is_dropped_alone(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """One burst leaves push holding more than the limit for a page that stopped reading,
    then nothing more changes: the page is dropped at its next heartbeat turn, and the
    reading pages sharing its lane keep their connections and get the whole burst."""
    write_changes(r, keys, [call_change(-1)])
    push = start_push()
    assert push.service is not None
    padding = "x" * 200_000
    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(open_client(push.port)) for _ in range(5)]
        for reader in readers:
            receive(reader)
        slow = stack.enter_context(contextlib.closing(stopped_page(push.port)))
        write_changes(r, keys, [call_change(i, note=padding) for i in range(40)],
                      per_entry=40)  # 8 MB in one delta, then quiet
        for reader in readers:
            assert len(collect_changes(reader, 40)[0]) == 40
        deadline = time.monotonic() + WAIT
        while not push.service.counters["dropped"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # another heartbeat turn or two: nobody else is dropped
        assert push.service.counters["dropped"] == 1
        assert push.service.counters["send_errors"] == 0
        for reader in readers:
            assert receive(reader)["type"] == "ping"
        assert slow.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != 1  # reset
    dropped = [entry for entry in wait_for_audit(r, keys, "socket_closed")
               if entry["user"] == "stopped"]
    assert [(entry["detail"]["by"], entry["detail"]["reason"]) for entry in dropped] == [
        ("push", "dropped")]
    assert "bytes unsent" in dropped[0]["detail"]["why"]


def closed_with(client: ClientConnection) -> int | None:
    """The close code the server sent once it closed the socket; pings keep coming while it
    is open, so give up (None) after WAIT."""
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            client.recv(timeout=WAIT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return None


def test_sockets_of_a_revoked_session_are_closed_at_once(
        start_push: Callable[..., PushThread], sessions: SessionStore) -> None:
    """Signing out (the dashboard's own session store writes the revocation) closes every
    socket of that session with 4401 within a second or two; another session of the same
    user keeps its socket."""
    push = start_push()
    sid, first_token = signed_in(user="ann")
    _, other_token = signed_in(user="ann")
    url = f"ws://127.0.0.1:{push.port}/live?token="
    with connect(url + first_token, open_timeout=WAIT) as one, \
            connect(url + first_token, open_timeout=WAIT) as two, \
            connect(url + other_token, open_timeout=WAIT) as other:
        for client in (one, two, other):
            assert receive(client)["type"] == "snapshot"
        ended_at = time.monotonic()
        assert sessions.end(sid, "signed_out")
        assert closed_with(one) == 4401 and closed_with(two) == 4401
        assert time.monotonic() - ended_at < 3 * TIMEOUT_SCALE
        assert receive(other)["type"] == "ping"
    assert push.service is not None
    assert push.service.counters["closed_session_ended"] == 2


def test_handshake_needs_a_live_session(start_push: Callable[..., PushThread],
                                        sessions: SessionStore) -> None:
    """A well-signed, unexpired token is refused when its session has ended or when it
    names no session at all: the socket is closed with 4401 (what a browser can see; it
    never sees a handshake's status) before any message."""
    push = start_push()
    sid, ended = signed_in()
    sessions.end(sid, "ended_by_admin")
    for bad in (ended, make_ws_token(SECRET, "x", "commander")):
        with connect(f"ws://127.0.0.1:{push.port}/live?token={bad}",
                     open_timeout=WAIT) as page, pytest.raises(ConnectionClosed) as closed:
            page.recv(timeout=WAIT)  # no snapshot, no ping: the close
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert push.service is not None and push.service.counters["refused_session"] == 2
    assert push.service.counters["connections"] == 0


def test_socket_closes_at_token_expiry_when_its_session_is_gone(
        push_settings: Settings, start_push: Callable[..., PushThread], r: redis.Redis,
        keys: Keys) -> None:
    """Tokens last 2 s; a session that times out (its key expires, and nobody has swept it
    into the revocation stream) closes its socket once the token expires; a socket whose
    session is still valid stays open past its token's expiry and is checked again."""
    push = start_push(settings=dataclasses.replace(push_settings, ws_token_seconds=2))
    brief = session_store(r, keys, idle_minutes="*=0.02")  # 1.2 s of idle time
    url = f"ws://127.0.0.1:{push.port}/live?token="
    with connect(url + token(user="idle", store=brief), open_timeout=WAIT) as idle, \
            connect(url + token(user="busy"), open_timeout=WAIT) as busy:
        assert receive(idle)["type"] == "snapshot" and receive(busy)["type"] == "snapshot"
        opened = time.monotonic()
        assert closed_with(idle) == 4401
        assert 1.5 <= time.monotonic() - opened < 2 + 3 * TIMEOUT_SCALE
        assert r.xlen(keys.session_revocations) == 0  # closed by the check, not a revocation
        time.sleep(3)  # past another token lifetime: busy was checked and kept
        assert receive(busy)["type"] == "ping"
        [expired] = wait_for_audit(r, keys, "socket_closed")  # busy's is still open
    assert (expired["user"], expired["detail"]["reason"]) == ("idle", "session_expired")
    assert push.service is not None and push.service.counters["session_checks"] >= 2


def test_socket_opening_as_its_session_is_revoked_is_closed(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """The race of a handshake and a revocation: push reads the revocation while the
    session's key still exists (the handshake's check passed); the socket that opens
    afterwards is closed with 4401 at once, not at its token's expiry."""
    push = start_push()
    assert push.service is not None
    sid, ending = signed_in(user="racer")
    r.xadd(keys.session_revocations, {"sid": sid, "user": "racer", "reason": "signed_out"})
    deadline = time.monotonic() + WAIT
    while push.service.counters["revocations_read"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.exists(keys.session(sid))  # the handshake's check still passes
    with connect(f"ws://127.0.0.1:{push.port}/live?token={ending}", open_timeout=WAIT) as page:
        assert closed_with(page) == 4401


def test_revocations_go_on_after_the_stream_was_unreadable(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys,
        sessions: SessionStore) -> None:
    """Something replaces the revocation stream with a string (XREAD: WRONGTYPE): push
    logs it and keeps reading; once it is a stream again, a sign-out still closes the
    session's socket at once."""
    push = start_push()
    sid, ending = signed_in(user="later")
    with connect(f"ws://127.0.0.1:{push.port}/live?token={ending}", open_timeout=WAIT) as page:
        assert receive(page)["type"] == "snapshot"
        r.delete(keys.session_revocations)
        r.set(keys.session_revocations, "not a stream")
        time.sleep(2.5 * TIMEOUT_SCALE)  # a read or two fail
        r.delete(keys.session_revocations)
        assert sessions.end(sid, "signed_out")
        assert closed_with(page) == 4401


def test_session_lookups_asked_together_share_one_round_trip(
        redis_url: str, keys: Keys, sessions: SessionStore) -> None:
    """300 handshakes asking at once about live, ended and unknown sessions each get the
    right answer from one pipeline; a Redis error reaches every caller of its batch."""
    import redis.asyncio as aioredis  # noqa: PLC0415

    from streams.push.sessions import SessionLookups  # noqa: PLC0415

    live = [signed_in(user=f"u{n}")[0] for n in range(100)]
    ended = [signed_in(user=f"e{n}")[0] for n in range(100)]
    for sid in ended:
        sessions.end(sid, "signed_out")
    unknown = [f"{n:032x}" for n in range(100)]

    async def ask() -> tuple[list[dict[str, bool]], int, BaseException | None]:
        client = async_client(redis_url)
        lookups = SessionLookups(lambda: client, keys)
        answers = await asyncio.gather(*(lookups.exist([sid]) for sid in live + ended + unknown))
        await client.aclose()
        nobody = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}")
        unreachable = SessionLookups(lambda: nobody, keys)
        failed = await asyncio.gather(unreachable.exist(["a"]), unreachable.exist(["b"]),
                                      return_exceptions=True)
        await nobody.aclose()
        return answers, lookups.round_trips, \
            failed[0] if isinstance(failed[1], redis.ConnectionError) else None

    answers, trips, error = asyncio.run(ask())
    assert [answer[sid] for answer, sid in zip(answers, live + ended + unknown, strict=True)] \
        == [True] * 100 + [False] * 200
    assert trips == 1
    assert isinstance(error, redis.ConnectionError)


# --- the audit trail ---------------------------------------------------------------------
def audit_trail(r: redis.Redis, keys: Keys, action: str | None = None) -> list[dict[str, Any]]:
    """The audit stream's entries as the web app decodes them, oldest first."""
    found = [audit_rules.decode(entry_id, fields)
             for entry_id, fields in r.xrange(keys.audit, "-", "+")]
    return [entry for entry in found if action is None or entry["action"] == action]


def wait_for_audit(r: redis.Redis, keys: Keys, action: str, count: int = 1,
                   ) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT
    while len(found := audit_trail(r, keys, action)) < count:
        assert time.monotonic() < deadline, f"{action}: {len(found)} of {count} entries"
        time.sleep(0.05)
    return found


def test_socket_connections_are_in_the_audit_trail(
        push_settings: Settings, start_push: Callable[..., PushThread], r: redis.Redis,
        keys: Keys, sessions: SessionStore) -> None:
    """Every socket push accepts is in the web app's audit trail (user, role, district, the
    client's address from the trusted proxy, view and page) before its first message; a
    page closing it, a revocation closing it, a handshake of an ended session and one past
    the user cap each leave one entry; messages leave none, and no caller name or phone
    number of the calls sent ever reaches the trail."""
    write_changes(r, keys, [call_change(1)])  # caller Pat Doe, 860-555-0100
    r.hset(keys.calls, "C1", json.dumps(call_change(1)["data"]))
    r.zadd(keys.calls_open, {"C1": 1e11 + time.time()})
    push = start_push(settings=dataclasses.replace(push_settings,
                                                   push_connections_per_user=1))
    url = f"ws://127.0.0.1:{push.port}/live?page=/wall&token="
    proxy = {"X-Forwarded-For": "203.0.113.7"}  # the test's peer, 127.0.0.1, is trusted
    sid, wall_token = signed_in("supervisor", user="sup")
    with connect(url + wall_token, open_timeout=WAIT, additional_headers=proxy) as wall:
        snapshot = receive(wall)
        assert snapshot["calls"][0]["caller_name"] == "Pat Doe"  # a full view: it has them
        [opened] = audit_trail(r, keys, "socket_open")  # in the trail before the snapshot
        assert {name: opened[name] for name in ("user", "role", "address", "call_id")} == {
            "user": "sup", "role": "supervisor", "address": "203.0.113.7", "call_id": ""}
        assert opened["detail"] == {"view": "full", "page": "/wall"}
        tablet_url = (f"ws://127.0.0.1:{push.port}/live?page=/queues&token="
                      + token("cso", "North", user="cso-n"))
        with connect(tablet_url, open_timeout=WAIT) as tablet:
            receive(tablet)
        with pytest.raises(InvalidStatus) as refused:  # sup's second socket: over the cap
            connect(url + token("supervisor", user="sup"), open_timeout=WAIT,
                    additional_headers=proxy)
        assert refused.value.response.status_code == 429
        write_changes(r, keys, [call_change(i) for i in range(2, 52)])  # 50 messages' worth
        assert len(collect_changes(wall, 50)[0]) == 50
        assert sessions.end(sid, "signed_out")
        assert closed_with(wall) == 4401
    ended_sid, ended_token = signed_in(user="gone")
    sessions.end(ended_sid, "ended_by_admin")
    with connect(url.replace("/wall", "/status") + ended_token, open_timeout=WAIT) as page:
        assert closed_with(page) == 4401

    closed = wait_for_audit(r, keys, "socket_closed", 2)
    by_user = {entry["user"]: entry for entry in closed}
    tablet_closed = by_user["cso-n"]
    assert (tablet_closed["role"], tablet_closed["district"], tablet_closed["address"]) == (
        "cso", "North", "127.0.0.1")
    assert {name: tablet_closed["detail"][name] for name in ("by", "reason", "view", "page",
                                                             "scope", "code")} == {
        "by": "page", "reason": "closed", "view": "tablet", "page": "/queues",
        "scope": "North", "code": 1000}
    wall_closed = by_user["sup"]["detail"]
    assert (wall_closed["by"], wall_closed["reason"], wall_closed["why"], wall_closed["code"]
            ) == ("push", "session_revoked", "signed_out", 4401)
    assert wall_closed["open_s"] >= 0
    refusals = {entry["user"]: entry for entry in wait_for_audit(r, keys, "socket_refused", 2)}
    assert {name: refusals["sup"]["detail"][name] for name in ("reason", "status", "cap")} == {
        "reason": "user_cap", "status": 429, "cap": 1}
    assert refusals["sup"]["address"] == "203.0.113.7"
    assert (refusals["gone"]["detail"]["reason"], refusals["gone"]["detail"]["status"],
            refusals["gone"]["detail"]["page"]) == ("session_ended", 4401, "/status")
    trail = audit_trail(r, keys)
    assert len(trail) == 6  # 2 opened, 2 closed, 2 refused: nothing per message
    raw = json.dumps([list(fields.values()) for _, fields in r.xrange(keys.audit)],
                     default=bytes.decode)
    assert "Pat Doe" not in raw and "860-555-0100" not in raw


def test_audit_believes_forwarded_addresses_only_from_a_trusted_proxy(
        push_settings: Settings, start_push: Callable[..., PushThread], r: redis.Redis,
        keys: Keys) -> None:
    """With no trusted proxy, a page claiming another address in X-Forwarded-For is
    recorded at the address it connected from; a page name outside the pattern is left
    out rather than recorded."""
    push = start_push(settings=dataclasses.replace(push_settings, trusted_proxies=()))
    url = f"ws://127.0.0.1:{push.port}/live?page=%3Cscript%3E&token={token(user='liar')}"
    with connect(url, open_timeout=WAIT,
                 additional_headers={"X-Forwarded-For": "198.51.100.1"}) as page:
        receive(page)
        [opened] = audit_trail(r, keys, "socket_open")
    assert opened["address"] == "127.0.0.1" and opened["detail"]["page"] == ""


def test_a_changes_stream_push_cannot_read_stops_the_pings(
        start_push: Callable[..., PushThread], r: redis.Redis, keys: Keys) -> None:
    """A refusal that is not an outage (WRONGTYPE on the changes key) must not end the
    reader silently while pings tell every page it is live: pings stop and /healthz says
    503 until the stream can be read again, then the page hears from push again."""
    push = start_push()
    with open_client(push.port) as client:
        assert receive(client)["type"] == "snapshot"
        r.delete(keys.changes)
        r.set(keys.changes, "not a stream")
        broken_at = time.time()
        heard = _drain(client, 4.0)  # the page says 'lost' after 4 s without a message
        # (a ping sent before the first failed read, or during it, may still arrive)
        assert [m for m in heard if m["time"] > broken_at + 1.5 * TIMEOUT_SCALE] == []
        assert httpx.get(f"http://127.0.0.1:{push.port}/healthz",
                         timeout=WAIT).status_code == 503
        r.delete(keys.changes)
        write_changes(r, keys, [call_change(1)])
        assert receive(client)["type"] in {"snapshot", "delta", "ping"}
    assert httpx.get(f"http://127.0.0.1:{push.port}/healthz", timeout=WAIT).status_code == 200


def _drain(client: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every message ``client`` gets for ``seconds``."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            got.append(json.loads(client.recv(timeout=left)))
    return got
