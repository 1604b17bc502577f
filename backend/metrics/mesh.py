"""The mesh graph: workloads and the traffic between them, read from Istio's standard metrics
(every request, not sampled spans) with the PromQL engine over the org's store.

Edges come from ``istio_requests_total`` (HTTP and gRPC) and ``istio_tcp_sent_bytes_total`` /
``istio_tcp_received_bytes_total`` (TCP), latency from
``istio_request_duration_milliseconds_bucket``. Both proxies of a call report it; like Kiali,
an edge's figures come from the **source** proxy's report, and from the destination's only
where no source proxy reported (a caller outside the mesh or without a sidecar: its
``source_workload`` is ``unknown``, or the workload is not injected). mTLS is only known to the
destination proxy (``connection_security_policy``), so it is always read from its reports.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass

from backend.metrics import promql
from backend.metrics.storage.reader import PostgresQuerier
from backend.tenancy.selectors import limits_get

GROUPINGS = ("workload", "app", "version", "namespace")
# The windows the page offers (label -> seconds); rate() runs over the whole window.
WINDOWS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600}
DEFAULT_WINDOW = "5m"
# Node health from its inbound error ratio (Kiali's default tolerance shape: degraded, failing).
DEGRADED_PCT = 1.0
FAILING_PCT = 10.0
UNKNOWN = "unknown"
_GATEWAYS = {"istio-ingressgateway": "ingress", "istio-egressgateway": "egress"}
_EXTERNAL_SERVICES = {"PassthroughCluster", "BlackHoleCluster"}

# The labels each grouping keeps of a side (source_/destination_ prefixed).
_SIDE_LABELS = {
    "workload": ("workload", "workload_namespace", "app"),
    "app": ("workload", "workload_namespace", "app"),
    "version": ("workload", "workload_namespace", "app", "version"),
    "namespace": ("workload", "workload_namespace"),
}
# RE2 metacharacters, escaped as Go's regexp.QuoteMeta does.
_META = re.compile(r"[\\.+*?()|\[\]{}^$]")
_DEST_SERVICE = ("destination_service_name", "destination_service_namespace")


class MeshQueryError(ValueError):
    """A parameter out of range (the view answers 400 with the message)."""


@dataclass(frozen=True, slots=True)
class NodeKey:
    id: str
    label: str
    namespace: str
    kind: str  # workload | app | version | namespace | service | unknown | ingress | egress


def _by(labels: tuple[str, ...]) -> str:
    return ", ".join(labels)


def _side_labels(grouping: str) -> tuple[str, ...]:
    side = _SIDE_LABELS[grouping]
    return (
        "reporter",
        *(f"source_{n}" for n in side),
        *(f"destination_{n}" for n in side),
        *_DEST_SERVICE,
    )


def _node(labels: dict[str, str], side: str, grouping: str) -> NodeKey:
    workload = labels.get(f"{side}_workload") or UNKNOWN
    namespace = labels.get(f"{side}_workload_namespace") or ""
    app = labels.get(f"{side}_app") or ""
    if side == "source" and workload == UNKNOWN:
        return NodeKey("unknown", "unknown", "", "unknown")
    if side == "destination" and workload == UNKNOWN:
        # No sidecar answered: a service outside the mesh (or not injected) — a service node.
        name = labels.get("destination_service_name") or UNKNOWN
        ns = labels.get("destination_service_namespace") or ""
        kind = "egress" if name in _EXTERNAL_SERVICES or not ns or ns == UNKNOWN else "service"
        return NodeKey(f"svc:{ns}/{name}", name, ns, kind)
    gateway = _GATEWAYS.get(app) or next(
        (kind for prefix, kind in _GATEWAYS.items() if workload.startswith(prefix)), None
    )
    if gateway:
        return NodeKey(f"{gateway}:{namespace}/{workload}", workload, namespace, gateway)
    if grouping == "namespace":
        return NodeKey(f"ns:{namespace}", namespace, namespace, "namespace")
    if grouping == "workload":
        return NodeKey(f"wl:{namespace}/{workload}", workload, namespace, "workload")
    app = app or workload
    if grouping == "app":
        return NodeKey(f"app:{namespace}/{app}", app, namespace, "app")
    version = labels.get(f"{side}_version") or ""
    label = f"{app} {version}".strip()
    return NodeKey(f"ver:{namespace}/{app}/{version}", label, namespace, "version")


def _is_error(labels: dict[str, str]) -> bool:
    code = labels.get("response_code", "")
    if code.startswith("5"):
        return True
    grpc = labels.get("grpc_response_status", "")
    return labels.get("request_protocol") == "grpc" and grpc not in ("", "0")


def _run(querier, query: str, time_ms: int, limits) -> list[tuple[dict, float]]:
    answer = promql.instant_query(querier=querier, query=query, time_ms=time_ms, limits=limits)
    return [(row["metric"], float(row["value"][1])) for row in answer["result"]]


def _source_reported(labels: dict) -> bool:
    # The fold below files a row without a reporter label as the source's.
    return labels.get("reporter", "source") == "source"


def _destination_latency(querier, grouping, by, window, time_ms, limits, requests, latency, tcp):
    """The destination proxies' p95 rows for the edges no source proxy reported (the only
    ones where the fold uses them), and the queries run for them.

    A cheap query first lists the destination histograms' rows (their ``+Inf`` bucket alone;
    a row without it has no quantile); only if some row is on an edge without a source
    report are the histograms of those rows' destination workloads read, whole.
    """

    def edge_key(labels: dict) -> tuple[str, str]:
        return (_node(labels, "source", grouping).id, _node(labels, "destination", grouping).id)

    reported = {edge_key(labels) for labels, _ in (*requests, *tcp) if _source_reported(labels)}
    reported |= {
        edge_key(labels) for labels, p95 in latency if p95 == p95 and _source_reported(labels)
    }
    queries = {
        "latency_destination_rows": f"count by ({_by(by)}) (last_over_time("
        'istio_request_duration_milliseconds_bucket{reporter="destination",le="+Inf"}'
        f"[{window}]))"
    }
    rows = _run(querier, queries["latency_destination_rows"], time_ms, limits)
    workloads = sorted(
        {
            labels.get("destination_workload", "")
            for labels, _ in rows
            if edge_key(labels) not in reported
        }
    )
    if not workloads:
        return [], queries
    alternatives = "|".join(_META.sub(r"\\\g<0>", w) for w in workloads)
    quoted = json.dumps(alternatives, ensure_ascii=False)  # a PromQL string literal
    selector = f'reporter="destination",destination_workload=~{quoted}'
    queries["latency_destination"] = (
        f"histogram_quantile(0.95, sum by (le, {_by(by)}) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{selector}}}[{window}])))"
    )
    found = _run(querier, queries["latency_destination"], time_ms, limits)
    return [(labels, p95) for labels, p95 in found if edge_key(labels) not in reported], queries


def _empty_edge() -> dict:
    return {
        "reporter": "",
        "protocol": "http",
        "rps": 0.0,
        "errorRps": 0.0,
        "p95Ms": None,
        "mtlsRps": 0.0,
        "tcpBytesPerSecond": 0.0,
    }


def mesh_graph(*, org_id: int, grouping: str, window: str, time_ms: int) -> dict:
    """``{"nodes": [...], "edges": [...], "window": ..., "grouping": ..., "time": ...}``
    for the org's Istio metrics over the ``window`` that ends at ``time_ms``."""
    if grouping not in GROUPINGS:
        raise MeshQueryError(f"group must be one of {', '.join(GROUPINGS)}")
    if window not in WINDOWS:
        raise MeshQueryError(f"window must be one of {', '.join(WINDOWS)}")
    limits_row = limits_get(org_id=org_id)
    limits = promql.QueryLimits(
        max_series=limits_row.query_max_series,
        max_samples=limits_row.query_max_samples,
        timeout_seconds=float(limits_row.query_timeout_seconds),
    )
    querier = PostgresQuerier(org_id=org_id)
    by = _side_labels(grouping)
    request_by = _by(
        (*by, "response_code", "grpc_response_status", "request_protocol",
         "connection_security_policy")
    )  # fmt: skip
    latency_query = (
        "histogram_quantile(0.95, sum by (le, {by}) "
        "(rate(istio_request_duration_milliseconds_bucket{{{sel}}}[{window}])))"
    )
    queries = {
        "requests": f"sum by ({request_by}) (rate(istio_requests_total[{window}]))",
        # An edge's latency counts only from the reporter its figures come from: every report
        # but the destination proxies' first (about half the histogram series), theirs only
        # for the edges no source proxy reported (see below).
        "latency": latency_query.format(by=_by(by), sel='reporter!="destination"', window=window),
        "tcp_sent": f"sum by ({_by(by)}) (rate(istio_tcp_sent_bytes_total[{window}]))",
        "tcp_received": f"sum by ({_by(by)}) (rate(istio_tcp_received_bytes_total[{window}]))",
    }
    # One reading scope for all the queries: one read-only transaction (one snapshot of the
    # store, one round trip to open it) bounded by the org's timeout, and the blocks of a
    # (metric, range) read once (the latency histograms' two reads).
    with querier.reading(timeout_seconds=limits.timeout_seconds):
        requests = _run(querier, queries["requests"], time_ms, limits)
        latency = _run(querier, queries["latency"], time_ms, limits)
        tcp = _run(querier, queries["tcp_sent"], time_ms, limits)
        tcp += _run(querier, queries["tcp_received"], time_ms, limits)
        destination_latency, more = _destination_latency(
            querier, grouping, by, window, time_ms, limits, requests, latency, tcp
        )
    latency += destination_latency
    queries.update(more)

    nodes: dict[str, NodeKey] = {}
    # (source id, destination id) -> reporter -> figures
    reported: dict[tuple[str, str], dict[str, dict]] = defaultdict(lambda: defaultdict(_empty_edge))

    def edge_of(labels: dict) -> dict:
        src, dst = _node(labels, "source", grouping), _node(labels, "destination", grouping)
        nodes.setdefault(src.id, src)
        nodes.setdefault(dst.id, dst)
        return reported[(src.id, dst.id)][labels.get("reporter", "source")]

    for labels, rate in requests:
        edge = edge_of(labels)
        edge["rps"] += rate
        if _is_error(labels):
            edge["errorRps"] += rate
        if labels.get("request_protocol") == "grpc":
            edge["protocol"] = "grpc"
        if labels.get("connection_security_policy") == "mutual_tls":
            edge["mtlsRps"] += rate
    for labels, p95 in latency:
        if p95 == p95:  # NaN where no request was observed
            edge_of(labels)["p95Ms"] = p95
    for labels, rate in tcp:
        edge = edge_of(labels)
        edge["tcpBytesPerSecond"] += rate
        if not edge["rps"]:
            edge["protocol"] = "tcp"

    edges = []
    for (src, dst), by_reporter in sorted(reported.items()):
        reporter = "source" if "source" in by_reporter else "destination"
        edge = dict(by_reporter[reporter])
        edge["reporter"] = reporter
        dest_report = by_reporter.get("destination")
        # mTLS: only the destination proxy knows; over the requests it reported.
        edge["mtlsPct"] = (
            round(100 * dest_report["mtlsRps"] / dest_report["rps"], 1)
            if dest_report and dest_report["rps"]
            else None
        )
        del edge["mtlsRps"]
        edge["errorPct"] = round(100 * edge["errorRps"] / edge["rps"], 2) if edge["rps"] else 0.0
        edge.update(id=f"{src}->{dst}", source=src, target=dst)
        edges.append(edge)

    inbound: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    outbound: dict[str, float] = defaultdict(float)
    for edge in edges:
        inbound[edge["target"]][0] += edge["rps"]
        inbound[edge["target"]][1] += edge["errorRps"]
        outbound[edge["source"]] += edge["rps"]
    out_nodes = []
    for key in sorted(nodes.values(), key=lambda n: n.id):
        rps, errors = inbound.get(key.id, (0.0, 0.0))
        error_pct = 100 * errors / rps if rps else 0.0
        if not rps and not outbound.get(key.id):
            health = "idle"
        elif error_pct >= FAILING_PCT:
            health = "failing"
        elif error_pct >= DEGRADED_PCT:
            health = "degraded"
        else:
            health = "healthy"
        out_nodes.append(
            {
                "id": key.id,
                "label": key.label,
                "namespace": key.namespace,
                "kind": key.kind,
                "inRps": rps,
                "outRps": outbound.get(key.id, 0.0),
                "errorPct": round(error_pct, 2),
                "health": health,
            }
        )
    return {
        "nodes": out_nodes,
        "edges": edges,
        "grouping": grouping,
        "window": window,
        "time": time_ms / 1000,
        "thresholds": {"degradedPct": DEGRADED_PCT, "failingPct": FAILING_PCT},
        "queries": list(queries.values()),
    }
