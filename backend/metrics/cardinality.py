"""Cardinality of an org's series, in the shapes of Grafana Mimir's cardinality API
(``/api/v1/cardinality/label_names``, ``/label_values``, ``/active_series``).

Canopy's series catalog keeps every series an org has written (the same set the
``max_global_series_per_user`` limit counts), so "active" and "in memory" are one set here.
Without a selector the counts come straight from the catalog in SQL (label pairs by name, the
series' pair-id arrays through their GIN index); with one, from the matched series' labels,
bounded by the org's query series limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import chain

from django.db import connection

from backend.metrics.labels import Matcher
from backend.metrics.storage.reader import series_labels_matching

DEFAULT_LIMIT = 20
MAX_LIMIT = 500
MAX_LABEL_NAMES = 100


class TooManySeries(ValueError):
    """The selector matches more series than the org's query limit allows."""


def _matched(org_id: int, matchers: Sequence[Matcher], max_series: int) -> list[dict]:
    """The matched series' labels: the catalog's shared dicts, read only."""
    found = series_labels_matching(org_id=org_id, matchers=matchers, limit=max_series + 1)
    if len(found) > max_series:
        raise TooManySeries(f"the selector matches more than {max_series} series; narrow it down")
    return found


def series_total(*, org_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM metric_series WHERE org_id = %s", [org_id])
        return cur.fetchone()[0]


def label_names_cardinality(
    *, org_id: int, matchers: Sequence[Matcher] | None, limit: int, max_series: int
) -> dict:
    """Label names by their number of distinct values, most first."""
    if matchers:
        # the distinct (name, value) pairs of the matched series, then pairs per name
        pairs = set(
            chain.from_iterable(labels.items() for labels in _matched(org_id, matchers, max_series))
        )
        counts = list(Counter(name for name, _ in pairs).items())
    else:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT name, count(*) FROM metric_label_pairs WHERE org_id = %s GROUP BY name",
                [org_id],
            )
            counts = cur.fetchall()
    counts.sort(key=lambda row: (-row[1], row[0]))
    return {
        "label_values_count_total": sum(n for _, n in counts),
        "label_names_count": len(counts),
        "cardinality": [
            {"label_name": name, "label_values_count": n} for name, n in counts[:limit]
        ],
    }


def _value_counts_sql(org_id: int, names: Sequence[str]) -> dict[str, Counter]:
    """{name: Counter(value: series holding it)} for these label names, in one statement."""
    out: dict[str, Counter] = {name: Counter() for name in names}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, name, value FROM metric_label_pairs WHERE org_id = %s AND name = ANY(%s)",
            [org_id, list(names)],
        )
        pairs = {pid: (name, value) for pid, name, value in cur.fetchall()}
        if not pairs:
            return out
        # The series holding any of the pairs (the GIN index, when the planner finds it
        # worth it); unnest lays out their pairs, a hash join keeps the wanted ones (not
        # ``= ANY(list)``, a scan of the list for each of the series' ~30 pairs).
        ids = list(pairs)
        cur.execute(
            """
            SELECT u.pid, count(*)
            FROM metric_series s CROSS JOIN LATERAL unnest(s.label_ids) AS u(pid)
            JOIN unnest(%s::int[]) AS w(pid) ON w.pid = u.pid
            WHERE s.org_id = %s AND s.label_ids && %s::int[]
            GROUP BY u.pid
            """,
            [ids, org_id, ids],
        )
        for pid, n in cur.fetchall():
            name, value = pairs[pid]
            out[name][value] = n
    return out


def label_values_cardinality(
    *,
    org_id: int,
    names: Sequence[str],
    matchers: Sequence[Matcher] | None,
    limit: int,
    max_series: int,
) -> dict:
    """For each label name: its distinct values, the series holding it, and the top values by
    series count."""
    if matchers:
        matched = _matched(org_id, matchers, max_series)
        total = len(matched)
        per_name = {
            name: Counter(labels[name] for labels in matched if name in labels) for name in names
        }
    else:
        total = series_total(org_id=org_id)
        per_name = _value_counts_sql(org_id, names)
    out = []
    for name in names:
        counts = per_name[name]
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        out.append(
            {
                "label_name": name,
                "label_values_count": len(counts),
                "series_count": sum(counts.values()),
                "cardinality": [{"label_value": v, "series_count": n} for v, n in top],
            }
        )
    out.sort(key=lambda item: (-item["series_count"], item["label_name"]))
    return {"series_count_total": total, "labels": out}


def active_series(*, org_id: int, matchers: Sequence[Matcher], max_series: int) -> dict:
    """The label sets of the series the selector matches."""
    found = _matched(org_id, matchers, max_series)
    found.sort(key=lambda labels: sorted(labels.items()))
    return {"data": found}


def top_metrics(*, org_id: int, limit: int) -> list[tuple[str, int]]:
    """(metric name, series) of the org's metrics with the most series, most first."""
    counts = _value_counts_sql(org_id, ["__name__"])["__name__"]
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
