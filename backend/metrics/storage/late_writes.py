"""What tells the PromQL results cache that stored samples changed under it.

The results cache (``backend.metrics.results_cache``) keeps the steps of range queries that
are older than the org's out-of-order window: samples that old are refused at ingest, so those
steps should never change. "Should": the window can be raised, a batch can wait in the outbox
longer than expected, retention deletes old blocks. Rather than trust any of that, the cache
records (in Redis, per org) the newest step time it has ever cached, the *horizon*, and every
write of samples at or before that horizon bumps the org's cache *generation*, which is part
of every cache key: the entries computed before the write are never read again.

Ordering makes this race-free: a cached query raises the horizon *before* it reads, and a
write checks the horizon both inside its transaction (a failure there aborts the write: fail
closed) and again after its commit (a query that read before the commit and raised the
horizon meanwhile has its entry orphaned by this second bump).
"""

from __future__ import annotations

from django_redis import get_redis_connection


def _keys(org_id: int) -> tuple[str, str]:
    return f"promql:rc:{org_id}:horizon", f"promql:rc:{org_id}:gen"


# KEYS: horizon, generation. ARGV: horizon ms, ttl s. Raises the horizon (never lowers it),
# keeps it at least as long as an entry, and answers the generation.
_RAISE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-9223372036854775807')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""

# KEYS: horizon, generation. ARGV: the oldest sample written (ms). Bumps the generation when
# that sample is at or before the horizon.
_WRITTEN = """
local h = redis.call('GET', KEYS[1])
if h and tonumber(ARGV[1]) <= tonumber(h) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""


def horizon_raise(*, org_id: int, horizon_ms: int, ttl_seconds: int) -> int:
    """Before reading for the cache: raise the org's horizon; returns its generation."""
    redis = get_redis_connection("default")
    return int(redis.eval(_RAISE, 2, *_keys(org_id), int(horizon_ms), int(ttl_seconds)))


def samples_written(*, org_id: int, oldest_ms: int) -> None:
    """Samples as old as ``oldest_ms`` were (or are about to be) stored for the org."""
    get_redis_connection("default").eval(_WRITTEN, 2, *_keys(org_id), int(oldest_ms))


def samples_deleted(*, org_id: int) -> None:
    """Old samples were deleted (retention): whatever the cache holds may be gone."""
    get_redis_connection("default").incr(_keys(org_id)[1])
