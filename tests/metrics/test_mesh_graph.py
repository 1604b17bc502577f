"""The mesh graph selector over Istio-shaped series in the real store."""

import pytest
from django.db import connection

from backend.metrics.mesh import MeshQueryError, mesh_graph
from backend.metrics.storage import blocks, reader
from tests.metrics.samples import load

pytestmark = pytest.mark.django_db

NOW = blocks.now_ms() // 15_000 * 15_000


def istio(name: str, **labels) -> tuple:
    return (("__name__", name), *sorted(labels.items()))


def ramp(per_second: float, minutes: int = 10) -> list[tuple[int, float]]:
    """A counter growing at ``per_second`` over the last ``minutes``, scraped every 15 s."""
    return [(-ago, per_second * (minutes * 60 - ago)) for ago in range(minutes * 60, -1, -15)]


def call(reporter, src, dst, code="200", mtls="mutual_tls", protocol="http", ns="shop", **extra):
    return istio(
        "istio_requests_total",
        reporter=reporter,
        source_workload=src,
        source_workload_namespace=ns if src != "unknown" else "unknown",
        source_app=src.rsplit("-", 1)[0],
        source_version="v1",
        destination_workload=dst,
        destination_workload_namespace=ns,
        destination_app=dst.rsplit("-", 1)[0],
        destination_version="v1",
        destination_service_name=dst.rsplit("-", 1)[0],
        destination_service_namespace=ns,
        response_code=code,
        request_protocol=protocol,
        connection_security_policy=mtls if reporter == "destination" else "unknown",
        **extra,
    )


def bucket(reporter, src, dst, le, ns="shop"):
    labels = dict(call(reporter, src, dst, ns=ns)[1:])
    for drop in ("response_code", "request_protocol", "connection_security_policy"):
        labels.pop(drop)
    return istio("istio_request_duration_milliseconds_bucket", le=le, **labels)


@pytest.fixture
def mesh(tenants):
    load(
        tenants.org,
        {
            # frontend -> cart: both proxies report; source wins (10/s, 10% 5xx)
            call("source", "frontend-v1", "cart-v1"): ramp(9),
            call("source", "frontend-v1", "cart-v1", code="503"): ramp(1),
            call("destination", "frontend-v1", "cart-v1"): ramp(8.5),
            call("destination", "frontend-v1", "cart-v1", code="503"): ramp(1),
            # an uninstrumented caller: only the destination reports
            call("destination", "unknown", "frontend-v1", mtls="none"): ramp(4),
            bucket("source", "frontend-v1", "cart-v1", "50"): ramp(5),
            bucket("source", "frontend-v1", "cart-v1", "100"): ramp(9),
            bucket("source", "frontend-v1", "cart-v1", "+Inf"): ramp(10),
        },
        base_ms=NOW,
    )
    load(tenants.other_org, {call("source", "vault-v1", "secrets-v1"): ramp(3)}, base_ms=NOW)
    return tenants


def test_edges_nodes_reporter_mtls_and_latency(mesh):
    graph = mesh_graph(org_id=mesh.org.pk, grouping="workload", window="5m", time_ms=NOW)
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert set(edges) == {
        ("wl:shop/frontend-v1", "wl:shop/cart-v1"),
        ("unknown", "wl:shop/frontend-v1"),
    }
    cart = edges[("wl:shop/frontend-v1", "wl:shop/cart-v1")]
    assert cart["reporter"] == "source"
    assert cart["rps"] == pytest.approx(10, rel=0.02)
    assert cart["errorPct"] == pytest.approx(10, abs=0.1)
    assert cart["mtlsPct"] == 100.0
    assert 50 < cart["p95Ms"] <= 100
    ext = edges[("unknown", "wl:shop/frontend-v1")]
    assert ext["reporter"] == "destination"
    assert ext["rps"] == pytest.approx(4, rel=0.02)
    assert ext["mtlsPct"] == 0.0
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["wl:shop/cart-v1"]["health"] == "failing"
    assert nodes["wl:shop/frontend-v1"]["health"] == "healthy"
    assert nodes["unknown"]["kind"] == "unknown"
    # another org's traffic never shows
    assert not any("vault" in n for n in nodes)


def test_grouping_by_namespace_folds_workloads(mesh):
    graph = mesh_graph(org_id=mesh.org.pk, grouping="namespace", window="5m", time_ms=NOW)
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {
        ("ns:shop", "ns:shop"),
        ("unknown", "ns:shop"),
    }


def test_bad_parameters_are_refused(mesh):
    with pytest.raises(MeshQueryError):
        mesh_graph(org_id=mesh.org.pk, grouping="pod", window="5m", time_ms=NOW)
    with pytest.raises(MeshQueryError):
        mesh_graph(org_id=mesh.org.pk, grouping="app", window="2d", time_ms=NOW)


def test_an_org_without_istio_metrics_gets_an_empty_graph(tenants):
    graph = mesh_graph(org_id=tenants.org.pk, grouping="app", window="5m", time_ms=NOW)
    assert graph["nodes"] == [] and graph["edges"] == []


def test_latency_comes_from_the_reporter_the_edge_figures_come_from(tenants):
    """The graph reads the destination proxies' histograms only for the edges no source proxy
    reported; the answers are those of reading every histogram: the source's p95 where it
    reported, the destination's elsewhere (also on an edge only a histogram shows)."""
    load(
        tenants.org,
        {
            call("source", "frontend-v1", "cart-v1"): ramp(10),
            call("destination", "frontend-v1", "cart-v1"): ramp(10),
            call("destination", "unknown", "frontend-v1", mtls="none"): ramp(4),
            # the source says 50-100 ms, the destination under 10 ms: the source wins
            bucket("source", "frontend-v1", "cart-v1", "50"): ramp(5),
            bucket("source", "frontend-v1", "cart-v1", "100"): ramp(10),
            bucket("source", "frontend-v1", "cart-v1", "+Inf"): ramp(10),
            bucket("destination", "frontend-v1", "cart-v1", "10"): ramp(10),
            bucket("destination", "frontend-v1", "cart-v1", "+Inf"): ramp(10),
            # only the destination reports these: its p95 (200-400 ms, and 10-25 ms)
            bucket("destination", "unknown", "frontend-v1", "200"): ramp(1),
            bucket("destination", "unknown", "frontend-v1", "400"): ramp(4),
            bucket("destination", "unknown", "frontend-v1", "+Inf"): ramp(4),
            bucket("destination", "unknown", "pay.v1", "10"): ramp(1),
            bucket("destination", "unknown", "pay.v1", "25"): ramp(2),
            bucket("destination", "unknown", "pay.v1", "+Inf"): ramp(2),
            # a workload whose name the escaped "pay.v1" must not match
            bucket("destination", "unknown", "payXv1", "1000"): ramp(2),
            bucket("destination", "unknown", "payXv1", "+Inf"): ramp(2),
            call("source", "gateway-v1", "payXv1"): ramp(2),
        },
        base_ms=NOW,
    )
    graph = mesh_graph(org_id=tenants.org.pk, grouping="workload", window="5m", time_ms=NOW)
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert 50 < edges[("wl:shop/frontend-v1", "wl:shop/cart-v1")]["p95Ms"] <= 100
    ext = edges[("unknown", "wl:shop/frontend-v1")]
    assert ext["reporter"] == "destination" and 200 < ext["p95Ms"] <= 400
    pay = edges[("unknown", "wl:shop/pay.v1")]
    assert pay["reporter"] == "destination" and pay["rps"] == 0 and 10 < pay["p95Ms"] <= 25
    # Its destination histogram never lends a p95 to the source-reported edge of payXv1,
    # and its own edge from unknown gets the destination's quantile.
    assert edges[("wl:shop/gateway-v1", "wl:shop/payXv1")]["p95Ms"] is None
    assert 400 < edges[("unknown", "wl:shop/payXv1")]["p95Ms"] <= 1000
    # Only the histograms of the destinations of those edges were read.
    assert 'destination_workload=~"frontend-v1|pay\\\\.v1|payXv1"' in graph["queries"][-1]


def test_the_graph_reads_in_one_scope(tenants):
    """The five queries share one reading scope: one transaction, the block headers of a
    (metric, range) fetched once (the latency histograms are read twice: source side, then the
    destination side's rows)."""
    load(
        tenants.org,
        {
            call("source", "frontend-v1", "cart-v1"): ramp(9),
            bucket("source", "frontend-v1", "cart-v1", "+Inf"): ramp(9),
            bucket("destination", "frontend-v1", "cart-v1", "+Inf"): ramp(9),
        },
        base_ms=NOW,
    )
    fetched = []

    def counting(execute, sql, params, many, context):
        # a headers read, alone or after the series of its metric in the same statement: its
        # parameters are (org, metric names, window start bound, end, start, end), the names
        # the only list of strings among the statement's parameters (the blocks' columns are
        # read by id, then)
        if "FROM metric_blocks" in str(sql) and "n_samples" in str(sql):
            i = next(
                i
                for i, p in enumerate(params)
                if isinstance(p, list) and p and all(isinstance(x, str) for x in p)
            )
            fetched.append((tuple(params[i]), params[i + 3], params[i + 4]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counting):
        graph = mesh_graph(org_id=tenants.org.pk, grouping="workload", window="5m", time_ms=NOW)
    assert ("wl:shop/frontend-v1", "wl:shop/cart-v1") in {
        (e["source"], e["target"]) for e in graph["edges"]
    }
    names = [names for names, _, _ in fetched]
    assert ("istio_request_duration_milliseconds_bucket",) in names
    assert len(fetched) == len(set(fetched))


def test_a_reading_scope_inside_another_keeps_the_outer_one(tenants):
    querier = reader.PostgresQuerier(org_id=tenants.org.pk)
    with querier.reading(timeout_seconds=5):
        outer = querier._blocks_seen
        with querier.reading(timeout_seconds=5):
            assert querier._blocks_seen is outer
        assert querier._blocks_seen is outer  # the inner exit leaves the outer scope open
    assert querier._blocks_seen is None
