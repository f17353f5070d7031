"""Settings: parsed from the environment in one place, every one documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.core.settings import PROJECT_ROOT, Settings


def test_defaults_need_no_environment() -> None:
    """With nothing set, settings describe the embedded Redis and Hartford's time zone."""
    settings = Settings.from_env({})
    assert settings.redis_url is None
    assert settings.timezone == "America/New_York"
    assert settings.pending_targets[0] == 60


def test_values_are_parsed_by_type() -> None:
    """Numbers, booleans, lists and paths are converted from their text."""
    settings = Settings.from_env({
        "REDIS_URL": "redis://example:6379/2", "DISPATCH_WEB_PORT": "9000",
        "DISPATCH_SIMULATE": "off", "DISPATCH_PENDING_TARGETS": "30,60,90,120,150",
        "DISPATCH_DATA_DIR": "relative/dir", "DISPATCH_SIM_SPEED": "2.5",
    })
    assert settings.redis_url == "redis://example:6379/2"
    assert settings.web_port == 9000
    assert settings.simulate is False
    assert settings.pending_targets == (30, 60, 90, 120, 150)
    assert settings.data_dir == PROJECT_ROOT / "relative" / "dir"
    assert settings.sim_speed == 2.5


@pytest.mark.parametrize(("env", "value", "message"), [
    ("DISPATCH_SIMULATE", "maybe", "DISPATCH_SIMULATE: expected a boolean"),
    ("DISPATCH_WEB_PORT", "eighty", "DISPATCH_WEB_PORT"),
    ("DISPATCH_PENDING_TARGETS", "1,2", "need 5 values"),
    ("DISPATCH_SIM_SPEED", "0", "must be above 0"),
])
def test_bad_values_name_the_variable(env: str, value: str, message: str) -> None:
    """A value that cannot work is refused with the variable's name in the error."""
    with pytest.raises(ValueError, match=message):
        Settings.from_env({env: value})


def test_empty_optional_value_means_unset() -> None:
    """An empty REDIS_URL or tile URL means 'not set', not an empty string."""
    settings = Settings.from_env({"REDIS_URL": "", "DISPATCH_TILE_URL": ""})
    assert settings.redis_url is None
    assert settings.tile_url is None


def test_every_setting_is_in_the_readme() -> None:
    """The README's settings table names every environment variable."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [env for env, _, _ in Settings.describe() if f"`{env}`" not in readme]
    assert missing == []


def test_users_file_defaults_into_data_dir(tmp_path: Path) -> None:
    """Without DISPATCH_USERS_FILE the users live in the data folder."""
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_users_file == tmp_path / "users.json"


@pytest.mark.parametrize(("url", "prefix"), [
    ("redis://:pw@redis.internal:6379/0", "dispatch"),
    ("rediss://redis.internal:6380/0", "dispatch"),
    ("unix:///run/redis.sock", "dispatch"),
    ("redis+cluster://consumer:pw@node1:7000/0", "{dispatch}"),
    ("REDISS+CLUSTER://node1:7000", "{dispatch}"),
])
def test_keys_get_the_prefix_as_a_hash_tag_only_on_a_cluster(url: str, prefix: str) -> None:
    """A cluster URL puts every key under one hash tag; other URLs keep key names as they are."""
    assert Settings.from_env({"REDIS_URL": url}).keys_prefix == prefix
    assert Settings.from_env({"REDIS_URL": url}).key_prefix == "dispatch"


def test_embedded_redis_keeps_plain_key_names() -> None:
    """No REDIS_URL (the embedded server): key names unchanged."""
    assert Settings().keys_prefix == "dispatch"


def test_a_braced_prefix_is_refused_on_a_cluster() -> None:
    """A prefix with { or } would break the hash tag: refused, naming the setting."""
    with pytest.raises(ValueError, match="DISPATCH_KEY_PREFIX"):
        Settings.from_env({"REDIS_URL": "redis+cluster://node1:7000",
                           "DISPATCH_KEY_PREFIX": "a{b}"})
    assert Settings.from_env({"DISPATCH_KEY_PREFIX": "a{b}"}).keys_prefix == "a{b}"
