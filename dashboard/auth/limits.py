"""The sign-in gate: one atomic check-and-count in Redis before any password is hashed.

Following OWASP's guidance (lock the address, delay the user; device cookies), an attempt is
admitted by one Lua script that, in one step on every web worker's shared keys:

1. spends the sign-in form (each form can be posted once);
2. for a browser the user signed in on before (it holds the user's device cookie): refuses it
   only when that browser itself failed ``attempts_per_minute`` times this minute;
3. for any other browser: refuses it while its address has failed ``attempts_per_minute``
   times this minute (the address is locked), or while the user name is delayed (after
   ``user_failures`` failures in 15 minutes from unknown browsers, one such try per delay,
   the delay doubling from 2 s to 60 s);
4. takes one token from the hash budget all workers share (``hashes_per_second``; unknown
   browsers leave a reserve for known ones, so a flood cannot keep a user's own tablet out);
5. counts the attempt as a failure, which ``succeeded`` takes back when the password is right.

So 64 guesses at once get exactly the allowed number through, a flood of names from one
address stops at the address limit, and a correct password from the user's own browser is
never refused because someone else failed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import itsdangerous
import redis

from streams.core.keys import (
    LOGIN_ADDRESS_WINDOW_SECONDS,
    LOGIN_FORM_SECONDS,
    LOGIN_USER_WINDOW_SECONDS,
    Keys,
)

DELAY_FIRST_SECONDS = 2
DELAY_MAX_SECONDS = 60
BURST_SECONDS = 2.0
"""The hash budget holds at most this many seconds' worth of tokens."""
RESERVE_SHARE = 0.25
"""Share of the budget only browsers a user signed in on before may spend."""
DEVICE_COOKIE = "dispatch_device"
DEVICE_SALT = "device"
DEVICE_DAYS = 365
DEVICES_PER_BROWSER = 8
"""A shared tablet remembers this many users (the most recent ones)."""

# KEYS: form marker, address counter, user hash, device counter, hash budget.
# ARGV: form ttl, per-minute limit, address window, user failures, user window,
#       first delay, max delay, known (1/0), hashes per second, burst, reserve.
ADMIT = """
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return {'form_used', 0} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local known = ARGV[8] == '1'
if known then
  if tonumber(redis.call('GET', KEYS[4]) or '0') >= limit then
    return {'device', redis.call('TTL', KEYS[4])}
  end
else
  if tonumber(redis.call('GET', KEYS[2]) or '0') >= limit then
    return {'address', redis.call('TTL', KEYS[2])}
  end
  local failures = tonumber(redis.call('HGET', KEYS[3], 'failures') or '0')
  local free = tonumber(ARGV[4])
  if failures >= free then
    local next_at = tonumber(redis.call('HGET', KEYS[3], 'next') or '0')
    if now < next_at then return {'user', math.ceil(next_at - now)} end
    local delay = math.min(tonumber(ARGV[7]), tonumber(ARGV[6]) * 2 ^ (failures - free))
    redis.call('HSET', KEYS[3], 'next', string.format('%.3f', now + delay))
  end
end
local rate, burst = tonumber(ARGV[9]), tonumber(ARGV[10])
local budget = redis.call('HMGET', KEYS[5], 'tokens', 'at')
local tokens = tonumber(budget[1] or burst)
tokens = math.min(burst, tokens + math.max(0, now - tonumber(budget[2] or now)) * rate)
local need = 1
if not known then need = 1 + tonumber(ARGV[11]) end
if tokens < need then
  redis.call('HSET', KEYS[5], 'tokens', tokens, 'at', string.format('%.6f', now))
  return {'busy', math.max(1, math.ceil((need - tokens) / rate))}
end
redis.call('HSET', KEYS[5], 'tokens', tokens - 1, 'at', string.format('%.6f', now))
redis.call('EXPIRE', KEYS[5], 3600)
if known then
  if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], window) end
else
  if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], window) end
  if redis.call('HINCRBY', KEYS[3], 'failures', 1) == 1 then
    redis.call('EXPIRE', KEYS[3], ARGV[5])
  end
end
return {'ok', 0}
"""

# KEYS: the counter (string) or user hash the admitted attempt was counted on.
REFUND = """
for i = 1, #KEYS do
  if redis.call('TYPE', KEYS[i]).ok == 'hash' then
    if tonumber(redis.call('HGET', KEYS[i], 'failures') or '0') > 0 then
      redis.call('HINCRBY', KEYS[i], 'failures', -1)
    end
  elseif tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 1
"""


@dataclass(frozen=True)
class Verdict:
    """What the gate decided: ``reason`` is ok, form_used, device, address, user or busy;
    ``wait_s`` says how long to wait before trying again."""

    reason: str
    wait_s: int
    counted_on: tuple[str, ...] = ()

    @property
    def admitted(self) -> bool:
        return self.reason == "ok"


class SignInGate:
    """Admits sign-in attempts (see the module docstring); shared through Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, attempts_per_minute: int,
                 user_failures: int, hashes_per_second: float) -> None:
        self.client = client
        self.keys = keys
        self.attempts_per_minute = attempts_per_minute
        self.user_failures = user_failures
        self.rate = hashes_per_second
        self.burst = max(1.0, hashes_per_second * BURST_SECONDS)
        self.reserve = max(1.0, self.burst * RESERVE_SHARE) if self.burst > 1 else 0.0
        self._admit = client.register_script(ADMIT)
        self._refund = client.register_script(REFUND)

    def admit(self, form_id: str, name: str, address: str, device: str | None) -> Verdict:
        """Check and count one attempt for user ``name`` from ``address``; ``device`` is the
        id from this browser's device cookie for ``name`` (None: an unknown browser)."""
        device_key = self.keys.login_device(name, device or "-")
        keys = [self.keys.login_form_used(form_id), self.keys.login_address(address),
                self.keys.login_user(name), device_key, self.keys.login_hash_budget]
        reply = self._admit(keys=keys, args=[
            LOGIN_FORM_SECONDS, self.attempts_per_minute, LOGIN_ADDRESS_WINDOW_SECONDS,
            self.user_failures, LOGIN_USER_WINDOW_SECONDS, DELAY_FIRST_SECONDS,
            DELAY_MAX_SECONDS, 1 if device else 0, self.rate, self.burst, self.reserve])
        reason = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        counted = (device_key,) if device else (keys[1], keys[2])
        return Verdict(reason, max(0, int(reply[1])), counted if reason == "ok" else ())

    def succeeded(self, verdict: Verdict) -> None:
        """The admitted password was right: take back the failure it was counted as."""
        if verdict.counted_on:
            self._refund(keys=list(verdict.counted_on))


# --- device cookies -------------------------------------------------------------------------
def _device_signer(secret: str) -> itsdangerous.URLSafeSerializer:
    return itsdangerous.URLSafeSerializer(secret, salt=DEVICE_SALT)


def read_devices(secret: str, cookie: str | None) -> dict[str, str]:
    """user name -> device id from this browser's signed device cookie ({} if none/forged)."""
    if not cookie:
        return {}
    try:
        value = _device_signer(secret).loads(cookie)
    except itsdangerous.BadData:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


def remember_device(secret: str, devices: dict[str, str], name: str) -> str:
    """The device cookie value after ``name`` signed in on this browser (kept or new id)."""
    kept = {k: v for k, v in devices.items() if k != name}
    kept[name] = devices.get(name) or secrets.token_urlsafe(12)
    newest = dict(list(kept.items())[-DEVICES_PER_BROWSER:])
    return str(_device_signer(secret).dumps(newest))


