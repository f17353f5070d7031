"""`python -m streams up` (what `make run` runs): everything starts, survives a Redis
restart, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis

from streams.core.keys import EVENT_FIELD, Keys
from streams.redis_server import free_port
from tests.conftest import SHARED_DATA, TIMEOUT_SCALE


def _processes_mentioning(text: str, environment: bool = True) -> list[int]:
    """Pids whose command line (or environment) contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if environment:
                cmdline += (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline.replace(b"\0", b" "):
            found.append(int(entry.name))
    return found


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.ConnectionError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def system(tmp_path: Path) -> Iterator[dict[str, object]]:
    ports = {"redis": free_port(), "web": free_port(), "push": free_port()}
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update({
        "DISPATCH_DATA_DIR": str(tmp_path / "var"),
        "DISPATCH_SHARED_DATA": str(SHARED_DATA),
        "DISPATCH_EMBEDDED_REDIS_PORT": str(ports["redis"]),
        "DISPATCH_WEB_PORT": str(ports["web"]), "DISPATCH_PUSH_PORT": str(ports["push"]),
        "DISPATCH_WEB_WORKERS": "1", "DISPATCH_SIM_SPEED": "60",
        "DISPATCH_SEED_HISTORY_WEEKS": "1",
    })
    with (tmp_path / "up.log").open("wb") as log:
        launcher = subprocess.Popen([sys.executable, "-m", "streams", "up"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    yield {"process": launcher, "ports": ports, "data_dir": tmp_path / "var"}
    # Captured, so shown only when the test failed: what the processes said (CI keeps no files).
    print("".join((tmp_path / "up.log").read_text(errors="replace").splitlines(True)[-80:]))
    if launcher.poll() is None:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    # redis-server rewrites its title (and the memory of its environment): find it by port.
    leftovers = _processes_mentioning(str(tmp_path)) + _processes_mentioning(
        f"127.0.0.1:{ports['redis']}", environment=False)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)


def _sign_in_as_demo_supervisor(system: dict[str, object], port: int) -> None:
    """The demo users were created in Redis on first start and their passwords printed."""
    data_dir = system["data_dir"]
    assert isinstance(data_dir, Path)
    found = re.search(r"^supervisor\s+password (\S+)",
                      (data_dir / "demo-credentials.txt").read_text(), re.M)
    assert found
    assert found.group(1) in (data_dir.parent / "up.log").read_text()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
        form = re.search(r'name="nonce" value="([^"]+)"', browser.get("/login").text)
        assert form
        reply = browser.post("/login", data={"name": "supervisor", "password": found.group(1),
                                             "nonce": form.group(1)})
        assert reply.status_code == 302, reply.text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _publish_cad_call(client: redis.Redis, call_id: str) -> None:
    """XADD one new CAD call to the raw feed, as a CAD connector would."""
    now = datetime.now(UTC).isoformat()
    event = {"type": "call", "event_id": f"{call_id}-created", "event_time": now,
             "kind": "created", "call_id": call_id, "category": "noise",
             "received_time": now, "priority": 3}
    client.xadd(Keys().raw_stream("cad"), {EVENT_FIELD: json.dumps(event)})


def test_up_serves_applies_events_survives_redis_restart_and_stops_cleanly(
        system: dict[str, object]) -> None:
    """The dashboard answers, events flow, a killed Redis comes back with its state, and
    SIGINT stops every child including Redis."""
    ports = system["ports"]
    assert isinstance(ports, dict)
    launcher = system["process"]
    assert isinstance(launcher, subprocess.Popen)
    web = f"http://127.0.0.1:{ports['web']}/login"
    _wait_for(lambda: urllib.request.urlopen(web, timeout=2).status == 200, 60, "the web page")
    _sign_in_as_demo_supervisor(system, ports["web"])
    data_dir = system["data_dir"]
    assert isinstance(data_dir, Path)
    stranger = redis.Redis(port=ports["redis"], socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):  # no password: nothing, CONFIG included
        stranger.config_get("dir")
    stranger.close()
    password = (data_dir / "redis_password").read_text().strip()
    assert password not in (data_dir.parent / "up.log").read_text()  # the welcome hides it
    client = redis.Redis(port=ports["redis"], socket_timeout=2, password=password)

    def applied() -> int:
        return int(client.hget("dispatch:counts", "cad") or 0)

    _wait_for(lambda: applied() > 0, 60, "CAD events applied")
    calls_before = client.hlen("dispatch:calls")
    assert calls_before > 0
    # The AOF holds caller names and phone numbers: owner-only, like its folder and the
    # password beside the secret key.
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "redis_password") == _mode(data_dir / "secret_key") == 0o600
    assert _mode(data_dir / "redis") == 0o700
    aof = [path for path in (data_dir / "redis").rglob("*") if "appendonly" in path.name]
    assert aof and {_mode(path) for path in aof} == {0o600}
    # First start on an empty Redis: a week of simulated history is seeded, and the
    # history writer turns the closed calls into files for the web workers.
    _wait_for(lambda: client.exists("dispatch:history:seeded"), 120, "the history seed")
    assert json.loads(client.get("dispatch:history:seeded"))["calls"] > 2000
    manifest = Path(str(system["data_dir"])) / "history" / "dispatch" / "manifest.json"
    _wait_for(lambda: manifest.exists() and json.loads(manifest.read_text())["rows"] > 2000,
              60, "the history writer's files")

    redis_title = f"127.0.0.1:{ports['redis']}"  # redis-server rewrites its process title
    redis_pids = _processes_mentioning(redis_title, environment=False)
    assert len(redis_pids) == 1
    os.kill(redis_pids[0], signal.SIGKILL)
    time.sleep(1)
    _wait_for(lambda: bool(_processes_mentioning(redis_title, environment=False)) and
              client.ping(), 30, "Redis restarted by the launcher")
    assert client.hlen("dispatch:calls") >= calls_before * 0.9  # AOF: at most ~1 s lost
    # Once the warm-up backlog is applied the simulator runs at the wall clock's pace (a few
    # CAD events a minute), so waiting for its next call is a coin toss: publish one.
    call_id = "RESTART-CHECK"
    _publish_cad_call(client, call_id)
    _wait_for(lambda: client.hexists("dispatch:calls", call_id), 60,
              "consumers to reconnect and apply a new call")

    client.close()
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=30 * TIMEOUT_SCALE) == 0
    time.sleep(0.5)
    assert _processes_mentioning(str(data_dir)) == []
    assert _processes_mentioning(redis_title, environment=False) == []
