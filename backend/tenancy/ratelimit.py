"""Per-tenant token buckets in Redis, shared by every web process.

One Lua script refills and takes atomically, using Redis' own clock so that processes with
skewed clocks agree. A request larger than the whole burst is admitted when the bucket is full
(and leaves it in debt), so that a big but legitimate request is slowed, not refused forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from django_redis import get_redis_connection
from redis.commands.core import Script

_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= math.min(cost, burst) then
  tokens = tokens - cost
  allowed = 1
else
  wait = (math.min(cost, burst) - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float  # seconds until the request would fit


_take: Script | None = None


def bucket_take(*, key: str, rate: float, burst: int, cost: int) -> Verdict:
    global _take
    redis = get_redis_connection("default")
    if _take is None:
        _take = redis.register_script(_TAKE)  # EVALSHA: the script is not sent every time
    allowed, wait = _take(keys=[f"canopy:bucket:{key}"], args=[rate, burst, cost], client=redis)
    return Verdict(bool(allowed), float(wait))
