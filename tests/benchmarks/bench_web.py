"""Benchmark: 200 signed-in clients doing what the pages do, against the real web server.

Usage: python tests/benchmarks/bench_web.py [--clients 200] [--seconds 30]
       [--history-days 365] [--backlog 100] [--web-workers N] [--no-think | --both]
       [--logs DIR]

1. Live state as `make run` has it: a fresh embedded redis-server holding a year of closed
   calls (about 500 a day, in the consumer's record format), the real consumer, the
   history writer (its files caught up before the run), the simulator (6 h warm-up, then
   real time: new calls, 60 units moving), a backlog of open calls as on a busy summer
   night (``--backlog``), the push service and `python -m dashboard serve` (gunicorn with
   the product's own settings).
2. Requests captured from the pages: headless Chromium signs in through the real form,
   opens /queues (as a cso), /response (supervisor) and /wall?mode=poll (commander), taps a
   card, and every POST /_dash-update-component it sends is recorded. Kinds:
   - page: a page load as the browser does it (the HTML, /_dash-layout and
     /_dash-dependencies at once, then the callback that renders the page's content);
   - tablet filter / response filter: a captured callback whose inputs include a
     component with options (dropdowns, chips), replayed with values picked from those
     options (what the layout offers), one input changed at a time, as a user does;
   - call detail: the request a tap on a card sends, replayed with the ids of other open
     calls in the client's district;
   - tablet live: the cards re-rendered because an open call changed (the page's live
     update bumps its version and Dash asks for the cards again: every open tablet at once);
   - poll: the polling wall's 1-second interval callback (the fallback when push is down).
3. Clients: ``--clients`` httpx clients (two connections each, as a page load uses), each
   with its own session: one per user name signs in through the real form, the others get
   theirs from the product's session store, which is what a form sign-in ends in (200
   password hashes took minutes on a busy machine; bench_signin.py measures sign-in).
   Every client has its page open before a run starts (as on a working shift; 200 page
   loads in the same second are a different figure). Half are tablets (cso or sro: a
   filter change, then a tap on a card, a page reload every 20 of those, at different
   points for different tablets), 40 % supervisors on /response (filter changes), 10 %
   walls on the polling fallback (one poll a second, as the page does, not in lock-step).
4. Pace. Default, human pace: a tablet user waits on average TABLET_THINK_S (5 s) before
   each filter change or tap ("a tap every few seconds", a busy officer going through the
   queue), a supervisor SUPERVISOR_THINK_S (10 s) before each filter change (each one
   redraws two charts, a table and compliance cards to read), both exponential (most
   actions come soon after the last, a few after a long look; no lock-step). Tablets also
   re-render on every change of an open call, walls poll every second: what the pages do
   by themselves. ``--no-think`` is the saturation figure: tablets and supervisors send
   their next request as soon as the last is answered (a closed loop: latency is then
   clients / throughput, not what a user waits). ``--both`` runs human pace, then
   no-think, on the same stack and signed-in clients.
A reply counts as failed unless it is HTTP 200 with the JSON Dash expects; every failure is
counted and printed with its first examples. Target: p99 <= 2 s for every kind. Prints
figures per kind for each mode, then as LAST line JSON (one mode, or {"modes": [...]}).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402

from dashboard.auth import Auth  # noqa: E402
from dashboard.auth.per_request import CSRF_COOKIE, SESSION_COOKIE  # noqa: E402
from dashboard.readapi import LiveReader  # noqa: E402
from dashboard.server import THREADS_PER_WORKER  # noqa: E402
from streams.core.access import User  # noqa: E402
from streams.core.events import CATEGORIES, QOL_CATEGORIES, CallEvent, Event, is_qol  # noqa: E402
from streams.core.geography import geography_from_settings  # noqa: E402
from streams.core.history import MANIFEST_NAME, folder_of  # noqa: E402
from streams.core.keys import CLOSED_MAXLEN, Keys  # noqa: E402
from streams.core.livestate import closed_record  # noqa: E402
from streams.core.settings import Settings  # noqa: E402
from streams.redis_server import EmbeddedRedis, free_port  # noqa: E402
from tests.benchmarks.common import percentile, run_async  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SECRET_KEY, Stack, settings_env  # noqa: E402

T = TypeVar("T")
SHARED_DATA = ROOT.parent / "shared" / "data"
P99_TARGET_S = 2.0
CALLBACK = "/_dash-update-component"
USERS = {  # name -> (role, district)
    "bench-cso-north": ("cso", "North"), "bench-cso-central": ("cso", "Central"),
    "bench-sro-south": ("sro", "South"), "bench-supervisor": ("supervisor", None),
    "bench-commander": ("commander", None),
}
PASSWORD = "bench-password-0123"
KINDS = ("page", "tablet filter", "call detail", "tablet live", "response filter", "poll")
TABLET_RELOAD_EVERY = 20
TABLET_THINK_S = 5.0
"""Mean pause of a tablet user before a filter change or a tap (see the docstring)."""
SUPERVISOR_THINK_S = 10.0
"""Mean pause of a supervisor before the next filter change on /response."""
POLL_INTERVAL_S = 1.0
REQUEST_TIMEOUT_S = 120.0
DAY = 86400.0



# --- the live state ----------------------------------------------------------------------
HOODS = {"North": ("Blue Hills", "Northeast", "Upper Albany"),
         "Central": ("Asylum Hill", "Frog Hollow", "West End"),
         "South": ("Barry Square", "South Green", "Southwest")}


def closed_history(days: float, now: float, per_day: int = 500,
                   seed: int = 2014) -> Iterator[dict[str, str]]:
    """About ``per_day`` closed-call records a day over ``days`` up to ``now``, oldest first."""
    rng = random.Random(seed)
    count = int(days * per_day)
    for number, start in enumerate(sorted(now - rng.random() * days * DAY
                                          for _ in range(count))):
        district = rng.choice(tuple(HOODS))
        category = rng.choice(CATEGORIES)
        dispatched = start + rng.gammavariate(2.0, 60.0)
        on_scene = dispatched + rng.gammavariate(3.0, 110.0) if rng.random() > 0.08 else None
        yield closed_record({
            "call_id": f"H{number:07d}", "category": category, "qol": is_qol(category),
            "priority": rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5)), "district": district,
            "neighborhood": rng.choice(HOODS[district]), "call_type": category,
            "received_time": start, "dispatched_time": dispatched, "on_scene_time": on_scene,
            "closed_time": (on_scene or dispatched) + 900.0,
            "status": "cancelled" if rng.random() < 0.03 else "closed", "source": "bench"})


def write_history(client: redis.Redis, keys: Keys, days: float, chunk: int = 5000) -> int:
    written = 0
    pipe = client.pipeline(transaction=False)
    for record in closed_history(days, time.time()):
        pipe.xadd(keys.closed, record, maxlen=CLOSED_MAXLEN, approximate=True)
        written += 1
        if written % chunk == 0:
            pipe.execute()
    pipe.execute()
    return written


def backlog(settings: Settings, count: int, seed: int = 7) -> list[Event]:
    """``count`` open calls waiting over the last two hours, two thirds of them QoL, at
    random points of random neighborhoods (so district and neighborhood are true)."""
    rng = random.Random(seed)
    city = geography_from_settings(settings)
    now = time.time()
    events: list[Event] = []
    for number in range(count):
        hood = rng.choice(city.neighborhoods)
        lat, lon = hood.random_point(rng)
        received = now - rng.uniform(60, 7200)
        category = rng.choice(QOL_CATEGORIES) if rng.random() < 2 / 3 else rng.choice(CATEGORIES)
        events.append(CallEvent(
            event_id=f"backlog-{number}", event_time=at(received), source="bench",
            kind="created", call_id=f"BL{number:05d}", received_time=at(received),
            category=category, priority=rng.choice((2, 3, 3, 4, 4, 5)),
            call_type=f"{category} complaint", address=f"{100 + number} Bench Street",
            lat=lat, lon=lon, district=hood.district, neighborhood=hood.name,
            caller_name="Bench Caller", caller_phone="860-555-0100"))
    return events


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def add_users(stack: Stack) -> None:
    """Through the command line every deployment uses (`python -m dashboard adduser`)."""
    for name, (role, district) in USERS.items():
        argv = [sys.executable, "-m", "dashboard", "adduser", name, "--role", role,
                "--password-stdin", *(["--district", district] if district else [])]
        subprocess.run(argv, input=PASSWORD + "\n", text=True, env=stack.env, cwd=ROOT,
                       check=True, capture_output=True)


def start_stack(workdir: Path, args: argparse.Namespace) -> tuple[EmbeddedRedis, Stack]:
    server = EmbeddedRedis(workdir / "redis", free_port(), appendonly=False).start()
    overrides = {name: value for name, value in (("web_workers", args.web_workers),
                                                 ("web_threads", args.web_threads))
                 if value is not None and name in Settings.__dataclass_fields__}
    settings = Settings(
        redis_url=server.url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}", data_dir=workdir,
        shared_data_dir=SHARED_DATA, secret_key=SECRET_KEY, web_port=free_port(),
        push_port=free_port(), simulate=True, log_level="WARNING", tile_url=None,
        # Every client signs in from this one address, 10 at once; this bench measures the
        # pages (bench_signin.py measures sign-in), so the sign-in gate lets them through.
        login_attempts_per_minute=10_000, login_hashes_per_second=1_000.0, **overrides)
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    logs = workdir / "logs"
    logs.mkdir()
    stack = Stack(settings, Keys(settings.key_prefix), redis.Redis.from_url(server.url), env,
                  logs)
    try:
        add_users(stack)
        print(f"writing {args.history_days:g} days of closed calls ...", flush=True)
        written = write_history(stack.redis, stack.keys, args.history_days)
        print(f"  {written} closed calls", flush=True)
        for name in ("consumer", "push", "history", "web"):
            stack.start(name)
        simulator = subprocess.Popen(
            [sys.executable, "-m", "streams", "simulate", "--warmup-hours", str(args.warmup_hours)],
            env=env, cwd=ROOT, stdout=(logs / "simulator.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        stack.processes["simulator"] = simulator
        stack.publish(backlog(settings, args.backlog))
        wait_for(lambda: stack.redis.zcard(stack.keys.calls_open) >= args.backlog,
                 "the backlog and the warm-up applied", 180)
        wait_for(lambda: history_rows(settings) >= written, "the history writer's files", 300)
    except BaseException:  # stop what started: its processes outlive this one
        stop_stack(server, stack)
        raise
    return server, stack


def stop_stack(server: EmbeddedRedis, stack: Stack) -> None:
    for name in list(stack.processes):
        stack.stop(name)
    stack.redis.close()
    server.stop()


def history_rows(settings: Settings) -> int:
    """Closed calls the history writer's files hold (its manifest), 0 before the first."""
    manifest = folder_of(settings.resolved_history_dir, settings.key_prefix) / MANIFEST_NAME
    try:
        return int(json.loads(manifest.read_text())["rows"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_for(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


# --- capturing what the pages send ------------------------------------------------------
@dataclass
class Captured:
    """The callback requests one page sent, and the options its layout offers."""

    path: str
    layout_body: dict[str, Any]
    callbacks: list[dict[str, Any]]
    taps: list[dict[str, Any]]
    options: dict[str, list[Any]]
    """component id -> the option values the page offers (dropdowns, chips, checklists)."""
    multi: set[str]
    intervals: dict[str, float]
    """dcc.Interval id -> its interval in ms."""


def component_props(tree: Any) -> Iterator[dict[str, Any]]:
    """The props of every component in a Dash layout tree."""
    if isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and "type" in tree:
            yield {**props, "_type": tree["type"]}
        for value in tree.values() if props is None else props.values():
            yield from component_props(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from component_props(item)


def key_of(component_id: Any) -> str:
    return component_id if isinstance(component_id, str) else json.dumps(component_id,
                                                                          sort_keys=True)


def offered(tree: Any) -> tuple[dict[str, list[Any]], set[str], dict[str, float]]:
    options: dict[str, list[Any]] = {}
    multi: set[str] = set()
    intervals: dict[str, float] = {}
    for props in component_props(tree):
        if "id" not in props:
            continue
        key = key_of(props["id"])
        if isinstance(props.get("options"), list) and props["options"]:
            values = [o["value"] if isinstance(o, dict) else o for o in props["options"]
                      if not (isinstance(o, dict) and o.get("disabled"))]
            if values:
                options[key] = values
            if props.get("multi") or isinstance(props.get("value"), list):
                multi.add(key)
        if props["_type"] == "Interval":
            intervals[key] = float(props.get("interval", 1000))
    return options, multi, intervals


def capture(browser: Any, stack: Stack, user: str, path: str,
            wanted: Callable[[Captured], bool], tap: bool = False) -> Captured:
    """Open ``path`` signed in as ``user`` and record the callbacks the page sends, until
    ``wanted`` holds for them (and, with ``tap``, what tapping a card sends)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(120_000)
    page = context.new_page()
    seen: list[Any] = []
    page.on("request", lambda request: seen.append(request)
            if request.method == "POST" and CALLBACK in request.url else None)
    page.goto(f"{stack.base_url}/login?next={path}")
    page.fill("#login-name", user)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    deadline = time.monotonic() + 120
    captured = None
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        captured = _captured(path, list(seen))
        if captured is not None and wanted(captured):
            break
    if captured is None or not wanted(captured):
        raise RuntimeError(f"{path} did not send the callbacks expected within 120 s")
    if tap:
        loaded = len(seen)
        page.locator("[data-call-id]").first.click()
        while not any(_carries_call(json.loads(r.post_data)) for r in seen[loaded:]) \
                and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        # The tap's own request (a live update may re-render the cards meanwhile).
        captured.taps = [body for body in (json.loads(r.post_data) for r in seen[loaded:])
                         if _carries_call(body)]
    context.close()
    return captured


def _carries_call(body: dict[str, Any]) -> bool:
    return any(isinstance(part, dict) and isinstance(part.get("value"), dict)
               and "call_id" in part["value"] for part in body.get("inputs", []))


def _captured(path: str, seen: list[Any]) -> Captured | None:
    bodies = [json.loads(request.post_data) for request in seen]
    layouts = [i for i, body in enumerate(bodies) if "_pages_content" in body["output"]]
    if not layouts:
        return None
    reply = seen[layouts[0]].response()
    if reply is None:
        return None
    options, multi, intervals = offered(reply.json())
    others = [body for i, body in enumerate(bodies) if i != layouts[0]]
    return Captured(path, bodies[layouts[0]], others, [], options, multi, intervals)


def capture_all(stack: Stack) -> dict[str, Captured]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            def filters(captured: Captured) -> bool:
                return bool(filter_callbacks(captured))

            return {
                "tablet": capture(browser, stack, "bench-cso-north", "/queues", filters,
                                  tap=True),
                "response": capture(browser, stack, "bench-supervisor", "/response", filters),
                "wall": capture(browser, stack, "bench-commander", "/wall?mode=poll",
                                lambda captured: bool(poll_callbacks(captured))),
            }
        finally:
            browser.close()


# --- turning captures into requests -------------------------------------------------------
def filter_callbacks(captured: Captured) -> list[dict[str, Any]]:
    """Captured callbacks with at least one input that has options to pick from."""
    return [body for body in captured.callbacks
            if any(key_of(i["id"]) in captured.options for i in body.get("inputs", [])
                   if isinstance(i, dict))]


def poll_callbacks(captured: Captured) -> list[dict[str, Any]]:
    """Callbacks fired by an interval of 1 s or less (the polling fallback), one per output."""
    found = {body["output"]: body for body in captured.callbacks
             if any(i.get("property") == "n_intervals"
                    and captured.intervals.get(key_of(i["id"]), 1e9) <= 1000
                    for i in body.get("inputs", []) if isinstance(i, dict))}
    return list(found.values())


def changed_filter(body: dict[str, Any], captured: Captured, rng: random.Random,
                   ) -> dict[str, Any]:
    """``body`` with one option-bearing input set to another offered value."""
    changed = copy.deepcopy(body)
    choices = [i for i in changed["inputs"] if isinstance(i, dict)
               and key_of(i["id"]) in captured.options]
    chosen = rng.choice(choices)
    values = captured.options[key_of(chosen["id"])]
    if key_of(chosen["id"]) in captured.multi:
        chosen["value"] = rng.sample(values, rng.randint(0, min(3, len(values))))
    else:
        chosen["value"] = rng.choice(values)
    changed["changedPropIds"] = [f"{key_of(chosen['id'])}.{chosen['property']}"]
    return changed


def with_call(body: dict[str, Any], call_id: str) -> dict[str, Any]:
    """A captured tap with another call's id (and a fresh tap time)."""
    tapped = copy.deepcopy(body)
    for part in tapped.get("inputs", []) + tapped.get("state", []):
        value = part.get("value") if isinstance(part, dict) else None
        if isinstance(value, dict) and "call_id" in value:
            value["call_id"] = call_id
            if "at" in value:
                value["at"] = time.time() * 1000
    return tapped


def valid_reply(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    try:
        return "response" in response.json() or response.json().get("multi") is not None
    except ValueError:
        return False


# --- the clients ------------------------------------------------------------------------
@dataclass
class Results:
    started: float = 0.0
    stop_at: float = 0.0
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    requests: int = 0

    def running(self) -> bool:
        return time.monotonic() < self.stop_at


@dataclass(frozen=True)
class Pace:
    """How long a person waits between two actions (exponential: most actions come
    quickly after the last, a few after a long look); None: at once (saturation)."""

    tablet_s: float | None
    supervisor_s: float | None

    async def think(self, mean_s: float | None, rng: random.Random, results: Results) -> None:
        if mean_s is None:
            return
        await asyncio.sleep(min(rng.expovariate(1.0 / mean_s),
                                max(0.0, results.stop_at - time.monotonic())))


HUMAN = Pace(tablet_s=TABLET_THINK_S, supervisor_s=SUPERVISOR_THINK_S)
NO_THINK = Pace(tablet_s=None, supervisor_s=None)


class Client:
    """One signed-in browser, as the server sees it."""

    def __init__(self, base_url: str, user: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S,
                                      limits=httpx.Limits(max_connections=2))
        self.user = user
        self.body: dict[str, Any] | None = None
        """The filters as this tablet shows them now (what a live update re-renders)."""

    async def sign_in(self, path: str) -> None:
        """Through the real sign-in form."""
        form = (await self.http.get("/login")).text
        nonce = re.search(r'name="nonce" value="([^"]+)"', form)
        if nonce is None:
            raise RuntimeError("no sign-in form")
        reply = await self.http.post("/login", data={"name": self.user, "password": PASSWORD,
                                                      "nonce": nonce.group(1), "next": path})
        if reply.status_code != 302:
            raise RuntimeError(f"sign-in of {self.user} answered {reply.status_code}")
        await self.http.get(path)

    async def adopt(self, secret: str, csrf: str, path: str) -> None:
        """Use a session the session store made (what a form sign-in ends in)."""
        self.http.cookies.set(SESSION_COOKIE, secret)
        self.http.cookies.set(CSRF_COOKIE, csrf)
        reply = await self.http.get(path)
        if reply.status_code != 200:
            raise RuntimeError(f"{self.user}'s session answered {reply.status_code}")

    def headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.http.cookies.get(CSRF_COOKIE) or "",
                "Content-Type": "application/json"}

    async def callback(self, body: dict[str, Any]) -> httpx.Response:
        self.http.headers.update({"Referer": str(self.http.base_url)})
        return await self.http.post(CALLBACK, content=json.dumps(body), headers=self.headers())

    async def page(self, captured: Captured) -> httpx.Response:
        """A page load as the browser does it; the first reply that is not what the
        browser needs (or the content callback's)."""
        for step in (self.http.get(captured.path),
                     asyncio.gather(self.http.get("/_dash-layout"),
                                    self.http.get("/_dash-dependencies"))):
            replies = await step
            for reply in replies if isinstance(replies, list) else [replies]:
                if reply.status_code != 200:
                    return reply
        return await self.callback(captured.layout_body)


async def sign_in_all(stack: Stack, clients: list[Client], paths: list[str]) -> None:
    """The first client of each user signs in through the form; the others get their own
    session from the product's session store, as a form sign-in would give them. 200
    password hashes on a busy 2-core machine took minutes (bench_signin measures those)."""
    sessions = Auth.open(stack.settings, stack.redis).sessions
    formed: set[str] = set()
    for client, path in zip(clients, paths, strict=True):
        if client.user not in formed:
            formed.add(client.user)
            await client.sign_in(path)
            continue
        role, district = USERS[client.user]
        secret, session = sessions.create(User(client.user, role, district), "password",
                                          "127.0.0.1", "bench_web")
        await client.adopt(secret, session.csrf, path)


async def timed(results: Results, kind: str,
                action: Coroutine[Any, Any, httpx.Response]) -> None:
    started = time.monotonic()
    try:
        outcome = await action
        ok = valid_reply(outcome)
        problem = "" if ok else (f"HTTP {outcome.status_code} on {outcome.request.url.path}: "
                                 f"{outcome.text[:200]}")
    except httpx.HTTPError as error:
        ok, problem = False, f"{type(error).__name__}: {error} on {path_of(error)}"
    took = time.monotonic() - started
    if time.monotonic() > results.stop_at or started < results.started:
        return
    results.requests += 4 if kind == "page" else 1
    results.times[kind].append(took)
    if not ok:
        results.failures[kind].append(problem)


def path_of(error: httpx.HTTPError) -> str:
    try:
        return error.request.url.path
    except RuntimeError:  # an error raised before the request was made
        return "?"


class CallChanges:
    """Wakes every open tablet when an open call changed, as push's live update does
    (each tablet then re-renders its cards with one callback)."""

    def __init__(self) -> None:
        self.fingerprint = ""
        self.event = asyncio.Event()

    def saw(self, calls: list[dict[str, Any]]) -> None:
        fingerprint = json.dumps(calls, sort_keys=True, default=str)
        if fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.event.set()
            self.event = asyncio.Event()

    async def next(self, results: Results) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(),
                                   max(0.01, results.stop_at - time.monotonic()))
        except TimeoutError:
            return False
        return True


async def tablet(client: Client, captured: Captured, calls: Callable[[], list[str]],
                 results: Results, rng: random.Random, pace: Pace) -> None:
    filters = filter_callbacks(captured)
    count = rng.randrange(1, TABLET_RELOAD_EVERY)  # tablets do not all reload at once
    client.body = captured.layout_body
    while results.running():
        if count % TABLET_RELOAD_EVERY == 0:
            await timed(results, "page", client.page(captured))
        await pace.think(pace.tablet_s, rng, results)
        client.body = changed_filter(rng.choice(filters), captured, rng)
        await timed(results, "tablet filter", client.callback(client.body))
        ids = calls()
        if ids and captured.taps:
            await pace.think(pace.tablet_s, rng, results)
            await timed(results, "call detail", client.callback(
                with_call(captured.taps[0], rng.choice(ids))))
        count += 1


async def tablet_live(client: Client, changes: CallChanges, results: Results) -> None:
    """The cards re-rendered after each change of an open call (human-pace mode)."""
    while await changes.next(results):
        if client.body is not None:
            await timed(results, "tablet live", client.callback(client.body))


async def supervisor(client: Client, captured: Captured, results: Results,
                     rng: random.Random, pace: Pace) -> None:
    filters = filter_callbacks(captured)
    while results.running():
        await pace.think(pace.supervisor_s, rng, results)
        await timed(results, "response filter", client.callback(
            changed_filter(rng.choice(filters), captured, rng)))


async def polling_wall(client: Client, captured: Captured, results: Results,
                       rng: random.Random) -> None:
    polls = poll_callbacks(captured)
    await asyncio.sleep(rng.random() * POLL_INTERVAL_S)  # walls are not in lock-step
    tick = time.monotonic()
    number = 0
    while results.running():
        for body in polls:
            number += 1
            polled = copy.deepcopy(body)
            for part in polled["inputs"]:
                if part.get("property") == "n_intervals":
                    part["value"] = number
            await timed(results, "poll", client.callback(polled))
        tick += POLL_INTERVAL_S
        await asyncio.sleep(max(0.0, tick - time.monotonic()))


def roles_of(clients: int) -> list[str]:
    """Half tablets, 40 % supervisors, 10 % polling walls (at least one of each)."""
    walls = max(1, clients // 10)
    supervisors = max(1, clients * 2 // 5)
    return ["wall"] * walls + ["supervisor"] * supervisors + \
        ["tablet"] * (clients - walls - supervisors)


TABLET_USERS = ("bench-cso-north", "bench-cso-central", "bench-sro-south")


@dataclass
class Load:
    """The signed-in clients and what they open, shared by the runs of one bench."""

    stack: Stack
    captures: dict[str, Captured]
    roles: list[str]
    clients: list[Client]
    open_ids: dict[str, list[str]] = field(default_factory=dict)

    def refresh_calls(self, reader: LiveReader) -> list[dict[str, Any]]:
        calls = reader.open_calls()
        for name in TABLET_USERS:
            district = USERS[name][1]
            self.open_ids[name] = [c["call_id"] for c in calls
                                   if c.get("qol") and c.get("district") == district]
        return calls


async def signed_in(stack: Stack, captures: dict[str, Captured], count: int) -> Load:
    roles = roles_of(count)
    users = {"wall": lambda n: "bench-commander", "supervisor": lambda n: "bench-supervisor",
             "tablet": lambda n: TABLET_USERS[n % len(TABLET_USERS)]}
    clients = [Client(stack.base_url, users[role](n)) for n, role in enumerate(roles)]
    paths = {"wall": captures["wall"].path, "supervisor": captures["response"].path,
             "tablet": captures["tablet"].path}
    print(f"signing in {count} clients and opening their pages ...", flush=True)
    await sign_in_all(stack, clients, [paths[role] for role in roles])
    pages = {"wall": captures["wall"], "supervisor": captures["response"],
             "tablet": captures["tablet"]}
    # Every page is open before a run starts, as on a working shift (no one herd of 200
    # page loads in the measured 30 s; tablets' reloads are measured as "page").
    for first in range(0, count, 20):
        await asyncio.gather(*(client.page(pages[role]) for role, client in
                               zip(roles[first:first + 20], clients[first:first + 20],
                                   strict=True)))
    return Load(stack, captures, roles, clients)


async def run_load(load: Load, seconds: float, pace: Pace) -> Results:
    reader = LiveReader(load.stack.redis, load.stack.keys)
    changes = CallChanges()
    changes.saw(load.refresh_calls(reader))
    results = Results()
    results.started = time.monotonic()
    results.stop_at = results.started + seconds

    async def refresher() -> None:
        while results.running():
            changes.saw(await asyncio.to_thread(load.refresh_calls, reader))
            await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(refresher())]
    captures = load.captures
    for number, (role, client) in enumerate(zip(load.roles, load.clients, strict=True)):
        rng = random.Random(number)
        if role == "tablet":
            tasks.append(asyncio.create_task(tablet(
                client, captures["tablet"], lambda c=client: load.open_ids.get(c.user, []),
                results, rng, pace)))
            if pace.tablet_s is not None:
                tasks.append(asyncio.create_task(tablet_live(client, changes, results)))
        elif role == "supervisor":
            tasks.append(asyncio.create_task(supervisor(client, captures["response"],
                                                        results, rng, pace)))
        else:
            tasks.append(asyncio.create_task(polling_wall(client, captures["wall"], results,
                                                          rng)))
    await asyncio.gather(*tasks)
    return results


async def run_modes(stack: Stack, captures: dict[str, Captured], count: int,
                    seconds: float, paces: dict[str, Pace],
                    ) -> dict[str, tuple[Results, float]]:
    """Sign ``count`` clients in once, then run each mode for ``seconds``: mode ->
    (results, CPU seconds this load generator used)."""
    load = await signed_in(stack, captures, count)
    try:
        runs = {}
        for mode, pace in paces.items():
            print(f"running {mode} for {seconds:g} s ...", flush=True)
            before = resource.getrusage(resource.RUSAGE_SELF)
            results = await run_load(load, seconds, pace)
            after = resource.getrusage(resource.RUSAGE_SELF)
            runs[mode] = (results, (after.ru_utime + after.ru_stime)
                          - (before.ru_utime + before.ru_stime))
        return runs
    finally:
        await asyncio.gather(*(client.http.aclose() for client in load.clients))


# --- report -------------------------------------------------------------------------------
def report(mode: str, results: Results, seconds: float, clients: int, cpu_s: float,
           settings: Settings) -> dict[str, Any]:
    kinds = {}
    for kind in KINDS:
        times = results.times.get(kind, [])
        failed = results.failures.get(kind, [])
        kinds[kind] = {"n": len(times), "per_s": round(len(times) / seconds, 1),
                       "failed": len(failed), "p50_s": round(percentile(times, 0.5), 3),
                       "p99_s": round(percentile(times, 0.99), 3),
                       "max_s": round(max(times), 3) if times else math.nan}
    worst = max((k["p99_s"] for k in kinds.values() if k["n"]), default=math.nan)
    return {"mode": mode, "clients": clients, "seconds": seconds,
            "http_requests_per_s": round(results.requests / seconds, 1),
            "web_workers": settings.web_workers,
            "web_threads": getattr(settings, "web_threads", THREADS_PER_WORKER),
            "kinds": kinds, "worst_p99_s": worst, "target_p99_s": P99_TARGET_S,
            "met": bool(worst <= P99_TARGET_S) and not any(results.failures.values()),
            "load_generator_cpu_pct": round(100 * cpu_s / seconds, 1),
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def print_report(figures: dict[str, Any]) -> None:
    print(f"\n{figures['mode']}: {figures['clients']} clients for {figures['seconds']:g} s: "
          f"{figures['http_requests_per_s']} HTTP requests/s "
          f"(web: {figures['web_workers']} workers x {figures['web_threads']} threads)")
    print(f"{'kind':<16}{'n':>7}{'per s':>8}{'failed':>8}{'p50 s':>9}{'p99 s':>9}"
          f"{'max s':>9}")
    for kind, k in figures["kinds"].items():
        print(f"{kind:<16}{k['n']:>7}{k['per_s']:>8}{k['failed']:>8}{k['p50_s']:>9}"
              f"{k['p99_s']:>9}{k['max_s']:>9}")
    print(f"worst p99 {figures['worst_p99_s']} s (target <= {figures['target_p99_s']} s): "
          f"{'met' if figures['met'] else 'NOT met'}; load generator used "
          f"{figures['load_generator_cpu_pct']} % of a core; load average "
          f"{figures['load_avg_1_5_15']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--history-days", type=float, default=365.0)
    parser.add_argument("--warmup-hours", type=float, default=6.0)
    parser.add_argument("--backlog", type=int, default=100,
                        help="open calls added to the simulator's (a busy summer night)")
    parser.add_argument("--web-workers", type=int)
    parser.add_argument("--web-threads", type=int)
    parser.add_argument("--no-think", action="store_true",
                        help="saturation: every client sends its next request at once")
    parser.add_argument("--both", action="store_true",
                        help="human pace, then --no-think, on the same stack and clients")
    parser.add_argument("--logs", type=Path,
                        help="copy the processes' logs (web, consumer, push) to this folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server, stack = start_stack(Path(tmp), args)
        try:
            print("capturing the pages' requests in Chromium ...", flush=True)
            captures = capture_all(stack)
            for name, captured in captures.items():
                print(f"  {name}: {len(captured.callbacks)} callbacks on load, "
                      f"{len(filter_callbacks(captured))} with filters, "
                      f"{len(poll_callbacks(captured))} polls, {len(captured.taps)} on tap")
            paces = {"human pace": HUMAN, "no think": NO_THINK} if args.both else \
                {"no think": NO_THINK} if args.no_think else {"human pace": HUMAN}
            runs = run_async(lambda: run_modes(stack, captures, args.clients, args.seconds,
                                               paces))
            every = []
            for mode, (results, cpu) in runs.items():
                figures = report(mode, results, args.seconds, args.clients, cpu,
                                 stack.settings)
                for kind, problems in results.failures.items():
                    print(f"{mode}, {kind}: {len(problems)} failed, e.g. {problems[:2]}")
                print_report(figures)
                every.append(figures)
            print(json.dumps(every[0] if len(every) == 1 else {"modes": every}))
            return 0
        finally:
            stop_stack(server, stack)
            if args.logs is not None:
                shutil.copytree(stack.logs, args.logs, dirs_exist_ok=True)


if __name__ == "__main__":
    sys.exit(main())
