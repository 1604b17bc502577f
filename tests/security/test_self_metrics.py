"""/metrics: Canopy's own health for Prometheus (requests by route and status with latency,
refusals by signal and reason, outbox depth and lag, queue depths), behind its token."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.tenancy.rejections import rejections_count

pytestmark = pytest.mark.django_db
SCRAPE = {"HTTP_ACCEPT": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4"}


def samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_self_metrics_count_requests_refusals_and_queues(client, tenants, settings):
    settings.METRICS_TOKEN = None  # open, as in `make run`
    client.get("/healthz")
    client.get("/jaeger/api/traces/abc")  # 401: no token; counted under its pattern
    rejections_count(org_id=tenants.org.pk, signal="metrics", reasons={"too_old": 3})
    rejections_count(org_id=tenants.other_org.pk, signal="metrics", reasons={"too_old": 2})
    response = client.get("/metrics", **SCRAPE)
    assert response.status_code == 200
    got = samples(response.content.decode())
    assert (
        got[
            (
                "canopy_http_requests_total",
                (("method", "GET"), ("route", "healthz"), ("status", "200")),
            )
        ]
        >= 1
    )
    assert any(
        name == "canopy_http_requests_total" and dict(labels)["route"].endswith("<str:trace_id>")
        for name, labels in got
    )
    assert any(name == "canopy_http_request_duration_seconds_bucket" for name, _ in got)
    assert got[("canopy_ingest_refused", (("reason", "too_old"), ("signal", "metrics")))] == 5
    assert ("canopy_outbox_batches", (("signal", "metrics"),)) in got
    assert ("canopy_outbox_oldest_seconds", (("signal", "traces"),)) in got
    assert ("canopy_celery_queue_length", (("queue", "ingest"),)) in got


def test_the_metrics_token_protects_them(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics", **SCRAPE).status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **SCRAPE)
    assert wrong.status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret", **SCRAPE)
    assert ok.status_code == 200 and b"canopy_http_requests_total" in ok.content


def test_browsers_still_get_the_metrics_explorer(client, tenants):
    client.force_login(tenants.owner)
    page = client.get("/metrics", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert page.status_code == 200 and b"<html" in page.content.lower()


def test_the_grafana_dashboard_queries_metrics_that_exist():
    import json
    import re
    from pathlib import Path

    dashboard = json.loads(
        (Path(__file__).parents[2] / "docker" / "grafana" / "canopy-self.json").read_text()
    )
    exported = {
        "canopy_http_requests_total",
        "canopy_http_request_duration_seconds_bucket",
        "canopy_ingest_refused",
        "canopy_outbox_batches",
        "canopy_outbox_oldest_seconds",
        "canopy_celery_queue_length",
        "canopy_celery_task_duration_seconds_bucket",
    }
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"canopy_[a-z_]+", target["expr"])
    }
    assert used and used <= exported
