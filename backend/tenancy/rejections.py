"""Counts of refused data per org, signal and reason (for the dashboard and self-metrics)."""

from __future__ import annotations

from django_redis import get_redis_connection


def _key(org_id: int) -> str:
    return f"canopy:rejections:{org_id}"


def rejections_count(*, org_id: int, signal: str, reasons: dict[str, int]) -> None:
    """Add ``reasons`` (reason -> number of samples/spans refused) to the org's counters."""
    if not reasons:
        return
    pipe = get_redis_connection("default").pipeline()
    for reason, n in reasons.items():
        pipe.hincrby(_key(org_id), f"{signal}:{reason}", n)
    pipe.execute()


def rejections_get(*, org_id: int) -> dict[str, dict[str, int]]:
    """{signal: {reason: count}} since the counters began."""
    raw = get_redis_connection("default").hgetall(_key(org_id))
    out: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        signal, _, reason = field.decode().partition(":")
        out.setdefault(signal, {})[reason] = int(value)
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
