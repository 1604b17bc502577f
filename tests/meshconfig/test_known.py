"""What validation knows of a tenant's mesh comes from its Istio metrics and trace names, and
one tenant's services never make another's hosts valid."""

from __future__ import annotations

import pytest

from backend.meshconfig.selectors import known_for_org
from backend.meshconfig.validation import validate_bundle
from backend.metrics.storage.catalog import series_resolve
from backend.tracing.models import TraceService

pytestmark = pytest.mark.django_db


def _istio_series(org, *rows):
    label_sets = []
    for src, dst, service, version in rows:
        labels = {
            "__name__": "istio_requests_total",
            "source_workload": src,
            "source_workload_namespace": "bookinfo",
            "source_app": src.split("-")[0],
            "destination_workload": dst,
            "destination_workload_namespace": "bookinfo",
            "destination_app": dst.split("-")[0],
            "destination_version": version,
            "destination_service": service,
            "response_code": "200",
        }
        label_sets.append(tuple(sorted(labels.items())))
    series_resolve(org_id=org.pk, label_sets=label_sets, max_per_user=100, max_per_metric=100)


def test_known_from_istio_metrics_and_traces(tenants):
    _istio_series(
        tenants.org,
        ("productpage-v1", "reviews-v1", "reviews.bookinfo.svc.cluster.local", "v1"),
        ("productpage-v1", "reviews-v2", "reviews.bookinfo.svc.cluster.local", "v2"),
    )
    TraceService.objects.for_org(tenants.org).create(org=tenants.org, name="ratings.bookinfo")
    known = known_for_org(org=tenants.org)
    assert known.services == {
        "reviews.bookinfo.svc.cluster.local",
        "ratings.bookinfo.svc.cluster.local",
    }
    assert "bookinfo" in known.namespaces
    by_name = {w.name: w for w in known.workloads}
    assert by_name["reviews-v2"].labels == {"app": "reviews", "version": "v2"}
    assert by_name["reviews-v2"].services == {"reviews.bookinfo.svc.cluster.local"}
    assert by_name["productpage-v1"].labels == {"app": "productpage"}

    def route(host, subset="v1"):
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": host, "namespace": "bookinfo"},
            "spec": {
                "hosts": [host],
                "http": [{"route": [{"destination": {"host": host, "subset": subset}}]}],
            },
        }

    def rule(host, version):
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": host, "namespace": "bookinfo"},
            "spec": {"host": host, "subsets": [{"name": "v1", "labels": {"version": version}}]},
        }

    ok = validate_bundle(
        [route("reviews"), rule("reviews", "v1"), route("ratings")], org=tenants.org
    )
    assert {f.code for f in ok.findings} == {"KIA1107"}  # ratings has no DestinationRule
    bad = validate_bundle(
        [route("details"), rule("reviews", "v9"), route("reviews")], org=tenants.org
    )
    got = {(f.code, f.name, f.path) for f in bad.findings}
    assert ("KIA1101", "details", "spec/http[0]/route[0]/destination/host") in got
    assert ("KIA0203", "reviews", "spec/subsets[0]") in got
    # Another tenant knows none of it: its registry is empty, so host checks only warn.
    other = validate_bundle([route("reviews"), rule("reviews", "v1")], org=tenants.other_org)
    assert {(f.code, f.severity) for f in other.findings} == {
        ("KIA1101", "warning"),
        ("KIA0202", "warning"),
    }
