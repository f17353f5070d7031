"""Benchmark: the sign-in limit under concurrency, and what a sign-in flood does to the app.

Usage: python tests/benchmarks/bench_signin.py [--hammer-seconds S] [--flood-seconds F]
       [--flood-threads T]

It starts the real stack's web half (embedded redis-server, `python -m dashboard serve`
under gunicorn with 2 workers) on free ports, adds users with `python -m dashboard adduser`,
and drives it over HTTP as a hostile client would. A password counts as "checked" when the
server answered 401 (it hashed the guess and found it wrong); 429 and 503 are refusals
before any hash. The limit is DISPATCH_LOGIN_ATTEMPTS_PER_MINUTE (5).

Each scenario comes from its own client address (X-Forwarded-For, sent by the client as the
trusted loopback proxy would; the old code ignored it), so one scenario's lock does not
decide the next one. Clients open a connection per request (gunicorn closes idle
keep-alive connections after 2 s).

(a) 16 threads guess one user's password from one address for S seconds (default 60).
(b) 64 guesses at once (a barrier), one user, one address.
(c) 100 different user names, one guess each, from one address.
(d) A signed-in supervisor runs the status page's callback 10 times a second, first alone
    for F seconds, then for F seconds while T threads flood the form with wrong passwords
    for new names from new addresses (X-Forwarded-For, the client being the trusted proxy):
    callback p50/p99/max before and during, and the hashes per second the flood got.
    Then a correct sign-in from a browser that signed in before, during the flood.
Prints figures, then as LAST line JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
PASSWORD = "bench-password-1"
STATUS_CALLBACK = {
    "output": "status-body.children",
    "outputs": {"id": "status-body", "property": "children"},
    "inputs": [{"id": "status-interval", "property": "n_intervals", "value": 1}],
    "changedPropIds": ["status-interval.n_intervals"],
}


def new_client(url: str, address: str, timeout: float = 60) -> httpx.Client:
    """One browser at ``address`` (as the trusted proxy reports it)."""
    return httpx.Client(base_url=url, timeout=timeout, headers={"X-Forwarded-For": address},
                        limits=httpx.Limits(max_keepalive_connections=0))


def nonce_of(client: httpx.Client) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', client.get("/login").text)
    if not found:
        raise RuntimeError("no sign-in form")
    return found.group(1)


def attempt(client: httpx.Client, name: str, password: str,
            headers: dict[str, str] | None = None) -> int:
    """One sign-in through the form (a fresh form each time); the HTTP status."""
    form_headers = headers or {}
    nonce = re.search(r'name="nonce" value="([^"]+)"',
                      client.get("/login", headers=form_headers).text)
    data = {"name": name, "password": password, "nonce": nonce.group(1) if nonce else "",
            "next": "/"}
    return client.post("/login", data=data, headers=form_headers).status_code


class Server:
    """Embedded Redis + gunicorn web server, with users added through the real CLI."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis = EmbeddedRedis(folder / "redis", free_port(), appendonly=False)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.redis.start()
        self.env = {**os.environ, "REDIS_URL": self.redis.url,
                    "DISPATCH_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
                    "DISPATCH_DATA_DIR": str(self.folder / "var"),
                    "DISPATCH_SHARED_DATA": str(SHARED_DATA),
                    "DISPATCH_SECRET_KEY": "bench-signin-secret-0123456789",
                    "DISPATCH_WEB_PORT": str(self.port), "DISPATCH_WEB_WORKERS": "2",
                    "DISPATCH_LOG_LEVEL": "ERROR", "PYTHONUNBUFFERED": "1"}
        for name in ("sup", "victim", "hammered", "burst"):
            self.add_user(name)
        log = (self.folder / "web.log").open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "dashboard", "serve"],
                                        env=self.env, cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("web server did not start")

    def add_user(self, name: str) -> None:
        subprocess.run([sys.executable, "-m", "dashboard", "adduser", name, "--role",
                        "supervisor", "--password-stdin"], input=f"{PASSWORD}\n".encode(),
                       env=self.env, cwd=ROOT, check=True, capture_output=True)

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.redis.stop()


def run_threads(count: int, work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def hammer(url: str, seconds: float) -> Counter[int]:
    """(a) 16 threads, one user, one address, for ``seconds``."""
    answers: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(_: int) -> None:
        with new_client(url, "198.51.100.1") as client:
            while time.monotonic() < deadline:
                status = attempt(client, "hammered", "wrong-password")
                with lock:
                    answers[status] += 1

    run_threads(16, work)
    return answers


def burst(url: str, count: int = 64) -> Counter[int]:
    """(b) ``count`` guesses released at once."""
    answers: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def work(_: int) -> None:
        with new_client(url, "198.51.100.2") as client:
            nonce = nonce_of(client)
            barrier.wait()
            status = client.post("/login", data={"name": "burst", "password": "wrong-pass",
                                                 "nonce": nonce, "next": "/"}).status_code
            with lock:
                answers[status] += 1

    run_threads(count, work)
    return answers


def many_names(url: str, count: int = 100) -> Counter[int]:
    """(c) ``count`` different user names from one address."""
    answers: Counter[int] = Counter()
    with new_client(url, "198.51.100.3") as client:
        for number in range(count):
            answers[attempt(client, f"name-{number}", "wrong-password")] += 1
    return answers


def signed_in_client(url: str, name: str, address: str) -> httpx.Client:
    client = new_client(url, address)
    reply = client.post("/login", data={"name": name, "password": PASSWORD,
                                        "nonce": nonce_of(client), "next": "/"})
    if reply.status_code != 302:
        raise RuntimeError(f"sign-in as {name} failed: {reply.status_code}")
    client.get("/")
    return client


def callback_latencies(client: httpx.Client, seconds: float) -> list[float]:
    """Run the status callback 10 times a second; each answer's latency in ms."""
    token = client.cookies.get("_csrf_token") or ""
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        reply = client.post("/_dash-update-component", json=STATUS_CALLBACK,
                            headers={"X-CSRFToken": token})
        latencies.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"status callback answered {reply.status_code}")
        time.sleep(max(0.0, 0.1 - latencies[-1] / 1000))
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 1),
            "max_ms": round(ordered[-1], 1)}


def flood(url: str, seconds: float, threads: int, client: httpx.Client,
          known_device: httpx.Client) -> dict[str, object]:
    """(d) callback latency during a flood of wrong passwords from many addresses."""
    answers: Counter[int] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def work(number: int) -> None:
        with new_client(url, "10.0.0.1") as flooder:
            sent = 0
            while not stop.is_set():
                sent += 1
                address = f"10.{number}.{sent // 250 % 250}.{sent % 250 + 1}"
                status = attempt(flooder, f"flood-{number}-{sent}", "wrong-password",
                                 {"X-Forwarded-For": address})
                with lock:
                    answers[status] += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    time.sleep(1)  # let the flood reach its pace
    during = callback_latencies(client, seconds)
    signin_started = time.perf_counter()
    known = attempt(known_device, "victim", PASSWORD)
    signin_ms = (time.perf_counter() - signin_started) * 1000
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return {"latency": summary(during), "answers": dict(answers),
            "hashes_per_s": round(answers[401] / elapsed, 2),
            "known_device_signin": known, "known_device_signin_ms": round(signin_ms, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hammer-seconds", type=float, default=60.0)
    parser.add_argument("--flood-seconds", type=float, default=15.0)
    parser.add_argument("--flood-threads", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-signin-") as folder:
        server = Server(Path(folder))
        server.start()
        try:
            figures = measure(server.url, args)
        finally:
            server.stop()
    print(json.dumps(figures))


def measure(url: str, args: argparse.Namespace) -> dict[str, object]:
    hammered = hammer(url, args.hammer_seconds)
    print(f"(a) 16 threads x {args.hammer_seconds:.0f} s, one user, one address: "
          f"{hammered[401]} passwords checked, answers {dict(hammered)}")
    burst_answers = burst(url)
    print(f"(b) 64 at once: {burst_answers[401]} checked, answers {dict(burst_answers)}")
    names = many_names(url)
    print(f"(c) 100 user names, one address: {names[401]} checked, answers {dict(names)}")
    client = signed_in_client(url, "sup", "198.51.100.4")
    time.sleep(2)  # the hash budget refills
    known_device = signed_in_client(url, "victim", "198.51.100.5")  # signed in here before
    known_device.post("/logout", data={"csrf": known_device.cookies.get("_csrf_token", "")})
    alone = summary(callback_latencies(client, args.flood_seconds))
    print(f"(d) status callback alone: p50 {alone['p50_ms']} ms, p99 {alone['p99_ms']} ms, "
          f"max {alone['max_ms']} ms")
    flooded = flood(url, args.flood_seconds, args.flood_threads, client, known_device)
    during = flooded["latency"]
    assert isinstance(during, dict)
    print(f"    during a flood ({args.flood_threads} threads, {flooded['hashes_per_s']} "
          f"hashes/s, answers {flooded['answers']}): p50 {during['p50_ms']} ms, "
          f"p99 {during['p99_ms']} ms, max {during['max_ms']} ms")
    print(f"    correct password from a browser that signed in before, during the flood: "
          f"HTTP {flooded['known_device_signin']} in {flooded['known_device_signin_ms']} ms")
    return {"hammer_checked": hammered[401], "hammer_answers": dict(hammered),
            "burst_checked": burst_answers[401], "names_checked": names[401],
            "callback_alone": alone, "callback_flood": during,
            "flood_hashes_per_s": flooded["hashes_per_s"],
            "known_device_signin": flooded["known_device_signin"]}


if __name__ == "__main__":
    main()
