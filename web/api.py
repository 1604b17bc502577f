"""JSON the dashboard's pages read that the public query APIs do not carry.

The service map needs each edge's error count, which Jaeger's ``/api/dependencies`` model has
no field for. This endpoint reads the same per-minute rollups, with the same authentication,
scope and org resolution as the Jaeger API (a session works with ``?org=<slug>``; another org
answers 404).
"""

from __future__ import annotations

import time

from django.db import transaction
from rest_framework import exceptions
from rest_framework.response import Response

from backend.metrics import promql
from backend.metrics.mesh import DEFAULT_WINDOW, MeshQueryError
from backend.metrics.mesh_cache import mesh_graph_cached
from backend.tenancy.api_base import OrgAPIView
from backend.tenancy.models import Scope
from backend.tenancy.selectors import limits_get
from backend.tracing import dependencies
from backend.tracing.api.base import ReadTimedOut, bounded_reading
from backend.tracing.selectors import service_span_counts

DEFAULT_LOOKBACK_MS = 3600 * 1000
MAX_LOOKBACK_MS = 30 * 24 * 3600 * 1000


def _ms_param(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise exceptions.ValidationError({name: "milliseconds, as an integer"}) from exc
    if value <= 0:
        raise exceptions.ValidationError({name: "must be positive"})
    return value


class ServiceGraphView(OrgAPIView):
    """``GET ?endTs=<ms>&lookback=<ms>`` → ``{"data": [{parent, child, callCount,
    errorCount}]}`` summed over the minutes in the window."""

    scopes = {"GET": [Scope.TRACES_READ]}

    def get(self, request):
        params = request.query_params
        end_ms = _ms_param(params, "endTs", time.time_ns() // 10**6)
        lookback = min(_ms_param(params, "lookback", DEFAULT_LOOKBACK_MS), MAX_LOOKBACK_MS)
        edges = dependencies.dependencies_get(
            org_id=self.org.pk, start_ms=end_ms - lookback, end_ms=end_ms
        )
        return Response({"data": edges, "endTs": end_ms, "lookback": lookback})


class MeshGraphView(OrgAPIView):
    """``GET ?group=workload|app|version|namespace&window=5m[&time=<unix s>]`` → the mesh
    graph from the org's Istio metrics: ``{nodes, edges, grouping, window, time}``."""

    scopes = {"GET": [Scope.METRICS_READ]}

    def get(self, request):
        params = request.query_params
        raw_time = params.get("time")
        try:
            time_ms = int(float(raw_time) * 1000) if raw_time else None
        except (ValueError, OverflowError) as exc:
            raise exceptions.ValidationError({"time": "Unix seconds"}) from exc
        try:
            graph = mesh_graph_cached(
                org_id=self.org.pk,
                grouping=params.get("group", "app"),
                window=params.get("window", DEFAULT_WINDOW),
                time_ms=time_ms,
            )
        except MeshQueryError as exc:
            raise exceptions.ValidationError({"detail": str(exc)}) from exc
        except promql.PromQLError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return Response(graph)


# The trace search's lookbacks (label -> seconds), the only windows the activity answers for.
ACTIVITY_LOOKBACKS = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
ACTIVITY_TOP = 10


class ServiceActivityView(OrgAPIView):
    """``GET ?lookback=15m|1h|6h|24h|7d`` → ``{"data": [{service, spans}], "lookback"}``: the
    org's busiest services by spans starting in the lookback (at most 10), most first. The
    trace search picks the first when no service is chosen. Reads run under the org's query
    timeout."""

    scopes = {"GET": [Scope.TRACES_READ]}

    def get(self, request):
        lookback = request.query_params.get("lookback", "1h")
        if lookback not in ACTIVITY_LOOKBACKS:
            raise exceptions.ValidationError(
                {"lookback": f"one of {', '.join(ACTIVITY_LOOKBACKS)}"}
            )
        end_ns = time.time_ns()
        timeout = float(limits_get(org_id=self.org.pk).query_timeout_seconds)
        try:
            with bounded_reading(timeout_seconds=timeout):
                top = service_span_counts(
                    org_id=self.org.pk,
                    start_ns=end_ns - ACTIVITY_LOOKBACKS[lookback] * 10**9,
                    end_ns=end_ns,
                    limit=ACTIVITY_TOP,
                )
                transaction.set_rollback(True)  # read only: its settings end with it
        except ReadTimedOut:
            return Response(
                {"detail": f"counting spans took longer than the query timeout ({timeout:g} s)"},
                status=503,
            )
        return Response(
            {"data": [{"service": s, "spans": n} for s, n in top], "lookback": lookback}
        )
