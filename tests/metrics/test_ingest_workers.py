"""The durable hand-off: real Celery workers drain the outbox; a worker killed in the middle of
a batch leaves it for redelivery, and it is stored exactly once."""

from __future__ import annotations

import pytest
from django.db import connection

from backend.metrics.labels import Matcher
from backend.metrics.selectors import samples_for_series
from backend.metrics.storage.reader import series_match
from backend.tenancy.services import limits_update, org_create, token_create, user_get_or_create
from bench import istio_payloads as ip
from tests.helpers.credentials import bearer
from tests.workers import celery_worker, kill_a_worker_mid_drain, wait_until

N_REQUESTS = 5
SERIES = 500


@pytest.fixture
def org(transactional_db):
    org = org_create(slug="acme", name="Acme", owner=user_get_or_create(username="ops"))
    limits_update(org=org, changes={"ingestion_rate": 1_000_000, "ingestion_burst_size": 10**6})
    yield org
    with connection.cursor() as cur:  # raw tables are not flushed between transactional tests
        cur.execute("DELETE FROM metric_batches WHERE org_id = %s", [org.pk])
        cur.execute("DELETE FROM metric_blocks WHERE org_id = %s", [org.pk])


def _pending(org) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM metric_batches WHERE org_id = %s", [org.pk])
        return cur.fetchone()[0]


def _stored_samples(org) -> int:
    series = series_match(org_id=org.pk, matchers=[Matcher("__name__", "=", ip.METRIC_NAME)])
    data = samples_for_series(org_id=org.pk, series=series, start_ms=0, end_ms=2**62)
    return sum(len(t) for t, _ in data.values())


def _push_requests(client, org):
    _, token = token_create(org=org, name="w", scopes=["metrics:write"])
    start = ip.aligned_start_ms(N_REQUESTS)
    for body in ip.build_requests(
        2, N_REQUESTS, start, n_series=SERIES, samples_per_request=SERIES
    ):
        response = client.post(
            "/api/v1/push",
            body,
            content_type="application/x-protobuf",
            HTTP_CONTENT_ENCODING="snappy",
            **bearer(token),
        )
        assert response.status_code == 204


def test_a_worker_drains_what_was_acknowledged(client, org, tmp_path):
    _push_requests(client, org)
    assert _pending(org) == N_REQUESTS  # durable before any worker ran
    with celery_worker(log_path=tmp_path / "worker.log"):
        wait_until(lambda: _pending(org) == 0, 60, "the worker did not drain the outbox")
    assert _stored_samples(org) == N_REQUESTS * SERIES


def test_a_killed_worker_batch_is_redelivered_and_stored_once(client, org, tmp_path):
    _push_requests(client, org)
    log = tmp_path / "worker.log"
    kill_a_worker_mid_drain(
        table="metric_blocks",
        pending=lambda: _pending(org),
        stored=lambda: _stored_samples(org),
        batches=N_REQUESTS,
        log_path=log,
    )
    assert _stored_samples(org) == N_REQUESTS * SERIES
    assert "pipeline.tasks.drain_org" in log.read_text()


def test_batches_arriving_within_the_drain_delay_are_drained_together(
    client, org, tmp_path, settings
):
    settings.INGEST_DRAIN_DELAY_SECONDS = 3  # the default is a quarter of a second
    log = tmp_path / "worker.log"
    with celery_worker(log_path=log):
        wait_until(lambda: " ready." in log.read_text(), 60, "the worker did not start")
        _push_requests(client, org)
        wait_until(lambda: _pending(org) == 0, 60, "the worker did not drain the outbox")
        wait_until(lambda: "succeeded" in log.read_text(), 10, "no drain finished")
    assert _stored_samples(org) == N_REQUESTS * SERIES
    drains = [line for line in log.read_text().splitlines() if "drain_org" in line]
    assert len([line for line in drains if "succeeded" in line]) == 1, drains
