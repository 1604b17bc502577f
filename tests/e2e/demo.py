"""One org with something on every page, for the page-wide e2e checks (contrast, 820 px) and
the README's screenshots: Istio metrics through Prometheus remote write, traces through OTLP,
a revoked and a live token, a cluster with a rolled-out mesh-config revision that touched
``reviews``, and Istio's 5xx alert rule evaluated (firing)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import requests
from django.test import Client
from django.utils import timezone

from backend.meshconfig import services as meshconfig
from backend.meshconfig.models import Revision
from backend.metrics.storage import blocks
from backend.pipeline.drain import org_drain
from backend.rules import services as rules
from backend.rules.models import AlertingConfig, RuleGroup
from backend.rules.rulefile import groups_parse
from backend.tenancy.services import org_create, token_create, token_revoke, user_get_or_create
from backend.tracing import dependencies
from bench import istio_payloads as ip
from tests.e2e.test_mesh import requests_series
from tests.e2e.test_traces_pages import CHECKOUT_TRACE, MINUTE_NS, products_trace, send
from tests.e2e.test_traces_pages import checkout_trace as _checkout

PASSWORD = "e2e-password-1234"

REVIEWS_VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {
        "hosts": ["reviews"],
        "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}],
    },
}
REVIEWS_DR = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"host": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]},
}
RATINGS_VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "ratings", "namespace": "bookinfo"},
    "spec": {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings"}}]}]},
}
RULES = """groups:
- name: istio
  rules:
  - alert: IstioHigh5xxRate
    expr: |
      sum by (destination_service_name)
          (rate(istio_requests_total{reporter="source",response_code=~"5.."}[5m]))
        / sum by (destination_service_name)
          (rate(istio_requests_total{reporter="source"}[5m])) > 0.05
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.destination_service_name }}: {{ $value | humanizePercentage }} 5xx'
"""


@dataclass
class Demo:
    org: object
    user: object
    trace_id: str
    revisions: dict  # message -> number


def publish(org, user, resources, message: str, minutes_ago: int, force=False) -> int:
    """Publish (refused if invalid, unless ``force``) and date it ``minutes_ago``."""
    rev = meshconfig.revision_publish(
        org=org, resources=resources, message=message, actor=user, force=force
    ).revision
    Revision.objects.for_org(org).filter(pk=rev.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return rev.number


def istio_series(reporter: str, src: str, dst: str, code: str) -> tuple:
    """test_mesh's label set, with the service FQDN and versions Istio adds (mesh-config
    validation knows services and subsets from them)."""
    labels = dict(requests_series(reporter, src, dst, code))
    app = dst.rsplit("-", 1)[0]
    labels["destination_service"] = f"{app}.bookinfo.svc.cluster.local"
    labels["destination_version"] = dst.rsplit("-", 1)[1]
    if src != "unknown":
        labels["source_version"] = src.rsplit("-", 1)[1]
    return tuple(sorted(labels.items()))


def mesh_metrics(base_url: str, org) -> None:
    """Forty minutes of 15 s scrapes, as an Istio mesh's Prometheus remote-writes them."""
    _, secret = token_create(org=org, name="prometheus", scopes=["metrics:write"])
    now = blocks.now_ms() // 15_000 * 15_000
    stamps = list(range(now - 2_400_000, now + 1, 15_000))
    series = {
        istio_series("source", "productpage-v1", "reviews-v2", "200"): 7.0,
        istio_series("source", "productpage-v1", "reviews-v2", "503"): 1.0,
        istio_series("destination", "productpage-v1", "reviews-v2", "200"): 7.0,
        istio_series("destination", "productpage-v1", "reviews-v2", "503"): 1.0,
        istio_series("source", "reviews-v2", "ratings-v1", "200"): 4.0,
        istio_series("destination", "reviews-v2", "ratings-v1", "200"): 4.0,
        istio_series("destination", "unknown", "productpage-v1", "200"): 2.0,
    }
    values = [[per_s * (t - stamps[0]) / 1000 for t in stamps] for per_s in series.values()]
    body = ip.compress(ip.encode_write_request(list(series), stamps, values))
    response = requests.post(
        f"{base_url}/api/v1/push",
        data=body,
        timeout=10,
        headers={**ip.REMOTE_WRITE_HEADERS, "Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 204, response.text
    org_drain(signal="metrics", org_id=org.pk)


def traces(org) -> None:
    _, token = token_create(org=org, name="otel", scopes=["traces:write"])
    client = Client()
    now = time.time_ns()
    send(client, token, CHECKOUT_TRACE, now - 6 * MINUTE_NS, _checkout())
    for i, duration in enumerate([12, 25, 40]):
        send(client, token, f"{i + 1:032x}", now - (8 - i) * MINUTE_NS, products_trace(i, duration))
    org_drain(signal="traces", org_id=org.pk)
    dependencies.rollup_due()


def demo_org(base_url: str) -> Demo:
    user = user_get_or_create(username="ada", password=PASSWORD)
    org = org_create(slug="acme", name="Acme Mesh", owner=user)
    mesh_metrics(base_url, org)
    traces(org)
    old, _ = token_create(org=org, name="old laptop", scopes=["metrics:read"])
    token_revoke(token=old, actor=user)
    token_create(org=org, name="grafana", scopes=["metrics:read", "traces:read"])
    meshconfig.cluster_create(org=org, name="prod-eu", labels={"env": "prod"}, actor=user)
    revisions = {
        "ratings: plain route": publish(org, user, [RATINGS_VS], "ratings: plain route", 50),
        "reviews: route to v2": publish(
            org, user, [RATINGS_VS, REVIEWS_VS, REVIEWS_DR], "reviews: route to v2", 20
        ),
    }
    meshconfig.rollout_create(
        org=org, revision=revisions["reviews: route to v2"], clusters=["prod-eu"], actor=user
    )
    AlertingConfig.objects.for_org(org).get_or_create(org=org)
    rules.namespace_replace(org_id=org.pk, namespace="istio.yml", groups=groups_parse(RULES))
    group = RuleGroup.objects.for_org(org).get()
    rules.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=int(time.time() * 1000))
    return Demo(org=org, user=user, trace_id=CHECKOUT_TRACE, revisions=revisions)


def log_in(page, base_url: str, username: str = "ada") -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


# Every main page, with what to wait for once its scripts have drawn it.
MAIN_PAGES = [
    ("overview", "/", None),
    ("traces-search", "/traces?service=frontend", "#result-body a"),
    ("trace", f"/traces/{CHECKOUT_TRACE}", ".wf-name"),
    ("service-map", "/traces/map", None),
    ("mesh", "/mesh?group=workload", "#mesh-edges tr"),
    ("workload", "/mesh/workload/bookinfo/reviews-v2", "#in-rate .u-over"),
    ("metrics", "/metrics?q=sum%20by%20(response_code)%20(rate(istio_requests_total[5m]))",
     ".panel .u-over"),
    ("usage", "/settings/usage", None),
    ("tokens", "/settings/tokens", None),
    ("members", "/settings/members", None),
    ("config-clusters", "/config", None),
    ("config-editor", "/config/editor", None),
    ("config-revisions", "/config/revisions", None),
    ("config-telemetry", "/config/telemetry", None),
    ("alerts", "/alerts", None),
    ("rules", "/rules", None),
    ("not-found", "/settings/nothing-here", None),
]  # fmt: skip


def visit(page, base_url: str, path: str, ready: str | None) -> None:
    sep = "&" if "?" in path else "?"
    page.goto(f"{base_url}{path}{sep}org=acme")
    page.wait_for_load_state("networkidle")
    if ready:
        page.wait_for_selector(ready, timeout=15_000)
    page.wait_for_timeout(150)  # the last fetch's rendering
