"""docker-compose.yml describes the same processes as `make run`, with real entry points."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streams.core.settings import PROJECT_ROOT, Settings
from streams.launcher import child_commands

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {name: spec for name, spec in COMPOSE["services"].items()
                if not name.startswith("redis")}


def test_redis_service_is_redis_7_with_aof() -> None:
    """The compose Redis is version 7 with append-only persistence."""
    redis_service = COMPOSE["services"]["redis"]
    assert redis_service["image"] == "redis:7"
    assert "--appendonly" in redis_service["command"]
    assert redis_service["command"][redis_service["command"].index("--appendonly") + 1] == "yes"


def test_compose_scales_out() -> None:
    """`--scale consumer=3 --scale push=2` works: no service has a fixed container or
    consumer name, push and web publish a range of host ports, and every app service
    takes REDIS_URL and DISPATCH_PARTITIONS from the environment."""
    for name, spec in APP_SERVICES.items():
        assert "container_name" not in spec, name
        assert spec["environment"]["REDIS_URL"].startswith("${REDIS_URL:-"), name
        assert spec["environment"]["DISPATCH_PARTITIONS"] == "${DISPATCH_PARTITIONS:-1}", name
    assert "--name" not in APP_SERVICES["consumer"]["command"]
    for name in ("push", "web"):
        (port,) = APP_SERVICES[name]["ports"]
        low, high = (int(p) for p in port.split(":")[0].split("-"))
        assert high - low >= 1, f"{name} needs a port range to scale"


def test_cluster_profile_is_three_masters_with_a_replica_each() -> None:
    """The `cluster` profile runs six Redis 7 nodes in cluster mode and creates the
    cluster with one replica per master once they run."""
    services = COMPOSE["services"]
    nodes = [spec for name, spec in services.items() if name.startswith("redis-node-")]
    assert len(nodes) == 6
    for spec in nodes:
        assert spec["profiles"] == ["cluster"] and spec["image"] == "redis:7"
        assert spec["command"][spec["command"].index("--cluster-enabled") + 1] == "yes"
    init = services["redis-cluster-init"]
    assert init["profiles"] == ["cluster"]
    script = " ".join(init["command"])
    assert "--cluster create" in script and "--cluster-replicas 1" in script
    assert set(init["depends_on"]) == {f"redis-node-{n}" for n in range(1, 7)}


@pytest.mark.skipif(not shutil.which("docker-compose"),
                    reason="needs docker-compose (Debian's package; .ci/run installs it)")
@pytest.mark.parametrize("profiles", [[], ["cluster"], ["cluster", "webhook"]])
def test_docker_compose_accepts_the_file(profiles: list[str]) -> None:
    """`docker-compose config` (no engine needed) validates the file in each profile,
    scaled and on a cluster URL."""
    env = {**os.environ, "DISPATCH_SECRET_KEY": "k", "DISPATCH_SHOTSPOTTER_SECRET": "s",
           "REDIS_URL": "redis+cluster://redis-node-1:6379/0", "DISPATCH_PARTITIONS": "6"}
    flags = [flag for profile in profiles for flag in ("--profile", profile)]
    done = subprocess.run(["docker-compose", *flags, "config", "-q"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_compose_runs_what_make_run_runs() -> None:
    """Every process `make run` supervises has a compose service with the same command."""
    launcher = {tuple(child.argv[1:]) for child in child_commands(
        Settings(simulate=True, webhook_secret="x"))}
    compose = {tuple(spec["command"][1:]) for spec in APP_SERVICES.values()}
    assert launcher == compose


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_service_command_is_a_real_entry_point(service: str) -> None:
    """`python -m <module> <command> --help` succeeds for each service's command."""
    command = APP_SERVICES[service]["command"]
    assert command[:2] == ["python", "-m"]
    module, subcommand = command[2], command[3]
    result = subprocess.run([sys.executable, "-m", module, subcommand, "--help"],
                            capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_make_run_polls_each_configured_mapping(tmp_path: Path) -> None:
    """DISPATCH_POLL_MAPPINGS starts one `streams poll --mapping FILE` child per file."""
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    settings = Settings.from_env({"DISPATCH_POLL_MAPPINGS": f"{first}, {second}"})
    polls = [child.argv[1:] for child in child_commands(settings) if child.name.startswith("poll")]
    assert polls == [["-m", "streams", "poll", "--mapping", str(first)],
                     ["-m", "streams", "poll", "--mapping", str(second)]]
