"""Reads of the metrics store, for the PromQL engine and the Prometheus API."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection
from psycopg import sql

from backend.metrics import storage


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def compile(self):
        if self.op in ("=~", "!~"):
            # Prometheus regexes are fully anchored.
            return re.compile(f"(?:{self.value})\\Z", re.DOTALL)
        return None


def _matches(labels: dict[str, str], matcher: Matcher, pattern) -> bool:
    value = labels.get(matcher.name, "")  # an absent label equals the empty string
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    hit = pattern.match(value) is not None
    return hit if matcher.op == "=~" else not hit


def series_match(
    *, org_id: int, matchers: Sequence[Matcher], limit: int | None = None
) -> dict[int, dict[str, str]]:
    """Series id -> labels for the org's series that satisfy every matcher."""
    if org_id is None:
        raise ValueError("series_match needs an org")
    where = ["org_id = %s"]
    params: list = [org_id]
    contains = {m.name: m.value for m in matchers if m.op == "=" and m.value != ""}
    if "__name__" in contains:
        where.append("metric_name = %s")
        params.append(contains["__name__"])
    if contains:
        where.append("labels @> %s::jsonb")  # served by the GIN index
        params.append(json.dumps(contains))
    rest = [(m, m.compile()) for m in matchers if not (m.op == "=" and m.value != "")]
    out: dict[int, dict[str, str]] = {}
    with connection.cursor() as cur:
        # The WHERE clause is built from fixed fragments; every value is a bound parameter.
        query = sql.SQL("SELECT id, labels FROM metric_series WHERE {} ORDER BY id").format(
            sql.SQL(" AND ").join(sql.SQL(w) for w in where)
        )
        cur.execute(query, params)
        for sid, labels in cur:
            if isinstance(labels, str):
                labels = json.loads(labels)
            if all(_matches(labels, m, p) for m, p in rest):
                out[sid] = labels
                if limit is not None and len(out) >= limit:
                    break
    return out


def samples_for_series(
    *, org_id: int, series: dict[int, dict[str, str]], start_ms: int, end_ms: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(timestamps ms int64, values float64) per series within [start, end]."""
    names = {sid: labels.get("__name__", "") for sid, labels in series.items()}
    return storage.samples_fetch(org_id=org_id, series=names, start_ms=start_ms, end_ms=end_ms)


def metadata_list(*, org_id: int, metric: str | None = None) -> list[tuple[str, str, str, str]]:
    from backend.metrics.models import MetricMetadata

    qs = MetricMetadata.objects.for_org(org_id)
    if metric:
        qs = qs.filter(metric_family_name=metric)
    return list(qs.values_list("metric_family_name", "type", "help", "unit"))
