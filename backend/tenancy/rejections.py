"""Counts of refused data per org, signal and reason (for the dashboard and self-metrics).

Two kinds of counter per org: the running totals (one hash, never reset; what ``/metrics``
exports as counters) and hourly buckets kept a little over a day, so the dashboard can say
what was refused over the last ``WINDOW_HOURS`` hours."""

from __future__ import annotations

import time

from django_redis import get_redis_connection

WINDOW_HOURS = 24
_BUCKET_TTL_SECONDS = (WINDOW_HOURS + 2) * 3600


def _key(org_id: int) -> str:
    return f"canopy:rejections:{org_id}"


def _bucket_key(org_id: int, hour: int) -> str:
    # not under "canopy:rejections:*", which rejections_all scans for the totals
    return f"canopy:rejections-hourly:{org_id}:{hour}"


def rejections_count(*, org_id: int, signal: str, reasons: dict[str, int]) -> None:
    """Add ``reasons`` (reason -> number of samples/spans refused) to the org's counters."""
    if not reasons:
        return
    bucket = _bucket_key(org_id, int(time.time()) // 3600)
    pipe = get_redis_connection("default").pipeline()
    for reason, n in reasons.items():
        pipe.hincrby(_key(org_id), f"{signal}:{reason}", n)
        pipe.hincrby(bucket, f"{signal}:{reason}", n)
    pipe.expire(bucket, _BUCKET_TTL_SECONDS)
    pipe.execute()


def rejections_get(*, org_id: int) -> dict[str, dict[str, int]]:
    """{signal: {reason: count}} since the counters began."""
    return _by_signal([get_redis_connection("default").hgetall(_key(org_id))])


def rejections_recent(*, org_id: int, now: float | None = None) -> dict[str, dict[str, int]]:
    """{signal: {reason: count}} over the last WINDOW_HOURS whole hours and the current one."""
    hour = int(time.time() if now is None else now) // 3600
    pipe = get_redis_connection("default").pipeline()
    for h in range(hour - WINDOW_HOURS, hour + 1):
        pipe.hgetall(_bucket_key(org_id, h))
    return _by_signal(pipe.execute())


def _by_signal(hashes) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for raw in hashes:
        for field, value in raw.items():
            signal, _, reason = field.decode().partition(":")
            reasons = out.setdefault(signal, {})
            reasons[reason] = reasons.get(reason, 0) + int(value)
    return out


def rejections_all() -> dict[tuple[str, str], int]:
    """{(signal, reason): count} summed over every org (Canopy's self-metrics)."""
    redis = get_redis_connection("default")
    out: dict[tuple[str, str], int] = {}
    for key in redis.scan_iter("canopy:rejections:*", count=1000):
        for field, value in redis.hgetall(key).items():
            signal, _, reason = field.decode().partition(":")
            out[signal, reason] = out.get((signal, reason), 0) + int(value)
    return out
