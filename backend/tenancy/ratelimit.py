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


# The bucket's level now, taking nothing: is there at least one token?
_PEEK = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then return {1, '0'} end
tokens = math.min(burst, tokens + (now - at) * rate)
if tokens >= 1 then return {1, '0'} end
return {0, tostring((1 - tokens) / rate)}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float  # seconds until the request would fit


_take: Script | None = None
_peek: Script | None = None


def bucket_take(*, key: str, rate: float, burst: int, cost: int) -> Verdict:
    global _take
    redis = get_redis_connection("default")
    if _take is None:
        _take = redis.register_script(_TAKE)  # EVALSHA: the script is not sent every time
    allowed, wait = _take(keys=[f"canopy:bucket:{key}"], args=[rate, burst, cost], client=redis)
    return Verdict(bool(allowed), float(wait))


def bucket_empty(*, key: str, rate: float, burst: int) -> Verdict:
    """Whether the bucket holds less than one token now (``allowed`` False), taking nothing.

    A tenant already over its rate is refused on this before its request is read and decoded:
    any request that costs a token would be refused by ``bucket_take`` anyway, and decoding
    the bodies of a tenant sending 10x its limit cost the other tenants' queries their CPU
    (measured by tests/reliability/load.py)."""
    global _peek
    redis = get_redis_connection("default")
    if _peek is None:
        _peek = redis.register_script(_PEEK)
    allowed, wait = _peek(keys=[f"canopy:bucket:{key}"], args=[rate, burst], client=redis)
    return Verdict(bool(allowed), float(wait))
