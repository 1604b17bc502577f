"""The querier contract: the PostgreSQL querier and the in-memory one (which the engine's unit
tests use) select the same series, in the same order, with the same samples; the PostgreSQL
one sees one org only and bounds its reads by the query timeout."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import DatabaseError, connection

from backend.metrics.labels import Matcher
from backend.metrics.promql import instant_query
from backend.metrics.promql.querier import ReadTimeout, SeriesLimitExceeded, Windows
from backend.metrics.storage.reader import PostgresQuerier
from tests.metrics.samples import STALE, T0, counter, in_memory, load

pytestmark = pytest.mark.django_db

DATA = {
    counter("reqs", code="200", svc="b"): [(0, 1.0), (15, 2.0), (30, 3.0)],
    counter("reqs", code="500", svc="a"): [(0, 5.0), (15, STALE), (30, 6.0)],
    counter("reqs", code="200", svc="a"): [(900, 7.0)],  # another 10-minute window
    counter("lat", svc="a"): [(0, 0.5)],
    counter("empty", svc="c"): [(-4000, 1.0)],  # exists, but has no sample in range
}

SELECTIONS = [
    [Matcher("__name__", "=", "reqs")],
    [Matcher("__name__", "=", "reqs"), Matcher("svc", "=", "a")],
    [Matcher("__name__", "=~", "re.*|lat"), Matcher("code", "!=", "500")],
    [Matcher("svc", "!~", "b"), Matcher("__name__", "!=", "")],
    [Matcher("code", "=", "")],  # no code label
    [Matcher("__name__", "=", "nothing")],
]


def _same(a, b) -> None:
    assert a.labels == b.labels
    assert a.offsets.tolist() == b.offsets.tolist()
    assert a.timestamps.tolist() == b.timestamps.tolist()
    # bit-exact, so the staleness marker's NaN payload counts too
    assert a.values.view(np.uint64).tolist() == b.values.view(np.uint64).tolist()


@pytest.mark.parametrize("matchers", SELECTIONS)
def test_postgres_and_in_memorys_select_alike(tenants, matchers):
    load(tenants.org, DATA)
    stored = PostgresQuerier(org_id=tenants.org.pk)
    held = in_memory(DATA)
    for start, end in [(T0, T0 + 1_000_000), (T0 + 10_000, T0 + 20_000), (T0 - 5000, T0)]:
        with stored.reading(timeout_seconds=10):
            got = stored.select(matchers, start_ms=start, end_ms=end, max_series=100)
        _same(got, held.select(matchers, start_ms=start, end_ms=end, max_series=100))
        assert all(np.diff(got.offsets) > 0)  # series without samples in range are left out


def test_both_queriers_refuse_more_series_than_allowed(tenants):
    load(tenants.org, DATA)
    matchers = [Matcher("__name__", "=", "reqs")]
    for querier in (PostgresQuerier(org_id=tenants.org.pk), in_memory(DATA)):
        with pytest.raises(SeriesLimitExceeded):
            querier.select(matchers, start_ms=T0, end_ms=T0 + 10**6, max_series=2)


def test_other_orgs_series_are_invisible(tenants):
    load(tenants.other_org, {counter("secret"): [(0, 1.0)]})
    querier = PostgresQuerier(org_id=tenants.org.pk)
    data = instant_query(querier=querier, query="secret", time_ms=T0)
    assert data["result"] == []
    data = instant_query(querier=querier, query="absent(secret)", time_ms=T0)
    assert [float(r["value"][1]) for r in data["result"]] == [1.0]


def test_reads_are_read_only_and_cancelled_past_the_timeout(tenants):
    querier = PostgresQuerier(org_id=tenants.org.pk)
    with (
        pytest.raises(ReadTimeout),
        querier.reading(timeout_seconds=0.05),
        connection.cursor() as cur,
    ):
        cur.execute("SELECT pg_sleep(2)")  # a slow statement inside the query's reads
    with (
        pytest.raises(DatabaseError, match="read-only"),
        querier.reading(timeout_seconds=10),
        connection.cursor() as cur,
    ):
        cur.execute("CREATE TEMP TABLE nope (x int)")


def test_a_window_hint_leaves_out_only_samples_outside_every_window(tenants):
    """``[1m]`` windows every 5 minutes need a fifth of the samples: the PostgreSQL querier
    drops the others, and keeps exactly the samples within some window (closed at both
    ends, as Prometheus 2.x's), across block windows and with a partly filled last block."""
    points = [(t, float(t)) for t in range(0, 3600, 15)]
    data = {counter("dense", svc="a"): points, counter("dense", svc="b"): points[::3]}
    load(tenants.org, data)
    querier = PostgresQuerier(org_id=tenants.org.pk)
    matchers = [Matcher("__name__", "=", "dense")]
    for first, step, count, range_ms in [
        (T0 + 300_000, 300_000, 11, 60_000),
        (T0 + 60_000, 15_000, 40, 60_000),
        (T0 + 45_000, 600_000, 6, 45_000),
        (T0 + 1_000_000, 1, 1, 120_000),  # one window: an instant query or an @ time
    ]:
        windows = Windows(first, step, count, range_ms)
        start, end = first - range_ms, first + (count - 1) * step
        with querier.reading(timeout_seconds=10):
            got = querier.select(
                matchers, start_ms=start, end_ms=end, max_series=10, windows=windows
            )
        full = in_memory(data).select(matchers, start_ms=start, end_ms=end, max_series=10)
        ends = first + step * np.arange(count)
        inside = (
            (full.timestamps[:, None] >= ends - range_ms) & (full.timestamps[:, None] <= ends)
        ).any(axis=1)
        assert inside.sum() > 0 and (step <= range_ms or not inside.all())
        assert got.timestamps.tolist() == full.timestamps[inside].tolist()
        assert got.values.tolist() == full.values[inside].tolist()
        rows = np.repeat(np.arange(len(full.labels)), np.diff(full.offsets))[inside]
        assert got.labels == [full.labels[r] for r in np.unique(rows)]


def _transaction_status() -> str:
    return connection.connection.info.transaction_status.name


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_read_only_transaction_begins_with_the_first_statement(
    tenants,
):
    """In autocommit mode (a web request), BEGIN READ ONLY and the timeout travel with the
    scope's first statement: a scope that reads nothing sends nothing, one that reads ends
    with the transaction closed, and the guarantees are those of the transaction above."""
    load(tenants.org, DATA)
    querier = PostgresQuerier(org_id=tenants.org.pk)
    sent: list[str] = []

    def record(execute, sql, params, many, context):
        sent.append(str(sql))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        data = instant_query(querier=querier, query="vector(1)", time_ms=T0)
    assert [float(r["value"][1]) for r in data["result"]] == [1.0]
    assert sent == [] and _transaction_status() == "IDLE"

    with connection.execute_wrapper(record), querier.reading(timeout_seconds=7):
        got = querier.select(
            [Matcher("__name__", "=", "reqs")], start_ms=T0, end_ms=T0 + 10**6, max_series=9
        )
        with connection.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone() == ("7s",)
            cur.execute("SHOW transaction_read_only")
            assert cur.fetchone() == ("on",)
        assert _transaction_status() == "INTRANS"
    _same(
        got,
        in_memory(DATA).select(
            [Matcher("__name__", "=", "reqs")], start_ms=T0, end_ms=T0 + 10**6, max_series=9
        ),
    )
    # the series and the block headers of their metric in one statement (BEGIN and the
    # settings prepended to it), the blocks' columns (not yet in the process's block cache),
    # the two SHOWs, then COMMIT: five round trips
    assert len(sent) == 5 and "FROM metric_series" in sent[0] and "FROM metric_blocks" in sent[0]
    assert "FROM metric_blocks" in sent[1] and "id = ANY" in sent[1]
    assert sent[-1] == "COMMIT" and _transaction_status() == "IDLE"
    sent.clear()
    with connection.execute_wrapper(record), querier.reading(timeout_seconds=7):
        again = querier.select(
            [Matcher("__name__", "=", "reqs")], start_ms=T0, end_ms=T0 + 10**6, max_series=9
        )
    _same(again, got)
    # the blocks now come decoded from the cache: the series and headers, then COMMIT
    assert len(sent) == 2 and "FROM metric_blocks" in sent[0] and sent[1] == "COMMIT"
    with connection.cursor() as cur:  # the session's own settings are untouched
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone() == ("off",)


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_reads_are_read_only_and_cancelled_past_the_timeout(tenants):
    querier = PostgresQuerier(org_id=tenants.org.pk)
    with (
        pytest.raises(ReadTimeout),
        querier.reading(timeout_seconds=0.05),
        connection.cursor() as cur,
    ):
        cur.execute("SELECT pg_sleep(2)")
    assert _transaction_status() == "IDLE"  # rolled back: the connection is usable
    with (
        pytest.raises(DatabaseError, match="read-only"),
        querier.reading(timeout_seconds=10),
        connection.cursor() as cur,
    ):
        cur.execute("SELECT 1")
        cur.execute("CREATE TEMP TABLE nope (x int)")
    assert _transaction_status() == "IDLE"
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_a_selection_over_the_series_limit_reads_no_block(tenants):
    """A refused selection reads the blocks' headers with its series (a few small columns),
    never their columns; the next selection of the scope reads them and answers right."""
    load(tenants.org, DATA)
    querier = PostgresQuerier(org_id=tenants.org.pk)
    reqs = [Matcher("__name__", "=", "reqs")]
    sent: list[str] = []

    def record(execute, sql, params, many, context):
        sent.append(str(sql))
        return execute(sql, params, many, context)

    with querier.reading(timeout_seconds=10), connection.execute_wrapper(record):
        with pytest.raises(SeriesLimitExceeded):
            querier.select(reqs, start_ms=T0, end_ms=T0 + 10**6, max_series=2)
        assert sent and not any('"values"' in s for s in sent)
        got = querier.select(reqs, start_ms=T0, end_ms=T0 + 10**6, max_series=3)
        assert any('"values"' in s for s in sent)
    _same(got, in_memory(DATA).select(reqs, start_ms=T0, end_ms=T0 + 10**6, max_series=3))
