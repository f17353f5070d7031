"""Benchmark: the push service under a reconnect herd and under pages that stop reading.

Usage: python tests/benchmarks/bench_push.py [--pages N] [--calls C] [--slow S]
       [--rate R] [--seconds T] [--skip-herd] [--skip-slow]

It starts the real processes (embedded redis-server, `python -m streams consume`,
`python -m streams push`) on free ports; the pages are real websocket clients in two
client processes, so they share neither the push process's CPU nor its memory.

(a) Herd: C open calls go through the real consumer (about 1 KB each as a page sees
    them, so a snapshot is about a megabyte), then N pages of distinct users (commanders,
    supervisors and district CSOs) open at the same instant. Connected = the page got its
    first message, a snapshot; time = from the herd's start to that message. A refusal is
    any page refused (HTTP status) or closed before its snapshot. Push's resident memory
    (VmRSS) is sampled every 50 ms: before the herd, its peak, with the N pages open and
    idle for 5 s, and 5 s after they closed. Targets: all N connected within 10 s, 0
    refusals.
(b) Slow readers: S pages that stop reading (half take their snapshot first, half never
    read a byte after the handshake), and one page that reads; R unit position fixes a
    second through the consumer for T seconds. Push's memory before, peak, 5 s after the
    changes stop and 5 s after the slow pages closed; how many slow connections push
    dropped (its log) and how many are still open; whether the reading page got every
    change, in order.
Prints figures, then as LAST line JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import ClientConnection  # noqa: E402
from websockets.sync.client import connect as connect_sync  # noqa: E402

from dashboard.auth.sessions import SessionStore  # noqa: E402
from streams.core.access import User  # noqa: E402
from streams.core.events import (  # noqa: E402
    CATEGORIES,
    CallEvent,
    Event,
    UnitEvent,
    encode_event,
    source_of,
)
from streams.core.keys import EVENT_FIELD, Keys  # noqa: E402
from streams.core.sessions import RoleTable  # noqa: E402
from streams.core.tokens import make_ws_token  # noqa: E402
from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402
from tests.benchmarks.common import percentile  # noqa: E402

SECRET = "bench-push-secret"
CONNECT_TARGET_S = 10.0
CENTRE = (41.7637, -72.6851)
DISTRICTS = ("North", "Central", "South")
ROLE_MIX = [("commander", None)] * 6 + [("supervisor", None)] + [
    ("cso", district) for district in DISTRICTS]
"""Who the herd's pages are: 60 % commanders, 10 % supervisors, 30 % district CSOs."""
CLIENT_PROCESSES = 2
HERD_LIMIT_S = 180.0
"""A page with no first message by then counts as refused (and the run goes on)."""


# --- processes ---------------------------------------------------------------------------
class Stack:
    """Redis, one consumer and one push process on free ports, with their logs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server = EmbeddedRedis(workdir / "redis", free_port(), appendonly=False)
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.keys = Keys(self.prefix)
        self.push_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._sessions: SessionStore | None = None

    @property
    def push_url(self) -> str:
        return f"ws://127.0.0.1:{self.push_port}/live"

    def env(self) -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.server.url, "DISPATCH_KEY_PREFIX": self.prefix,
                "DISPATCH_SECRET_KEY": SECRET, "DISPATCH_PUSH_HOST": "127.0.0.1",
                "DISPATCH_PUSH_PORT": str(self.push_port), "DISPATCH_CONSUMER_BLOCK_MS": "100",
                "DISPATCH_DATA_DIR": str(self.workdir), "DISPATCH_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1"}

    def start(self) -> Stack:
        self.server.start()
        for name, argv in (("consumer", ["consume", "--name", "bench"]), ("push", ["push"])):
            log = (self.workdir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "streams", *argv], cwd=ROOT, env=self.env(),
                stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{self.push_port}/healthz",
                             timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError("push did not come up; see " + str(self.workdir))
            time.sleep(0.2)

    def stop(self) -> None:
        if self._sessions is not None:
            self._sessions.client.close()
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.server.stop()

    def token(self, user: str, role: str, district: str | None = None) -> str:
        """A websocket token of a fresh session of ``user`` (push refuses a token whose
        session is not in Redis), as /auth/ws-token gives it."""
        if self._sessions is None:
            self._sessions = SessionStore(redis.Redis.from_url(self.server.url), self.keys,
                                          RoleTable.parse("*=60"), RoleTable.parse("*=12"))
        _, session = self._sessions.create(User(user, role, district), "password",
                                           "127.0.0.1", "bench_push")
        return make_ws_token(SECRET, user, role, district, sid=session.sid)

    def push_log(self) -> str:
        return (self.workdir / "push.log").read_text(errors="replace")


class Memory:
    """VmRSS of one process, sampled every 50 ms in a thread: current and peak (MB)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def now(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return math.nan

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.now()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError), self._lock:
                self.peak = max(self.peak, self.now())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- live state ----------------------------------------------------------------------------
def publish(r: redis.Redis, keys: Keys, events: Sequence[Event]) -> None:
    with r.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(keys.raw_stream(source_of(event)), {EVENT_FIELD: encode_event(event)})
        pipe.execute()


def open_call_events(count: int, now: datetime) -> list[Event]:
    """``count`` open calls as a busy night leaves them: created, two units assigned and
    dispatched, with full CAD detail (about 1 KB each as a page receives it)."""
    rng = random.Random(981)
    events: list[Event] = []
    for number in range(count):
        received = now - timedelta(seconds=rng.uniform(60, 3 * 3600))
        call_id = f"CAD-2014-{number:06d}"
        category = rng.choice(CATEGORIES)
        base = {"source": "cad", "call_id": call_id}
        lat = CENTRE[0] + rng.uniform(-0.03, 0.03)
        lon = CENTRE[1] + rng.uniform(-0.04, 0.04)
        units = [f"U{rng.randrange(200):03d}" for _ in range(2)]
        events.append(CallEvent(
            **base, event_id=f"{call_id}-created", event_time=received, kind="created",
            received_time=received, category=category, priority=rng.randint(1, 5),
            call_type_code=f"{category[:4].upper()}-{rng.randint(10, 99)}",
            call_type=f"{category.replace('_', ' ').title()} - reported by a resident, "
                      "caller requests a unit to check the area and call back",
            address=f"{rng.randint(1, 2999)} {rng.choice(['Farmington', 'Albany', 'Park'])} "
                    "Avenue, Hartford, CT 06105",
            lat=round(lat, 6), lon=round(lon, 6), district=DISTRICTS[number % 3],
            neighborhood=rng.choice(["Asylum Hill", "Frog Hollow", "Blue Hills", "South End"]),
            beat=f"B{rng.randint(1, 30):02d}", caller_name="Patricia Q. Doe-Smithfield",
            caller_phone="860-555-0100"))
        for step, unit in enumerate(units):
            when = received + timedelta(seconds=30 + step)
            for kind in ("unit_assigned", "dispatched"):
                events.append(CallEvent(**base, event_id=f"{call_id}-{unit}-{kind}",
                                        event_time=when, kind=kind, unit_id=unit))
    return events


def progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def wait_for(check: Any, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


# --- (a) the herd ----------------------------------------------------------------------
async def herd_client(url: str, tokens: list[str]) -> None:
    """Child process: say "ready", read the herd's start time from stdin, open a page per
    token then; print their results as JSON when every one has its first message or
    failed; close them when told on stdin."""
    count = len(tokens)
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    start_at = float(await loop.run_in_executor(None, sys.stdin.readline))
    done = asyncio.Event()
    results: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def page(token: str) -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        try:
            async with connect(f"{url}?token={token}", max_size=None, open_timeout=120,
                               close_timeout=2) as ws:
                first = await asyncio.wait_for(ws.recv(decode=False), 120)
                results.append({"s": time.time() - start_at, "bytes": len(first),
                                "snapshot": b'"type":"snapshot"' in first[:40]})
                if len(results) == count:
                    done.set()
                await release.wait()
        except InvalidStatus as error:
            results.append({"refused": f"HTTP {error.response.status_code}"})
        except Exception as error:  # every failure is a result, none may hang the herd
            results.append({"refused": type(error).__name__ + " " + str(error)[:60]})
        if len(results) == count:
            done.set()

    tasks = [asyncio.create_task(page(token)) for token in tokens]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), HERD_LIMIT_S)
    results += [{"refused": f"no first message within {HERD_LIMIT_S:.0f} s"}
                for _ in range(count - len(results))]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"pages": results, "cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    release.set()
    await asyncio.gather(*tasks)
    print("closed", flush=True)


def run_herd(stack: Stack, memory: Memory, pages: int) -> dict[str, Any]:
    time.sleep(3)
    before = memory.now()
    tokens = [stack.token(f"herd-{index}", *ROLE_MIX[index % len(ROLE_MIX)])
              for index in range(pages)]
    share = -(-pages // CLIENT_PROCESSES)
    children = []
    for offset in range(0, pages, share):
        tokens_file = stack.workdir / f"herd-tokens-{offset}.json"
        tokens_file.write_text(json.dumps(tokens[offset:offset + share]))
        children.append(subprocess.Popen(
            [sys.executable, __file__, "--herd-client", stack.push_url, str(tokens_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True))
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    start_at = time.time() + 1.0
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start_at}\n")
        child.stdin.flush()
    time.sleep(max(0.0, start_at - time.time()))
    memory.reset_peak()
    cpu_before = memory.cpu_seconds()
    progress(f"herd of {pages} pages started")
    results: list[dict[str, Any]] = []
    clients_cpu = 0.0
    for child in children:
        assert child.stdout is not None
        reply = json.loads(child.stdout.readline())
        results += reply["pages"]
        clients_cpu += reply["cpu_s"]
    push_cpu = memory.cpu_seconds() - cpu_before
    progress("every page has its first message or failed")
    peak = memory.peak
    time.sleep(5)
    held = memory.now()
    for child in children:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("close\n")
        child.stdin.flush()
        child.stdout.readline()
        child.wait(60)
    time.sleep(5)
    after = memory.now()
    connected = sorted(result["s"] for result in results if result.get("snapshot"))
    refused = [result["refused"] for result in results if "refused" in result]
    return {
        "pages": pages, "connected": len(connected), "refused": len(refused),
        "refusal_kinds": sorted(set(refused))[:5],
        "all_connected_s": round(connected[-1], 2) if connected else None,
        "p50_s": round(percentile(connected, 0.5), 2),
        "p99_s": round(percentile(connected, 0.99), 2),
        "snapshot_kb": round(max((r.get("bytes", 0) for r in results), default=0) / 1024),
        "cpu_s": {"push": round(push_cpu, 1), "clients": round(clients_cpu, 1)},
        "rss_mb": {"before": round(before), "peak": round(peak), "pages_open_idle": round(held),
                   "after_close": round(after)},
    }


def consumed(r: redis.Redis, stream: str) -> bool:
    """The consumer group has read and acknowledged every entry of ``stream``."""
    group = r.xinfo_groups(stream)[0]
    newest = r.xrevrange(stream, count=1)[0][0]
    return bool(group["pending"] == 0 and group["last-delivered-id"] == newest)


def stream_id(text: str) -> tuple[int, int]:
    millis, _, sequence = text.partition("-")
    return int(millis), int(sequence or 0)


# --- (b) slow readers ------------------------------------------------------------------
def stalled_page(stack: Stack, index: int, pages: contextlib.ExitStack) -> ClientConnection:
    """A page that takes its snapshot, then never reads again (max_queue=1: its client
    stops reading the socket once one more message is waiting)."""
    token = stack.token(f"slow-{index}", "commander")
    page = pages.enter_context(connect_sync(f"{stack.push_url}?token={token}", max_size=None,
                                            max_queue=1, open_timeout=60, ping_interval=None))
    page.recv(timeout=60)
    return page


def silent_socket(stack: Stack, index: int) -> socket.socket:
    """A websocket that completes its handshake, then never reads a byte of its snapshot."""
    token = stack.token(f"silent-{index}", "commander")
    sock = socket.create_connection(("127.0.0.1", stack.push_port), timeout=60)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /live?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing after the handshake is read
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"silent page refused: {head[:40]!r}")
    return sock


def tcp_established(sock: socket.socket) -> bool:
    """The kernel's view: still ESTABLISHED (push aborts a page it drops: RST)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == 1


def unit_fixes(units: int, rate: float, seconds: float) -> Iterator[list[Event]]:
    """Batches of unit fixes, one batch per 10 ms, ``rate`` fixes a second in all."""
    rng = random.Random(7)
    where = {f"U{n:03d}": [CENTRE[0] + rng.uniform(-0.03, 0.03),
                           CENTRE[1] + rng.uniform(-0.04, 0.04)] for n in range(units)}
    ids = list(where)
    per_batch, count = max(1, round(rate / 100)), 0
    for _ in range(round(seconds * 100)):
        batch: list[Event] = []
        for _ in range(per_batch):
            unit = ids[count % units]
            count += 1
            where[unit][0] += rng.uniform(-0.0002, 0.0002)
            where[unit][1] += rng.uniform(-0.0002, 0.0002)
            batch.append(UnitEvent(
                event_id=f"fix-{count}", event_time=datetime.now(UTC), source="avl",
                unit_id=unit, unit_kind="patrol", status="available",
                lat=round(where[unit][0], 6), lon=round(where[unit][1], 6),
                heading=round(rng.uniform(0, 359), 1), speed_kmh=30.0,
                district=DISTRICTS[count % 3], callsign=f"Car {unit}"))
        yield batch


def run_slow(stack: Stack, memory: Memory, r: redis.Redis, slow: int, rate: float,
             seconds: float) -> dict[str, Any]:
    time.sleep(3)
    dropped_before = stack.push_log().count("dropping client")
    before = memory.now()
    pages = contextlib.ExitStack()
    stalled = [stalled_page(stack, index, pages) for index in range(slow // 2)]
    silent = [silent_socket(stack, index) for index in range(slow - slow // 2)]
    progress(f"{len(stalled)} stalled and {len(silent)} silent pages open")
    reader = pages.enter_context(connect_sync(
        f"{stack.push_url}?token={stack.token('reader', 'admin')}", max_size=None))
    first = json.loads(reader.recv(timeout=30))
    received: list[tuple[str, str]] = []
    last_id = [first["last_id"]]

    def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            for raw in reader:
                message = json.loads(raw)
                if message["type"] == "delta":
                    received.extend((c["entity"], c["id"]) for c in message["changes"])
                    last_id[0] = message["last_id"]

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    memory.reset_peak()
    started = time.monotonic()
    for number, batch in enumerate(unit_fixes(200, rate, seconds)):
        publish(r, stack.keys, batch)
        time.sleep(max(0.0, started + (number + 1) / 100 - time.monotonic()))
    progress(f"published {rate:.0f} fixes/s for {time.monotonic() - started:.0f} s")
    applied = stack.keys.raw_stream("avl")
    wait_for(lambda: consumed(r, applied), "the consumer to catch up", 120)
    newest = r.xrevrange(stack.keys.changes, count=1)[0][0].decode()
    wait_for(lambda: stream_id(last_id[0]) >= stream_id(newest),
             "the reading page to catch up", 60)
    peak = memory.peak
    time.sleep(5)
    after = memory.now()
    expected = [(change["entity"], change["id"])
                for _, fields in r.xrange(stack.keys.changes, f"({first['last_id']}", newest)
                for change in json.loads(fields[b"batch"])]
    stalled_open = sum(tcp_established(page.socket) for page in stalled)
    silent_open = sum(tcp_established(sock) for sock in silent)
    for page in stalled:
        page.close_socket()
    pages.close()
    for sock in silent:
        sock.close()
    time.sleep(5)
    closed = memory.now()
    return {
        "slow": slow, "rate": rate, "seconds": seconds,
        "dropped": stack.push_log().count("dropping client") - dropped_before,
        "still_open": stalled_open + silent_open,
        "still_open_by_kind": {"stalled": stalled_open, "silent": silent_open},
        "reader_complete_in_order": received == expected,
        "reader_changes": len(received),
        "rss_mb": {"before": round(before), "peak": round(peak), "after": round(after),
                   "after_close": round(closed)},
    }


# --- main ------------------------------------------------------------------------------
def audit_counts(r: redis.Redis, keys: Keys) -> dict[str, int]:
    """Audit entries push wrote during the run, by action (they cost one XADD each)."""
    counts: dict[str, int] = {}
    for _, fields in r.xrange(keys.audit):
        found = fields[b"action"]
        action = found.decode() if isinstance(found, bytes) else str(found)
        counts[action] = counts.get(action, 0) + 1
    return counts


def print_load() -> None:
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} (1/5/15 min)")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--herd-client":
        url, tokens_file = sys.argv[2:4]
        asyncio.run(herd_client(url, json.loads(Path(tokens_file).read_text())))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=981)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--herds", type=int, default=2,
                        help="herds one after another (the second shows what the first left)")
    parser.add_argument("--skip-herd", action="store_true")
    parser.add_argument("--skip-slow", action="store_true")
    args = parser.parse_args()
    # SIGTERM (a timeout) unwinds like an error, so the processes started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        stack = Stack(Path(tmp)).start()
        r = redis.Redis.from_url(stack.server.url)
        memory = Memory(stack.processes["push"].pid)
        try:
            publish(r, stack.keys, open_call_events(args.calls, datetime.now(UTC)))
            wait_for(lambda: r.zcard(stack.keys.calls_open) >= args.calls,
                     f"{args.calls} open calls")
            progress(f"{args.calls} open calls applied")
            herds = [] if args.skip_herd else [run_herd(stack, memory, args.pages)
                                               for _ in range(args.herds)]
            slow = None if args.skip_slow else run_slow(stack, memory, r, args.slow,
                                                        args.rate, args.seconds)
            audited = audit_counts(r, stack.keys)
        except Exception:
            log = stack.push_log()
            first_error = log.find("Traceback")
            print(log[max(0, first_error - 500):first_error + 3000] if first_error >= 0
                  else log[-3000:], file=sys.stderr)
            raise
        finally:
            memory.stop()
            r.close()
            stack.stop()
    for number, herd in enumerate(herds, start=1):
        report_herd(number, herd)
    if not herds:
        print_load()
    report_slow(slow)
    print(f"audit trail: {audited} (one entry per socket opened, ended or refused)")
    ok = all(herd["refused"] == 0 and herd["connected"] == herd["pages"]
             and herd["all_connected_s"] <= CONNECT_TARGET_S for herd in herds)
    ok = ok and (slow is None or (slow["reader_complete_in_order"] and slow["still_open"] == 0))
    print(json.dumps({"bench": "push", "herds": herds, "slow": slow, "audit": audited,
                      "ok": ok}))
    return 0


def report_herd(number: int, herd: dict[str, Any]) -> None:
    if number == 1:
        print_load()
    print(f"(a) herd {number}: {herd['pages']} pages at once, snapshot {herd['snapshot_kb']} KB")
    print(f"    connected {herd['connected']}, refused {herd['refused']} "
          f"{herd['refusal_kinds'] or ''}")
    print(f"    first message: p50 {herd['p50_s']} s, p99 {herd['p99_s']} s, "
          f"all {herd['all_connected_s']} s (target {CONNECT_TARGET_S:.0f} s)")
    print(f"    CPU used until then: push {herd['cpu_s']['push']} s, the two client "
          f"processes {herd['cpu_s']['clients']} s")
    rss = herd["rss_mb"]
    print(f"    push RSS MB: before {rss['before']}, peak {rss['peak']}, with the pages "
          f"open and idle {rss['pages_open_idle']}, after they closed {rss['after_close']}")


def report_slow(slow: dict[str, Any] | None) -> None:
    if not slow:
        return
    rss = slow["rss_mb"]
    print(f"(b) slow readers: {slow['slow']} stop reading (half after their snapshot, "
          f"half at once), {slow['rate']:.0f} fixes/s for {slow['seconds']:.0f} s")
    print(f"    dropped {slow['dropped']}, still open {slow['still_open']} "
          f"{slow['still_open_by_kind']}; reading page got {slow['reader_changes']} changes, "
          f"complete and in order: {slow['reader_complete_in_order']}")
    print(f"    push RSS MB: before {rss['before']}, peak {rss['peak']}, 5 s after the "
          f"changes stopped {rss['after']}, 5 s after the slow pages closed "
          f"{rss['after_close']}")


if __name__ == "__main__":
    sys.exit(main())
