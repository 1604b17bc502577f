"""Span metrics land in the metrics store and agree with counts computed from the spans."""

from __future__ import annotations

import time

import pytest

from backend.metrics.labels import Matcher
from backend.metrics.selectors import samples_for_series
from backend.metrics.storage.reader import series_match
from backend.pipeline.drain import org_drain
from backend.tracing import dependencies
from backend.tracing.span_metrics import BUCKETS
from tests.helpers.otlp import otlp_request, post_otlp, span

pytestmark = pytest.mark.django_db
MINUTE_NS = 60 * 10**9


def _latest(org, name, **labels):
    org_drain(signal="metrics", org_id=org.pk)
    matchers = [Matcher("__name__", "=", name)] + [Matcher(k, "=", v) for k, v in labels.items()]
    series = series_match(org_id=org.pk, matchers=matchers)
    data = samples_for_series(org_id=org.pk, series=series, start_ms=0, end_ms=2**62)
    return {tuple(sorted(series[sid].items())): values[-1] for sid, (_, values) in data.items()}


def test_span_metrics_and_service_graph(client, tenants):
    token = tenants.token(["traces:write"])
    minute = (time.time_ns() - 10 * MINUTE_NS) // MINUTE_NS * MINUTE_NS
    # minute 1: three GET /cart (1 ms, 3 ms, 3 s; the slow one an error) and one SELECT
    # child in another service; minute 2: one more GET /cart.
    durations = [(1, 0), (3, 0), (3000, 2)]
    for i, (ms, status) in enumerate(durations):
        root = span(f"eee19b7ec3c1b1{i:02x}", name="GET /cart", start=minute + i, status=status)
        root.trace_id = bytes([i + 1]) * 16
        root.end_time_unix_nano = root.start_time_unix_nano + ms * 10**6
        post_otlp(client, otlp_request([root], service="cart").SerializeToString(), token)
    child = span("aaa19b7ec3c1b100", "eee19b7ec3c1b100", name="SELECT", start=minute + 10)
    child.trace_id = bytes([1]) * 16
    post_otlp(client, otlp_request([child], service="db").SerializeToString(), token)
    later = span("eee19b7ec3c1b1ff", name="GET /cart", start=minute + MINUTE_NS + 5)
    later.trace_id = b"\x09" * 16
    post_otlp(client, otlp_request([later], service="cart").SerializeToString(), token)
    other = span("eee19b7ec3c1b1aa", name="GET /cart", start=minute)
    post_otlp(
        client,
        otlp_request([other], service="cart").SerializeToString(),
        tenants.outsider_token(["traces:write"]),
    )
    org_drain(signal="traces", org_id=tenants.org.pk)
    org_drain(signal="traces", org_id=tenants.other_org.pk)

    dependencies.rollup_due(now_ms=minute // 10**6 + 5 * 60_000)

    ok = {"service": "cart", "status_code": "STATUS_CODE_UNSET"}
    ((labels, total),) = _latest(tenants.org, "traces_spanmetrics_calls_total", **ok).items()
    assert dict(labels)["span_name"] == "GET /cart"
    assert dict(labels)["span_kind"] == "SPAN_KIND_SERVER"
    assert total == 3  # 1 ms and 3 ms in minute 1, 5 ms in minute 2: cumulative
    errors = _latest(tenants.org, "traces_spanmetrics_calls_total", status_code="STATUS_CODE_ERROR")
    assert list(errors.values()) == [1]
    buckets = _latest(tenants.org, "traces_spanmetrics_latency_bucket", **ok)
    by_le = {dict(k)["le"]: v for k, v in buckets.items()}
    assert by_le["0.002"] == 1 and by_le["0.004"] == 2 and by_le["0.008"] == 3
    assert by_le["+Inf"] == 3 and len(by_le) == len(BUCKETS) + 1
    (seconds,) = _latest(tenants.org, "traces_spanmetrics_latency_sum", **ok).values()
    assert seconds == pytest.approx(0.009)
    graph = _latest(tenants.org, "traces_service_graph_request_total")
    assert {(dict(k)["client"], dict(k)["server"]): v for k, v in graph.items()} == {
        ("cart", "db"): 1
    }
    # each org its own: the outsider's single call, none of acme's
    outsider = _latest(tenants.other_org, "traces_spanmetrics_calls_total", service="cart")
    assert list(outsider.values()) == [1]


def test_service_graph_latency_histograms(client, tenants):
    """Each edge carries the called span's latency (server) and the caller's (client)."""
    token = tenants.token(["traces:write"])
    minute = (time.time_ns() - 10 * MINUTE_NS) // MINUTE_NS * MINUTE_NS
    root = span("eee19b7ec3c1b100", name="GET /cart", start=minute)
    root.end_time_unix_nano = root.start_time_unix_nano + 30 * 10**6  # 30 ms
    child = span("aaa19b7ec3c1b100", "eee19b7ec3c1b100", name="SELECT", start=minute + 10)
    child.end_time_unix_nano = child.start_time_unix_nano + 5 * 10**6  # 5 ms
    for s, service in ((root, "cart"), (child, "db")):
        s.trace_id = b"\x07" * 16
        post_otlp(client, otlp_request([s], service=service).SerializeToString(), token)
    org_drain(signal="traces", org_id=tenants.org.pk)
    dependencies.rollup_due(now_ms=minute // 10**6 + 5 * 60_000)

    def by_le(name):
        found = _latest(tenants.org, name, client="cart", server="db")
        return {dict(k)["le"]: v for k, v in found.items()}

    server = by_le("traces_service_graph_request_server_seconds_bucket")
    client_side = by_le("traces_service_graph_request_client_seconds_bucket")
    assert (server["0.004"], server["0.008"], server["+Inf"]) == (0, 1, 1)
    assert (client_side["0.016"], client_side["0.032"], client_side["+Inf"]) == (0, 1, 1)
    assert len(server) == len(client_side) == len(BUCKETS) + 1
    sums = {
        side: _latest(tenants.org, f"traces_service_graph_request_{side}_seconds_sum")
        for side in ("server", "client")
    }
    assert list(sums["server"].values()) == [pytest.approx(0.005)]
    assert list(sums["client"].values()) == [pytest.approx(0.030)]
