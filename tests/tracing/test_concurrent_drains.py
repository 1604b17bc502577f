"""Drains of one org run side by side (the org's store lock, taken shared): a span two drains
hold is stored once, whoever commits first, and whether the other commits or rolls back; a
rollup waits for the drains in flight, so it never passes a drain round that has not
committed."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from backend.tracing import dependencies, storage
from backend.tracing.selectors import span_count, traces_get
from tests.tracing.test_span_blocks import _random_spans

pytestmark = pytest.mark.django_db(transaction=True)


class _Abort(Exception):
    pass


def _in_thread(target, out: dict, key: str) -> threading.Thread:
    def run():
        try:
            out[key] = target()
        except _Abort:
            out[key] = "rolled back"
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _held_drain(org_id: int, ready: threading.Event, release: threading.Event, commit: bool):
    """A drain round of one batch whose transaction stays open until ``release``."""

    def run():
        with transaction.atomic():
            stored = storage.batches_drain(org_id=org_id, max_batches=1)
            ready.set()
            assert release.wait(30)
            if not commit:
                raise _Abort
        return stored

    return run


def _waiting_on() -> str | None:
    """What the other active backend of this database waits for (lock kinds), if anything."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT wait_event FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            row = cur.fetchone()
        if row:
            return row[0]
        time.sleep(0.02)
    return None


def _count(table: str, org_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table} WHERE org_id = %s", [org_id])
        return cur.fetchone()[0]


@pytest.mark.parametrize("first_commits", [True, False])
def test_two_drains_run_side_by_side_and_store_a_shared_span_once(tenants, first_commits):
    org = tenants.org.pk
    spans = _random_spans(11, time.time_ns() - 5 * 60 * 10**9, n_traces=12)
    half = len(spans) // 2
    storage.batch_append(org_id=org, spans=spans[:half])
    # the second batch repeats the first one's spans, in the opposite order
    storage.batch_append(org_id=org, spans=spans[half:] + spans[:half][::-1])
    ready, release, out = threading.Event(), threading.Event(), {}
    first = _in_thread(_held_drain(org, ready, release, first_commits), out, "first")
    assert ready.wait(30)
    second = _in_thread(lambda: storage.batches_drain(org_id=org, max_batches=1), out, "second")
    try:
        # the second drain got past the store lock and claimed its batch: it waits on the
        # first one's uncommitted key of a span both hold, not on the lock
        assert _waiting_on() == "transactionid"
    finally:
        release.set()
        first.join(30)
        second.join(30)
    if first_commits:
        assert out == {"first": half, "second": len(spans) - half}
    else:
        assert out == {"first": "rolled back", "second": len(spans)}
        assert storage.batches_drain(org_id=org) == 0  # the first batch again: all stored
    assert storage.batches_drain(org_id=org) is None
    assert span_count(org_id=org) == _count("trace_span_keys", org) == len(spans)
    stored = traces_get(org_id=org, trace_ids=sorted({s.trace_id for s in spans}))
    assert sorted((s.trace_id, s.span_id) for v in stored.values() for s in v) == sorted(
        (s.trace_id, s.span_id) for s in spans
    )


def test_a_rollup_waits_for_the_drains_in_flight(tenants):
    org = tenants.org.pk
    spans = _random_spans(12, time.time_ns() - 5 * 60 * 10**9, n_traces=12)
    storage.batch_append(org_id=org, spans=spans)
    ready, release, out = threading.Event(), threading.Event(), {}
    drain = _in_thread(_held_drain(org, ready, release, True), out, "drain")
    assert ready.wait(30)
    now_ms = time.time_ns() // 10**6
    rollup = _in_thread(lambda: dependencies.org_rollup(org_id=org, now_ms=now_ms), out, "rollup")
    try:
        assert _waiting_on() == "advisory"  # the rollup waits for the drain's store lock
    finally:
        release.set()
        drain.join(30)
        rollup.join(30)
    # the rollup ran after the drain committed, and counted its spans
    assert out == {"drain": len(spans), "rollup": len(spans)}


def test_a_drain_round_asks_for_a_helper_at_once(tenants, monkeypatch):
    # (the task run in this process; the helper's task is not sent, its enqueueing recorded)
    from django_redis import get_redis_connection

    from backend.pipeline import drain, tasks

    queued = []
    monkeypatch.setattr(
        tasks.drain_org,
        "apply_async",
        lambda args, countdown=None: queued.append((tuple(args), countdown)),
    )
    org = tenants.org.pk
    now = time.time_ns()
    for seed in range(3):
        storage.batch_append(org_id=org, spans=_random_spans(seed, now, n_traces=2))
    flag = drain.pending_key("traces", org)
    redis = get_redis_connection("default")
    redis.delete(flag)
    assert tasks.drain_org.run("traces", org) > 0
    # a round stored spans: a helper is queued at once (no delay), under the pending flag
    assert queued == [(("traces", org), None)]
    assert redis.get(flag)
    # the helper clears the flag, finds the outbox empty and asks for nobody
    assert tasks.drain_org.run("traces", org) == 0
    assert len(queued) == 1 and not redis.get(flag)

    # metrics drains do not run side by side: no helper
    from tests.metrics.test_storage import _series, _write

    (series, *_) = _series(tenants.org)
    _write(tenants.org, [series], [int(now / 1e6)], [1.0])
    assert tasks.drain_org.run("metrics", org) > 0
    assert len(queued) == 1


def test_trace_drains_are_queued_at_once_metrics_drains_after_the_delay(
    tenants, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from django_redis import get_redis_connection

    from backend.pipeline import drain, outbox, tasks

    queued = []
    monkeypatch.setattr(
        tasks.drain_org,
        "apply_async",
        lambda args, countdown=None: queued.append((tuple(args), countdown)),
    )
    settings.INGEST_DRAIN_DELAY_SECONDS = 0.25
    org = tenants.org.pk
    for signal in ("traces", "metrics"):
        get_redis_connection("default").delete(drain.pending_key(signal, org))
        with django_capture_on_commit_callbacks(execute=True):
            outbox.drain_requested(signal=signal, org_id=org)
    assert queued == [(("traces", org), None), (("metrics", org), 0.25)]
