"""The ``metric_blocks`` table: compressed columnar blocks of samples, one metric and one
aligned 10-minute window each (the encoding is ``encoding.py``), in daily partitions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from psycopg import sql

from backend.metrics.storage import encoding
from backend.pipeline import partitions

WINDOW_MS = 10 * 60 * 1000  # blocks cover aligned 10-minute windows


@dataclass(slots=True)
class BlockRow:
    org_id: int
    metric_name: str
    window_start: int
    block: encoding.EncodedBlock


def _copy(rows: Sequence[BlockRow]) -> None:
    with (
        connection.cursor() as cur,
        cur.copy(
            "COPY metric_blocks (org_id, metric_name, window_start, min_ts, max_ts, n_series, "
            'n_samples, value_mode, series, timestamps, "values") FROM STDIN'
        ) as copy,
    ):
        for r in rows:
            b = r.block
            copy.write_row(
                (
                    r.org_id,
                    r.metric_name,
                    r.window_start,
                    b.min_ts,
                    b.max_ts,
                    b.n_series,
                    b.n_samples,
                    b.value_mode,
                    b.series,
                    b.timestamps,
                    b.values,
                )
            )


def blocks_insert(rows: Sequence[BlockRow]) -> None:
    if rows:
        partitions.write_with_partitions(
            "metric_blocks", [r.window_start for r in rows], lambda: _copy(rows)
        )


@dataclass(slots=True)
class StoredBlock:
    id: int
    metric_name: str
    window_start: int
    n_series: int
    value_mode: int
    series: bytes
    timestamps: bytes
    values: bytes

    def decode(self) -> encoding.Samples:
        return encoding.decode(
            n_series=self.n_series,
            value_mode=self.value_mode,
            series=self.series,
            timestamps=self.timestamps,
            values=self.values,
        )


def blocks_query(where: str, *, lock: bool = False, **parts: sql.Composable) -> sql.Composed:
    """The statement ``blocks_fetch`` runs; ``where`` is a fixed fragment (values travel as
    parameters), whose ``{name}`` placeholders take the composed ``parts``. Its rows become
    blocks through ``blocks_from_rows``."""
    return sql.SQL(
        'SELECT id, metric_name, window_start, n_series, value_mode, series, timestamps, "values" '
        "FROM metric_blocks WHERE {} ORDER BY window_start, id{}"
    ).format(sql.SQL(where).format(**parts), sql.SQL(" FOR UPDATE SKIP LOCKED" if lock else ""))


def blocks_from_rows(rows) -> list[StoredBlock]:
    return [StoredBlock(*row) for row in rows]


def blocks_fetch(cur, where: str, params: list, *, lock: bool = False) -> list[StoredBlock]:
    """``where`` is a fixed fragment of this module; values travel as ``params``."""
    cur.execute(blocks_query(where, lock=lock), params)
    return blocks_from_rows(cur.fetchall())


@dataclass(slots=True, frozen=True)
class BlockHeader:
    """What a query reads of a block before its columns: enough to plan, and to recognise the
    block in the decoded-blocks cache."""

    id: int
    metric_name: str
    window_start: int
    n_series: int
    n_samples: int
    value_mode: int
    min_ts: int
    max_ts: int


def headers_query(where: str, **parts: sql.Composable) -> sql.Composed:
    """The headers of the blocks ``where`` selects (a fixed fragment as in ``blocks_query``),
    in window order; rows become headers through ``headers_from_rows``."""
    return sql.SQL(
        "SELECT id, metric_name, window_start, n_series, n_samples, value_mode, min_ts, max_ts "
        "FROM metric_blocks WHERE {} ORDER BY window_start, id"
    ).format(sql.SQL(where).format(**parts))


def headers_from_rows(rows) -> list[BlockHeader]:
    return [BlockHeader(*row) for row in rows]


def columns_fetch(
    cur, org_id: int, headers: Sequence[BlockHeader]
) -> list[tuple[int, int, bytes, bytes, bytes]] | None:
    """(n_series, value_mode, series, timestamps, values) of each of the org's blocks named by
    ``headers``, in their order: one statement (its window range prunes the partitions). None
    when one of them is gone (compaction replaced it since its header was read, in a
    transaction that sees each statement's own snapshot)."""
    cur.execute(
        'SELECT id, series, timestamps, "values" FROM metric_blocks WHERE org_id = %s'
        " AND window_start >= %s AND window_start <= %s AND id = ANY(%s)",
        [
            org_id,
            min(h.window_start for h in headers),
            max(h.window_start for h in headers),
            [h.id for h in headers],
        ],
    )
    columns = {bid: rest for bid, *rest in cur.fetchall()}
    if len(columns) < len(headers):
        return None
    return [(h.n_series, h.value_mode, *columns[h.id]) for h in headers]


def storage_bytes() -> int:
    """Bytes on disk of all sample and series tables, with their indexes and TOAST."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
            WHERE c.relkind = 'r' AND (c.relname IN ('metric_series', 'metric_batches')
                OR c.relname LIKE 'metric_blocks_%%')
            """
        )
        return int(cur.fetchone()[0])


def now_ms() -> int:
    return int(time.time() * 1000)
