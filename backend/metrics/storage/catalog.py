"""The series catalog: label sets ↔ series ids, per org, with the active-series limits.

``series_resolve`` is on the ingest hot path: it takes the label sets of a request that the
calling process has not seen before, creates the missing ones with a single
``INSERT … ON CONFLICT DO NOTHING`` and reads back every id with one more statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import chain

from django.db import connection
from django_redis import get_redis_connection

from backend.metrics.labels import LabelPairs, labels_key, metric_name_of

_END = ("",)  # joined last: the last value gets its 0xff too


def fingerprint(labels: LabelPairs) -> int:
    """A signed 64-bit hash of the sorted label set: BLAKE2b of its names and values in UTF-8,
    each followed by a 0xff byte (which cannot occur in UTF-8)."""
    data = b"\xff".join(map(str.encode, chain(chain.from_iterable(labels), _END)))
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def pair_hash(name: str, value: str) -> int:
    h = hashlib.blake2b(f"{name}\xff{value}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little", signed=True)


# Label pairs never change once created: each process keeps the ones it has seen, both ways.
_pair_ids: dict[tuple[int, str, str], int] = {}
_pairs_by_id: dict[int, tuple[str, str]] = {}
_MAX_PAIRS = 2_000_000
# A series' labels, built once per process from its label-pair ids: series id -> (the label ids
# it was built from, labels, labels_key). The ids are compared on every use, so an id that came
# to name other labels (a restored database) is rebuilt, never answered stale.
_series_labels: dict[int, tuple[list[int], dict[str, str], tuple]] = {}
# ~2 KB an entry for Istio's ~30 labels: at most ~100 MB per process, then started afresh
_MAX_SERIES_LABELS = 50_000


def caches_clear() -> None:
    _pair_ids.clear()
    _pairs_by_id.clear()
    _series_labels.clear()


def _remember(org_id: int, rows) -> None:
    if len(_pair_ids) > _MAX_PAIRS:
        _pair_ids.clear()
        _pairs_by_id.clear()
    for pid, name, value in rows:
        _pair_ids[(org_id, name, value)] = pid
        _pairs_by_id[pid] = (name, value)


def label_pair_ids(cur, org_id: int, pairs: set[tuple[str, str]], *, create: bool) -> dict:
    """{(name, value): id} for the pairs; with ``create``, missing pairs are added."""
    missing = [p for p in pairs if (org_id, *p) not in _pair_ids]
    if missing:
        # Insert in hash order: two requests creating overlapping pairs then take the unique
        # index's locks in the same order and cannot deadlock.
        keyed = sorted((pair_hash(n, v), n, v) for n, v in missing)
        hashes = [h for h, _, _ in keyed]
        missing = [(n, v) for _, n, v in keyed]
        if create:
            cur.execute(
                """
                INSERT INTO metric_label_pairs (org_id, pair_hash, name, value)
                SELECT %s, h, n, v FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(h, n, v)
                ON CONFLICT (org_id, pair_hash) DO NOTHING
                """,
                [org_id, hashes, [n for n, _ in missing], [v for _, v in missing]],
            )
        cur.execute(
            "SELECT id, name, value FROM metric_label_pairs "
            "WHERE org_id = %s AND pair_hash = ANY(%s)",
            [org_id, hashes],
        )
        _remember(org_id, cur.fetchall())
    return {p: _pair_ids[(org_id, *p)] for p in pairs if (org_id, *p) in _pair_ids}


def label_pairs_by_id(cur, org_id: int, ids: set[int]) -> dict[int, tuple[str, str]]:
    missing = [i for i in ids if i not in _pairs_by_id]
    if missing:
        cur.execute(
            "SELECT id, name, value FROM metric_label_pairs WHERE org_id = %s AND id = ANY(%s)",
            [org_id, missing],
        )
        _remember(org_id, cur.fetchall())
    return {i: _pairs_by_id[i] for i in ids if i in _pairs_by_id}


def series_labels(cur, org_id: int, rows) -> list[tuple[int, dict[str, str], tuple]]:
    """(series id, labels, labels_key) for (series id, label ids) rows, in their order.

    The labels are shared with later calls: callers must not change them (copy first). A
    query's series are mostly the previous query's, so building a dict of ~30 labels per series
    (and its sorted key) is done once per series and process, not once per query.
    """
    missing = {pid for sid, ids in rows if _cached_ids(sid) != ids for pid in ids}
    pairs = label_pairs_by_id(cur, org_id, missing) if missing else {}
    if len(_series_labels) + len(rows) > _MAX_SERIES_LABELS:
        _series_labels.clear()
    out = []
    for sid, ids in rows:
        entry = _series_labels.get(sid)
        if entry is None or entry[0] != ids:
            labels = dict(pairs[pid] for pid in ids)
            entry = (ids, labels, labels_key(labels))
            _series_labels[sid] = entry
        out.append((sid, entry[1], entry[2]))
    return out


def _cached_ids(sid: int):
    entry = _series_labels.get(sid)
    return None if entry is None else entry[0]


def label_pairs_named(cur, org_id: int, name: str) -> list[tuple[int, str]]:
    """(id, value) of every pair with this label name (for regex and negative matchers)."""
    cur.execute(
        "SELECT id, value FROM metric_label_pairs WHERE org_id = %s AND name = %s",
        [org_id, name],
    )
    return cur.fetchall()


# Negative "ids" say why a new series was refused.
REFUSED_PER_USER = -1
REFUSED_PER_METRIC = -2


def _series_counter_keys(org_id: int, metric: str) -> tuple[str, str]:
    # The {org} hash tag keeps one org's counters in one Redis Cluster slot (the script needs it).
    return f"canopy:series:{{{org_id}}}", f"canopy:series:{{{org_id}}}:{metric}"


def _series_by_fingerprint(cur, org_id: int, fps: Sequence[int]) -> dict[int, int]:
    # (the fingerprints as one string: adapting a list of thousands costs more in Python)
    cur.execute(
        "SELECT fingerprint, id FROM metric_series "
        "WHERE org_id = %s AND fingerprint = ANY(string_to_array(%s, ',')::bigint[])",
        [org_id, ",".join(map(str, fps))],
    )
    return dict(cur.fetchall())


def series_resolve(
    *, org_id: int, label_sets: Sequence[LabelPairs], max_per_user: int, max_per_metric: int
) -> list[int]:
    """Series ids for the label sets (label names sorted, ``__name__`` among them); a
    negative REFUSED_* code where a series limit refused a new series."""
    if not label_sets:
        return []
    fps = [fingerprint(ls) for ls in label_sets]
    with connection.cursor() as cur:
        known = _series_by_fingerprint(cur, org_id, fps)
        missing = [i for i, fp in enumerate(fps) if fp not in known]
        verdicts: dict[int, int] = {}
        if missing:
            codes = _admit_new_series(
                org_id, [label_sets[i] for i in missing], max_per_user, max_per_metric
            )
            # Fingerprint order, for the same reason as label pairs: no deadlocks between
            # concurrent requests creating the same series.
            new = sorted(
                (i for i, code in zip(missing, codes, strict=True) if code == 0),
                key=fps.__getitem__,
            )
            verdicts = {i: code for i, code in zip(missing, codes, strict=True) if code}
            if new:
                pair_ids = label_pair_ids(
                    cur, org_id, {p for i in new for p in label_sets[i]}, create=True
                )
                # The columns travel as three strings split by PostgreSQL (adapting thousands
                # of list items in Python cost more than the insert): fingerprints and each
                # series' pair ids joined by ",", series by ";", metric names by U+001E.
                pair_text = {pair: str(pid) for pair, pid in pair_ids.items()}
                names = [metric_name_of(label_sets[i]) for i in new]
                if any(_NAME_SEPARATOR in name for name in set(names)):
                    raise ValueError("a metric name holds U+001E")  # (never valid)
                cur.execute(
                    """
                    INSERT INTO metric_series (org_id, fingerprint, metric_name, label_ids,
                                               created_at)
                    SELECT %s, fp::bigint, coalesce(name, ''),
                           coalesce(string_to_array(ids, ',')::int[], '{}'), now()
                    FROM unnest(string_to_array(%s, ','), string_to_array(%s, %s),
                                string_to_array(%s, ';')) AS t(fp, name, ids)
                    ON CONFLICT (org_id, fingerprint) DO NOTHING
                    RETURNING fingerprint, id
                    """,
                    [
                        org_id,
                        ",".join([str(fps[i]) for i in new]),
                        _NAME_SEPARATOR.join(names),
                        _NAME_SEPARATOR,
                        ";".join(
                            [",".join(map(pair_text.__getitem__, label_sets[i])) for i in new]
                        ),
                    ],
                )
                known.update(cur.fetchall())
                # Created meanwhile by a concurrent request: the insert skipped those.
                raced = [fps[i] for i in new if fps[i] not in known]
                if raced:
                    known.update(_series_by_fingerprint(cur, org_id, raced))
    return [verdicts[i] if i in verdicts else known[fp] for i, fp in enumerate(fps)]


_NAME_SEPARATOR = "\x1e"

# KEYS[1] is the org's counter, KEYS[2..] the counters of the new series' metrics; ARGV holds
# the two limits and, comma-separated, each new series' metric as an index into KEYS[2..].
# Returns per series 0 (admitted), -1 (over the org's limit), -2 (over the metric's).
_ADMIT = """
local max_user, max_metric = tonumber(ARGV[1]), tonumber(ARGV[2])
local total = tonumber(redis.call('GET', KEYS[1]) or '0')
local per_metric = {}
for i = 2, #KEYS do
  per_metric[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
local out = {}
for index in string.gmatch(ARGV[3], '[^,]+') do
  local k = tonumber(index) + 2
  if total >= max_user then
    out[#out + 1] = -1
  elseif per_metric[k] >= max_metric then
    out[#out + 1] = -2
  else
    total = total + 1
    per_metric[k] = per_metric[k] + 1
    out[#out + 1] = 0
  end
end
redis.call('SET', KEYS[1], total)
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], per_metric[i])
end
return out
"""


def _admit_new_series(
    org_id: int,
    label_sets: Sequence[LabelPairs],
    max_per_user: int,
    max_per_metric: int,
) -> list[int]:
    """Count new series against the org's and the metric's limits in Redis, atomically and in
    one round trip for the whole request (every web process shares the counts). A series
    admitted here but created concurrently by another request is counted twice: the count
    errs towards refusing, and ``series_counts_reset`` recounts exactly."""
    redis = get_redis_connection("default")
    user_key, _ = _series_counter_keys(org_id, "")
    metrics: dict[str, int] = {}
    index = [metrics.setdefault(metric_name_of(ls), len(metrics)) for ls in label_sets]
    metric_keys = [_series_counter_keys(org_id, metric)[1] for metric in metrics]
    return [
        int(v)
        for v in redis.eval(
            _ADMIT,
            1 + len(metric_keys),
            user_key,
            *metric_keys,
            max_per_user,
            max_per_metric,
            ",".join(map(str, index)),
        )
    ]


def series_counts_reset(*, org_id: int) -> None:
    """Recount the org's series into the limit counters (after retention deleted some)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT metric_name, count(*) FROM metric_series WHERE org_id = %s GROUP BY 1",
            [org_id],
        )
        rows = cur.fetchall()
    redis = get_redis_connection("default")
    user_key, _ = _series_counter_keys(org_id, "")
    stale = list(redis.scan_iter(f"{user_key}:*"))
    pipe = redis.pipeline()
    if stale:
        pipe.delete(*stale)
    pipe.set(user_key, sum(n for _, n in rows))
    for metric, n in rows:
        pipe.set(_series_counter_keys(org_id, metric)[1], n)
    pipe.execute()


def series_metric_names(*, org_id: int, series_ids: Sequence[int]) -> dict[int, str]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, metric_name FROM metric_series WHERE org_id = %s AND id = ANY(%s)",
            [org_id, list(series_ids)],
        )
        return dict(cur.fetchall())
