"""Reads of the metrics store, for the PromQL engine and the Prometheus API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import re2
from django.db import connection
from psycopg import sql

from backend.metrics import storage
from backend.metrics.catalog import label_pair_ids, label_pairs_by_id, label_pairs_named

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def anchored_regex(pattern: str):
    """Prometheus's regexes: RE2 syntax and linear time whatever the pattern, fully anchored.
    Raises ``re2.error`` for an invalid pattern."""
    return re2.compile(f"^(?:{pattern})$", options=_RE2_OPTIONS)


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def compile(self):
        if self.op in ("=~", "!~"):
            return anchored_regex(self.value)
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
    """Series id -> labels for the org's series that satisfy every matcher.

    Equality matchers and regexes that cannot match the empty string become postings
    look-ups (the GIN index on the series' label-pair ids); the others are checked on the
    candidates' labels.
    """
    if org_id is None:
        raise ValueError("series_match needs an org")
    where = [sql.SQL("org_id = %s")]
    params: list = [org_id]
    post: list[tuple[Matcher, object]] = []
    with connection.cursor() as cur:
        required: list[int] = []
        for m in matchers:
            pattern = m.compile()
            if m.op == "=" and m.value != "":
                found = label_pair_ids(cur, org_id, {(m.name, m.value)}, create=False)
                if not found:
                    return {}
                required.extend(found.values())
                if m.name == "__name__":
                    where.append(sql.SQL("metric_name = %s"))
                    params.append(m.value)
            elif m.op == "=~" and pattern.match("") is None:
                ids = [
                    pid
                    for pid, value in label_pairs_named(cur, org_id, m.name)
                    if pattern.match(value)
                ]
                if not ids:
                    return {}
                where.append(sql.SQL("label_ids && %s::int[]"))
                params.append(ids)
            else:
                post.append((m, pattern))
        if required:
            where.append(sql.SQL("label_ids @> %s::int[]"))
            params.append(required)
        query = sql.SQL("SELECT id, label_ids FROM metric_series WHERE {} ORDER BY id").format(
            sql.SQL(" AND ").join(where)
        )
        cur.execute(query, params)
        rows = cur.fetchall()
        pairs = label_pairs_by_id(cur, org_id, {pid for _, ids in rows for pid in ids})
    out: dict[int, dict[str, str]] = {}
    for sid, ids in rows:
        labels = dict(pairs[pid] for pid in ids)
        if all(_matches(labels, m, p) for m, p in post):
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


def label_names(*, org_id: int) -> list[str]:
    """Every label name the org's series use, sorted."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT name FROM metric_label_pairs WHERE org_id = %s ORDER BY name",
            [org_id],
        )
        return [name for (name,) in cur.fetchall()]


def label_values(*, org_id: int, name: str) -> list[str]:
    """Every (non-empty) value of one label name across the org's series, sorted."""
    with connection.cursor() as cur:
        return sorted(value for _, value in label_pairs_named(cur, org_id, name) if value)


def metadata_list(*, org_id: int, metric: str | None = None) -> list[tuple[str, str, str, str]]:
    from backend.metrics.models import MetricMetadata

    qs = MetricMetadata.objects.for_org(org_id)
    if metric:
        qs = qs.filter(metric_family_name=metric)
    return list(qs.values_list("metric_family_name", "type", "help", "unit"))


@dataclass(frozen=True, slots=True)
class IngestOverview:
    series: int
    metrics: int
    samples_last_hour: int
    last_sample_ms: int | None
    pending_batches: int


def ingest_overview(*, org_id: int, now_ms: int | None = None) -> IngestOverview:
    """What the dashboard shows about an org's metrics ingest (cheap: catalog and block
    headers only, no sample is decoded)."""
    now_ms = now_ms or storage.now_ms()
    hour_ago = now_ms - 3600 * 1000
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT metric_name) FROM metric_series WHERE org_id = %s",
            [org_id],
        )
        series, metrics = cur.fetchone()
        cur.execute(
            """
            SELECT coalesce(sum(n_samples) FILTER (WHERE window_start >= %s), 0), max(max_ts)
            FROM metric_blocks WHERE org_id = %s AND window_start >= %s
            """,
            [hour_ago - hour_ago % storage.WINDOW_MS, org_id, now_ms - 24 * 3600 * 1000],
        )
        samples, last = cur.fetchone()
        cur.execute("SELECT count(*) FROM metric_batches WHERE org_id = %s", [org_id])
        (pending,) = cur.fetchone()
    return IngestOverview(series, metrics, int(samples), last, pending)
