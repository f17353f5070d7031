"""The one settings object, built once from the environment and passed down.

Nothing else in the project reads ``os.environ``. Each setting is declared as data with
its environment variable and a one-line help text; ``tests/unit/test_settings.py`` fails
when a setting is missing from the README.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from streams.core.access import ROLES
from streams.core.keys import Keys, hash_tagged
from streams.core.partitions import check_count
from streams.core.sessions import RoleTable
from streams.core.suggestions import DEFAULT_SUGGESTIONS, SuggestionTable

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def local_redis_url(port: int, password: str | None) -> str:
    """redis://[:password@]127.0.0.1:port/0, the password URL-quoted: the embedded Redis."""
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""URL schemes that name a Redis Cluster (any one node of it) rather than one server."""


def is_cluster_url(url: str) -> bool:
    """True for redis+cluster:// and rediss+cluster:// URLs."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def redacted(url: str) -> str:
    """``url`` with its password replaced by ***, for logs and the terminal."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    hosts = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{hosts}").geturl()
DEFAULT_FEED_STALE_AFTER = "cad=900,avl=120,shotspotter=3600,mutualink=3600,*=300"
"""CAD: a call every few minutes even at night; AVL: units report every few seconds; gunshots
and video shares are sparse, so they rely on their source's heartbeat (QUIET) more."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false, 1/0, yes/no, on/off), got {text!r}")


def _parse_int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated whole numbers, got {text!r}") from None


def _parse_str_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _setting(env: str, default: Any, help: str, parse: Callable[[str], Any] = str) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "parse": parse})


def _parse_auto_bool(text: str) -> bool | None:
    """'auto' (or empty) -> None; otherwise a boolean."""
    return None if text.strip().lower() in {"auto", ""} else _parse_bool(text)


def _optional_str(text: str) -> str | None:
    return text or None


def _path(text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else PROJECT_ROOT / path


@dataclass(frozen=True)
class Settings:
    """Every tunable of the system; see ``Settings.describe()`` for help texts."""

    redis_url: str | None = _setting(
        "REDIS_URL", None, "Redis to use; unset starts an embedded redis-server.", _optional_str
    )
    data_dir: Path = _setting(
        "DISPATCH_DATA_DIR", PROJECT_ROOT / "var",
        "Folder for the embedded Redis AOF, users file and secret key.", _path,
    )
    shared_data_dir: Path = _setting(
        "DISPATCH_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data",
        "Folder of the public data sets (Hartford boundaries, replay files).", _path,
    )
    key_prefix: str = _setting(
        "DISPATCH_KEY_PREFIX", "dispatch", "Prefix of every Redis key this system writes."
    )
    timezone: str = _setting(
        "DISPATCH_TIMEZONE", "America/New_York", "City time zone used to show times."
    )
    embedded_redis_port: int = _setting(
        "DISPATCH_EMBEDDED_REDIS_PORT", 6390, "TCP port of the embedded Redis server.", int
    )
    web_host: str = _setting("DISPATCH_WEB_HOST", "127.0.0.1", "Address the dashboard binds.")
    web_port: int = _setting("DISPATCH_WEB_PORT", 8050, "Port of the dashboard.", int)
    web_workers: int = _setting(
        "DISPATCH_WEB_WORKERS", 2, "Dashboard server worker processes.", int
    )
    push_host: str = _setting("DISPATCH_PUSH_HOST", "127.0.0.1", "Address the push service binds.")
    push_port: int = _setting(
        "DISPATCH_PUSH_PORT", 8765, "Port of the websocket push service.", int
    )
    push_heartbeat_seconds: float = _setting(
        "DISPATCH_PUSH_HEARTBEAT_SECONDS", 1.0,
        "Longest a live page goes without a message from push (a delta or a ping), in s.",
        float,
    )
    push_redis_connections: int = _setting(
        "DISPATCH_PUSH_REDIS_CONNECTIONS", 16,
        "Redis reads (one connection each) a push process has in flight for pages' first "
        "messages; more wait their turn (session checks are batched apart).", int,
    )
    push_send_buffer_bytes: int = _setting(
        "DISPATCH_PUSH_SEND_BUFFER_BYTES", 262_144,
        "Unsent bytes push holds for one page before dropping it (it reconnects and "
        "resyncs).", int,
    )
    push_connections_per_user: int = _setting(
        "DISPATCH_PUSH_CONNECTIONS_PER_USER", 20,
        "Open websockets one user may hold on one push process; more are refused (429).",
        int,
    )
    push_public_url: str | None = _setting(
        "DISPATCH_PUSH_URL", None,
        "Websocket URL browsers use; unset means ws://<page host>:<push port>.", _optional_str,
    )
    secret_key: str | None = _setting(
        "DISPATCH_SECRET_KEY", None,
        "Signs sessions and websocket tokens; required, except under `make run`, "
        "which keeps a random one in the data dir.",
        _optional_str,
    )
    users_file: Path | None = _setting(
        "DISPATCH_USERS_FILE", None,
        "Users file of an older version, imported into Redis once (then no longer read); "
        "unset means <data dir>/users.json.",
        lambda text: _path(text) if text else None,
    )
    sso_user_header: str | None = _setting(
        "DISPATCH_SSO_USER_HEADER", None,
        "Header a trusted reverse proxy sets to the signed-in user; unset disables SSO.",
        _optional_str,
    )
    trusted_proxies: tuple[str, ...] = _setting(
        "DISPATCH_TRUSTED_PROXIES", ("127.0.0.1", "::1"),
        "Addresses or networks of the reverse proxy; only requests from these have their "
        "X-Forwarded-For, X-Forwarded-Proto and SSO headers believed.",
        _parse_str_list,
    )
    sso_role_header: str = _setting(
        "DISPATCH_SSO_ROLE_HEADER", "X-Dispatch-Role", "Header carrying the SSO user's role."
    )
    sso_district_header: str = _setting(
        "DISPATCH_SSO_DISTRICT_HEADER", "X-Dispatch-District",
        "Header carrying the SSO user's district (cso/sro).",
    )
    ws_token_seconds: int = _setting(
        "DISPATCH_WS_TOKEN_SECONDS", 300, "Lifetime of a websocket token, in seconds.", int
    )
    login_attempts_per_minute: int = _setting(
        "DISPATCH_LOGIN_ATTEMPTS_PER_MINUTE", 5,
        "Failed sign-ins allowed per address (and per browser a user signed in on before) "
        "per minute; then that address or browser waits out the minute.", int,
    )
    login_user_failures: int = _setting(
        "DISPATCH_LOGIN_USER_FAILURES", 10,
        "Failed sign-ins for one user in 15 minutes from browsers it never signed in on; "
        "after that each such try waits (2 s, doubling, at most 60 s). Browsers the user "
        "signed in on before are never slowed by others' failures.", int,
    )
    login_hashes_per_second: float = _setting(
        "DISPATCH_LOGIN_HASHES_PER_SECOND", 2.0,
        "Password hashes per second all web workers together spend on sign-ins; beyond it "
        "sign-ins are asked to retry, so a flood cannot starve the pages.", float,
    )
    session_idle_minutes: RoleTable = _setting(
        "DISPATCH_SESSION_IDLE_MINUTES", RoleTable.parse("cso=30,sro=30,commander=720,*=60"),
        "Minutes without a person using the page (clicks, page loads; not the page's own "
        "refreshes) after which a session ends, per role (role=minutes, * for the rest).",
        RoleTable.parse,
    )
    session_hours: RoleTable = _setting(
        "DISPATCH_SESSION_HOURS", RoleTable.parse("*=12"),
        "Absolute lifetime of a session in hours, per role (role=hours, * for the rest).",
        RoleTable.parse,
    )
    secure_cookies: bool | None = _setting(
        "DISPATCH_SECURE_COOKIES", None,
        "Mark cookies Secure: auto (when the page came over https, directly or from the "
        "trusted proxy's X-Forwarded-Proto), true or false.", _parse_auto_bool,
    )
    audit_max_age_days: float = _setting(
        "DISPATCH_AUDIT_MAX_AGE_DAYS", 365.0,
        "Audit trail entries are kept this many days (then trimmed by age), at least 1.",
        float,
    )
    tile_url: str | None = _setting(
        "DISPATCH_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "Base map tiles; empty draws boundaries only.", _optional_str,
    )
    pending_targets: tuple[int, ...] = _setting(
        "DISPATCH_PENDING_TARGETS", (60, 180, 600, 1200, 1800),
        "Seconds a P1..P5 call may wait for a unit before it turns red.", _parse_int_list,
    )
    response_targets: tuple[int, ...] = _setting(
        "DISPATCH_RESPONSE_TARGETS", (420, 720, 1200, 1800, 3600),
        "Target seconds from received to on scene for P1..P5.", _parse_int_list,
    )
    feed_stale_after: RoleTable = _setting(
        "DISPATCH_STALE_AFTER", RoleTable.parse(DEFAULT_FEED_STALE_AFTER),
        "Seconds without an event after which a feed whose source sends no heartbeat is "
        "STALE, per feed ('cad=900,avl=120,*=300'; one number: every feed).",
        lambda text: RoleTable.parse(text if "=" in text else f"*={text}"),
    )
    unit_stale_seconds: int = _setting(
        "DISPATCH_UNIT_STALE_AFTER", 180,
        "Seconds after a unit's last report when /wall draws it as stale (grey, faded).", int,
    )
    wall_night_hours: tuple[int, ...] = _setting(
        "DISPATCH_WALL_NIGHT_HOURS", (20, 6),
        "City hours 'from,to' when /wall uses its night palette (empty: never; "
        "?palette=night or ?palette=day overrides).", _parse_int_list,
    )
    wall_rotate: tuple[str, ...] = _setting(
        "DISPATCH_WALL_ROTATE", (),
        "Views /wall rotates through, e.g. 'city,north,central,south,response,shares' "
        "(city, a district's name, response, shares; empty: no rotation; ?rotate= overrides).",
        lambda text: tuple(part.lower() for part in _parse_str_list(text)),
    )
    wall_rotate_seconds: int = _setting(
        "DISPATCH_WALL_ROTATE_SECONDS", 30,
        "Seconds each rotating /wall view stays up (at least 2; ?every= overrides).", int,
    )
    suggest_units: SuggestionTable = _setting(
        "DISPATCH_SUGGEST_UNITS", SuggestionTable.parse(DEFAULT_SUGGESTIONS),
        "Unit kinds the wall may suggest per call class ('gunshot=patrol,k9; "
        "qol=cso,sro>patrol; *=patrol'; '>' ranks tiers); unlisted kinds never.",
        SuggestionTable.parse,
    )
    hotspots_file: Path | None = _setting(
        "DISPATCH_HOTSPOTS_FILE", None,
        "GeoJSON of the hot-spot (enforcement) areas /wall draws and counts and the "
        "simulator uses: Polygons, LineString corridors (width_m) or Points (radius_m), "
        "each with a unique name; unset uses built-in examples.",
        lambda text: _path(text) if text else None,
    )
    districts_file: Path | None = _setting(
        "DISPATCH_DISTRICTS_FILE", None,
        "JSON neighborhood->district map; unset uses the built-in Hartford map.",
        lambda text: _path(text) if text else None,
    )
    max_event_age_seconds: float = _setting(
        "DISPATCH_MAX_EVENT_AGE", 30 * 86400.0,
        "Live events timed more than this many seconds before the receiving clock are "
        "dead-lettered as time_out_of_range.", float,
    )
    history_max_age_days: float = _setting(
        "DISPATCH_HISTORY_MAX_AGE_DAYS", 50 * 365.25,
        "Backfill and history replays accept times back to this many days before now.", float,
    )
    max_event_ahead_seconds: float = _setting(
        "DISPATCH_MAX_EVENT_AHEAD", 300.0,
        "Times more than this many seconds after the receiving clock are dead-lettered "
        "as time_out_of_range (everywhere, history included).", float,
    )
    service_area: str = _setting(
        "DISPATCH_SERVICE_AREA", "",
        "Where events may be: empty = the city's bounds from the geography; "
        "south,west,north,east in degrees; or 'anywhere'.",
    )
    service_area_margin_km: float = _setting(
        "DISPATCH_SERVICE_AREA_MARGIN_KM", 10.0,
        "Kilometres around the service area still accepted (mutual aid, hospitals).", float,
    )
    history_dir: Path | None = _setting(
        "DISPATCH_HISTORY_DIR", None,
        "Folder of the response-time history (Parquet files the history writer appends); "
        "unset means <data dir>/history.", lambda text: _path(text) if text else None,
    )
    history_flush_seconds: float = _setting(
        "DISPATCH_HISTORY_FLUSH_SECONDS", 2.0,
        "The history writer writes newly closed calls to its files at most this often.", float,
    )
    history_tail_limit: int = _setting(
        "DISPATCH_HISTORY_TAIL_LIMIT", 50_000,
        "Closed calls a web worker reads from Redis beyond the history files (more: the "
        "writer is behind and /response says so).", int,
    )
    history_memory_mb: int = _setting(
        "DISPATCH_HISTORY_MEMORY_MB", 256,
        "Memory limit of each web worker's DuckDB history engine, in MB (it spills beyond).",
        int,
    )
    seed_history_weeks: float = _setting(
        "DISPATCH_SEED_HISTORY_WEEKS", 8.0,
        "Weeks of simulated history `make run` seeds on an empty Redis (simulated feeds only;"
        " 0 seeds nothing).", float,
    )
    target_compliance: float = _setting(
        "DISPATCH_TARGET_COMPLIANCE", 90.0,
        "Percent of a priority's calls that must be within target for /response to show a pass.",
        float,
    )
    sim_seed: int = _setting("DISPATCH_SIM_SEED", 2014, "Seed of the simulators.", int)
    sim_speed: float = _setting(
        "DISPATCH_SIM_SPEED", 1.0, "Simulated seconds per real second.", float
    )
    poll_mappings: tuple[Path, ...] = _setting(
        "DISPATCH_POLL_MAPPINGS", (),
        "Comma-separated mapping files with a [poll] table; `make run` polls each.",
        lambda text: tuple(_path(part.strip()) for part in text.split(",") if part.strip()),
    )
    simulate: bool = _setting(
        "DISPATCH_SIMULATE", True, "Start the simulated feeds under `make run`.", _parse_bool
    )
    consumer_batch: int = _setting(
        "DISPATCH_CONSUMER_BATCH", 500, "Events a consumer reads per XREADGROUP.", int
    )
    consumer_block_ms: int = _setting(
        "DISPATCH_CONSUMER_BLOCK_MS", 1000, "How long a consumer blocks waiting, in ms.", int
    )
    claim_idle_ms: int = _setting(
        "DISPATCH_CLAIM_IDLE_MS", 30000,
        "Pending entries idle this long are reclaimed from a dead consumer, in ms.", int,
    )
    partitions: int = _setting(
        "DISPATCH_PARTITIONS", 1,
        "Partitions of raw streams and live state, each applied by one consumer at a time "
        "(streams/core/partitions.py); fixed for a deployment's life.", int,
    )
    consumer_lease_ms: int = _setting(
        "DISPATCH_CONSUMER_LEASE_MS", 5000,
        "Lease of the one consumer that applies events: renewed every third of it, taken "
        "over by a standby consumer once it lapses, in ms.", int,
    )
    webhook_secret: str | None = _setting(
        "DISPATCH_SHOTSPOTTER_SECRET", None,
        "HMAC-SHA256 key of the gunshot webhook; unset disables the endpoint.", _optional_str,
    )
    webhook_host: str = _setting(
        "DISPATCH_WEBHOOK_HOST", "127.0.0.1", "Address the gunshot alert webhook binds."
    )
    webhook_port: int = _setting(
        "DISPATCH_WEBHOOK_PORT", 8088, "Port of the gunshot alert webhook.", int
    )
    soda_app_token: str | None = _setting(
        "DISPATCH_SODA_APP_TOKEN", None,
        "Socrata app token sent as X-App-Token by SODA pollers; unset polls anonymously.",
        _optional_str,
    )
    log_level: str = _setting("DISPATCH_LOG_LEVEL", "INFO", "Logging level of every process.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; unknown variables are ignored."""
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            env = spec.metadata["env"]
            if env in environ:
                try:
                    values[spec.name] = spec.metadata["parse"](environ[env])
                except ValueError as error:
                    raise ValueError(f"{env}: {error}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if not 0 < self.target_compliance <= 100:
            raise ValueError("DISPATCH_TARGET_COMPLIANCE must be a percentage above 0, at most 100")
        if self.seed_history_weeks < 0 or self.history_tail_limit < 1:
            raise ValueError("DISPATCH_SEED_HISTORY_WEEKS must be at least 0 and "
                             "DISPATCH_HISTORY_TAIL_LIMIT at least 1")
        if len(self.pending_targets) != 5 or len(self.response_targets) != 5:
            raise ValueError("DISPATCH_PENDING_TARGETS and DISPATCH_RESPONSE_TARGETS need 5 values")
        if self.sim_speed <= 0:
            raise ValueError("DISPATCH_SIM_SPEED must be above 0")
        if self.wall_night_hours and (len(self.wall_night_hours) != 2 or not all(
                0 <= hour <= 23 for hour in self.wall_night_hours)):
            raise ValueError("DISPATCH_WALL_NIGHT_HOURS needs two hours 0..23 ('20,6') or "
                             "nothing")
        for name in ("push_redis_connections", "push_send_buffer_bytes",
                     "push_connections_per_user"):
            if getattr(self, name) < 1:
                env = next(spec.metadata["env"] for spec in dataclasses.fields(self)
                           if spec.name == name)
                raise ValueError(f"{env} must be at least 1")
        if not 0 < self.push_heartbeat_seconds <= 2:
            raise ValueError("DISPATCH_PUSH_HEARTBEAT_SECONDS must be above 0 and at most 2 "
                             "(pages call a link silent for a few seconds lost)")
        check_count(self.partitions)
        if self.consumer_lease_ms < 300:
            raise ValueError("DISPATCH_CONSUMER_LEASE_MS must be at least 300 (ms)")
        if self.audit_max_age_days < 1:
            raise ValueError("DISPATCH_AUDIT_MAX_AGE_DAYS must be at least 1 (a day)")
        if self.login_hashes_per_second <= 0 or self.login_attempts_per_minute < 1:
            raise ValueError("DISPATCH_LOGIN_HASHES_PER_SECOND and "
                             "DISPATCH_LOGIN_ATTEMPTS_PER_MINUTE must be above 0")
        for table in (self.session_idle_minutes, self.session_hours):
            unknown = sorted(set(table.roles()) - set(ROLES))
            if unknown:
                raise ValueError(f"DISPATCH_SESSION_*: unknown role {unknown[0]!r}")
        if is_cluster_url(self.redis_url or "") and set("{}") & set(self.key_prefix):
            raise ValueError("DISPATCH_KEY_PREFIX cannot contain { or } on a Redis Cluster "
                             "(the prefix becomes the keys' hash tag)")
        if min(self.max_event_age_seconds, self.history_max_age_days,
               self.max_event_ahead_seconds, self.service_area_margin_km) < 0:
            raise ValueError("DISPATCH_MAX_EVENT_AGE, DISPATCH_HISTORY_MAX_AGE_DAYS, "
                             "DISPATCH_MAX_EVENT_AHEAD and DISPATCH_SERVICE_AREA_MARGIN_KM "
                             "cannot be negative")

    @property
    def redis_address(self) -> str:
        """The Redis to use: REDIS_URL, else the embedded server's port on this host with
        the password `make run` keeps in the data dir (so `python -m dashboard adduser` and
        the like reach it from another terminal)."""
        if self.redis_url:
            return self.redis_url
        try:
            password = self.redis_password_file.read_text().strip()
        except FileNotFoundError:
            password = ""
        return local_redis_url(self.embedded_redis_port, password)

    @property
    def keys_prefix(self) -> str:
        """The prefix ``Keys`` gets: on a cluster the key prefix as a hash tag, so every key
        of a deployment is in one slot (its transactions, scripts and multi-stream reads
        work as on one server); elsewhere the key prefix itself (key names unchanged)."""
        return hash_tagged(self.key_prefix) if is_cluster_url(self.redis_url or "") \
            else self.key_prefix

    @property
    def keys(self) -> Keys:
        """Every Redis name of this deployment (its prefix and partitions)."""
        return Keys(self.keys_prefix, self.partitions)

    @property
    def redis_password_file(self) -> Path:
        """The embedded Redis's generated password, 0600 beside the secret key."""
        return self.data_dir / "redis_password"

    @property
    def resolved_history_dir(self) -> Path:
        return self.history_dir or self.data_dir / "history"

    @property
    def resolved_users_file(self) -> Path:
        return self.users_file or self.data_dir / "users.json"

    @property
    def audit_max_age_s(self) -> float:
        return self.audit_max_age_days * 86400.0

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(environment variable, default, help) for every setting, for docs and --help."""
        rows = []
        for spec in dataclasses.fields(cls):
            default = spec.default
            if isinstance(default, tuple):
                default = ",".join(str(part) for part in default)
            rows.append((spec.metadata["env"], "" if default is None else str(default),
                         spec.metadata["help"]))
        return rows
