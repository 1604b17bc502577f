"""Retention: drop whole daily partitions past the longest retention of any org, then trim
the orgs whose own retention is shorter."""

from __future__ import annotations

import time

from backend.pipeline import partitions
from backend.pipeline.registry import signal_get
from backend.tenancy.selectors import retention_days_by_org


def retention_apply(*, signal: str, now_ms: int | None = None) -> dict:
    store = signal_get(signal)
    now_ms = now_ms or int(time.time() * 1000)
    per_ms = store.key_units_per_ms
    longest, days_by_org = retention_days_by_org(field=store.retention_field)
    dropped = [
        name
        for table in (store.partitioned_table, *store.also_partitioned)
        for name in partitions.drop_before(table, (now_ms - longest * partitions.DAY_MS) * per_ms)
    ]
    trimmed = sum(
        store.org_trim(org_id, (now_ms - days * partitions.DAY_MS) * per_ms)
        for org_id, days in days_by_org.items()
        if days < longest
    )
    return {"dropped_partitions": dropped, "trimmed_rows": trimmed}
