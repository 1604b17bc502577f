"""Daily range partitions of the time-partitioned tables (``metric_blocks``, ``trace_spans``),
created on demand by whoever writes first and dropped whole by retention."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg
from django.db import IntegrityError, connection, transaction

DAY_MS = 24 * 3600 * 1000

_known: set[tuple[str, int]] = set()


def _day_start(key: int, per_ms: int) -> int:
    ms = key // per_ms
    return ms - ms % DAY_MS


def lock_key(table: str, day_ms: int) -> tuple[int, int]:
    """The advisory lock (two int4 keys) taken while creating ``table``'s partition of a day
    (tests hold it to stop a worker inside its drain)."""
    return zlib.crc32(table.encode()) & 0x7FFFFFFF, day_ms // DAY_MS


def ensure(table: str, keys: Iterable[int], *, per_ms: int = 1) -> None:
    """Create the daily partitions of ``table`` holding these partition-key values. ``per_ms``
    is how many key units make a millisecond (1 for ms keys, 1,000,000 for ns keys)."""
    for day in {_day_start(k, per_ms) for k in keys}:
        if (table, day) in _known:
            continue
        name = f"{table}_" + datetime.fromtimestamp(day / 1000, UTC).strftime("%Y%m%d")
        with connection.cursor() as cur:
            # Concurrent writers race to create the same partition: one lock per table and day.
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(table, day))
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                f"FOR VALUES FROM ({day * per_ms}) TO ({(day + DAY_MS) * per_ms})"
            )
        _known.add((table, day))


def write_with_partitions(table: str, keys: list[int], write, *, per_ms: int = 1) -> None:
    """Run ``write()`` after making sure the partitions exist. If this process wrongly
    believed one existed (retention dropped it, or its creation was rolled back), forget what
    it knew and try once more."""
    ensure(table, keys, per_ms=per_ms)
    try:
        with transaction.atomic():  # a savepoint, so the retry has a usable transaction
            write()
    except (IntegrityError, psycopg.IntegrityError):  # COPY errors arrive unwrapped
        forget(table)
        ensure(table, keys, per_ms=per_ms)
        write()


def forget(table: str) -> None:
    for known in [k for k in _known if k[0] == table]:
        _known.discard(known)


def drop_before(table: str, cutoff: int) -> list[str]:
    """Drop the partitions of ``table`` whose upper bound is at or before ``cutoff`` (key units)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass
            """,
            [table],
        )
        dropped = []
        for name, bound in cur.fetchall():
            upper = int(bound.rsplit("(", 1)[1].strip("')"))  # FOR VALUES FROM (a) TO (b)
            if upper <= cutoff:
                cur.execute(f"DROP TABLE {name}")
                dropped.append(name)
    if dropped:
        forget(table)
    return dropped
