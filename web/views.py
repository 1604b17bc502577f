import re
import time
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView

from backend.metrics import cardinality
from backend.metrics import mesh as mesh_graph
from backend.metrics.selectors import ingest_overview
from backend.tenancy import selectors, services
from backend.tenancy.access import (
    SESSION_ORG_KEY,
    Access,
    OrgNotFound,
    session_access,
    session_org_select,
)
from backend.tenancy.models import ALL_SCOPES, TENANT_LIMIT_FIELDS, Scope
from backend.tenancy.rejections import WINDOW_HOURS as REJECTIONS_WINDOW_HOURS
from backend.tenancy.rejections import rejections_get, rejections_recent
from backend.tenancy.selectors import limits_get
from backend.tracing.api.base import ReadTimedOut, bounded_reading
from backend.tracing.api.params import trace_id_hex
from backend.tracing.selectors import traces_by_prefix, traces_get, traces_overview
from web.overview import OverviewTimedOut, overview_get, overview_unread

# The explorer's time ranges (label -> seconds); the page asks for about 250 points across one.
METRICS_RANGES = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
METRICS_DEFAULT_RANGE = "1h"
METRICS_EXAMPLES = [
    "up",
    "sum(rate(istio_requests_total[5m])) by (destination_service)",
    'sum(rate(istio_requests_total{response_code=~"5.."}[5m])) by (destination_service)',
    "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket[5m]))"
    " by (le, destination_service))",
]


# The Traces pages' lookbacks (label -> seconds).
TRACE_LOOKBACKS = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
TRACE_DEFAULT_LOOKBACK = "1h"
TRACE_ID = re.compile(r"[0-9a-f]{1,32}")
TRACE_LIMIT = re.compile(r"[0-9]{1,4}")
TRACE_DEFAULT_LIMIT = "20"
TRACE_MAX_LIMIT = 1500  # the Jaeger API's cap
# The "go to trace" box takes the short ids the pages show: a prefix of at least this many hex
# digits, looked up among the traces with spans in the last day (most recent first).
TRACE_PREFIX_MIN = 6
TRACE_PREFIX_LOOKBACK_NS = 24 * 3600 * 10**9
TRACE_PREFIX_LOOKBACK_LABEL = "24 h"
TRACE_PREFIX_MATCHES = 20


def _access_or_404(request, *, org_slug: str | None = None) -> Access:
    try:
        access = session_access(request, org_slug=org_slug)
    except OrgNotFound as exc:
        raise Http404(exc.message) from exc
    if access is None:
        raise Http404("You are not a member of any organization yet.")
    return access


def _page_access(request) -> Access:
    """The access a data page shows. A shared link names its org (``?org=<slug>``): follow it
    when the user belongs to it, as the org switcher would; otherwise answer as if the org did
    not exist."""
    return _access_or_404(request, org_slug=request.GET.get("org"))


def _tracing_context(request) -> dict:
    """What the Traces pages tell a new org about sending spans and reading them back."""
    public_url = settings.PUBLIC_URL
    host = urlsplit(public_url).hostname or "127.0.0.1"
    port = settings.OTLP_GRPC_BIND.rpartition(":")[2] or "4317"
    return {
        "public_url": public_url,
        "public_host": host,
        "grpc_endpoint": f"{f'[{host}]' if ':' in host else host}:{port}",
        "grpc_port": port,
        "api_base": reverse("jaeger-services").removesuffix("services"),
        "search_url": reverse("web:traces"),
        "map_url": reverse("web:traces-map"),
        "trace_url": reverse("web:trace", args=["0"]).removesuffix("0"),
    }


def _snippet_context(token: str | None) -> dict:
    """What the onboarding snippets fill in: this Canopy's public address (CANOPY_PUBLIC_URL,
    what a cluster reaches) and the token just created, or a placeholder."""
    public_url = settings.PUBLIC_URL
    return {
        "public_url": public_url,
        "public_host": urlsplit(public_url).hostname or "canopy",
        "grpc_port": settings.OTLP_GRPC_BIND.rpartition(":")[2] or "4317",
        "token": token or "<token>",
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    access = session_access(request)
    context = {"public_url": settings.PUBLIC_URL}
    if access is not None:
        try:
            context["overview"] = overview_get(org=access.org)
        except OverviewTimedOut as exc:
            context["timed_out"] = f"{exc.args[0]:g}"
            context["overview"] = overview_unread()
        context["figures_url"] = reverse("web:overview-figures")
        context["refresh_seconds"] = OVERVIEW_REFRESH_SECONDS
    return render(request, "web/home.html", context)


# How often the Overview page asks for fresh figures (the page can pause it).
OVERVIEW_REFRESH_SECONDS = 15


def overview_figures(request: HttpRequest) -> JsonResponse:
    """The Overview's figures as JSON, for its auto-refresh: the same session and org as the
    page (``?org=<slug>``, else the session's org); another org answers 404 like the pages."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "log in first"}, status=401)
    if request.method != "GET":
        return JsonResponse({"detail": "GET only"}, status=405)
    try:
        access = session_access(request, org_slug=request.GET.get("org") or None)
    except OrgNotFound as exc:
        return JsonResponse({"detail": exc.message}, status=404)
    if access is None:
        return JsonResponse({"detail": "You are not a member of any organization yet."}, status=404)
    try:
        figures = overview_get(org=access.org)
    except OverviewTimedOut as exc:
        response = JsonResponse(
            {
                "detail": f"the figures took longer than the query timeout ({exc.args[0]:g} s); "
                "the page tries again at the next refresh"
            },
            status=503,
        )
        response["Retry-After"] = str(OVERVIEW_REFRESH_SECONDS)
        return response
    response = JsonResponse({"org": access.org.slug, **figures})
    response["Cache-Control"] = "no-store"
    return response


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI with Canopy's header (back to the dashboard, who *Try it out* acts as). The
    page remembers the dashboard's org in the session, so the API calls made from it (with the
    session and its CSRF token) act for the org the header names."""

    template_name = "web/api_docs.html"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        if request.GET.get("script") is None:
            access = session_access(request)
            if access is not None and request.session.get(SESSION_ORG_KEY) != access.org.slug:
                request.session[SESSION_ORG_KEY] = access.org.slug
        return super().get(request, *args, **kwargs)


@login_required
def metrics(request: HttpRequest) -> HttpResponse:
    """The Metrics explorer. The page carries no data of its own: the browser asks the
    Prometheus API (``?org=<slug>``, with the session) for metric names and query results."""
    _page_access(request)
    chosen = request.GET.get("range", METRICS_DEFAULT_RANGE)
    return render(
        request,
        "web/metrics.html",
        {
            "range": chosen if chosen in METRICS_RANGES else METRICS_DEFAULT_RANGE,
            "ranges": METRICS_RANGES,
            "examples": METRICS_EXAMPLES,
            "public_url": settings.PUBLIC_URL,
            "api_base": reverse("prom-query").removesuffix("query"),
            "jaeger_api": reverse("jaeger-services").removesuffix("services"),
            "trace_url": reverse("web:trace", args=["0"]).removesuffix("0"),
        },
    )


@login_required
def traces(request: HttpRequest) -> HttpResponse:
    """Trace search. Like the Metrics explorer the page carries no data of its own: the
    browser asks the Jaeger API (``?org=<slug>``, with the session) for services, operations
    and traces. ``?trace=<id>`` (the "go to trace" box) opens that trace."""
    access = _page_access(request)
    wanted = request.GET.get("trace", "").strip().lower()
    matches = None
    if wanted:
        found = _trace_lookup(request, access, wanted)
        if isinstance(found, HttpResponse):
            return found
        matches = found
    params = request.GET
    lookback = params.get("lookback", TRACE_DEFAULT_LOOKBACK)
    limit = params.get("limit", "")
    if not (TRACE_LIMIT.fullmatch(limit) and 1 <= int(limit) <= TRACE_MAX_LIMIT):
        limit = TRACE_DEFAULT_LIMIT
    return render(
        request,
        "web/traces.html",
        {
            **_tracing_context(request),
            "lookbacks": TRACE_LOOKBACKS,
            "lookback": lookback if lookback in TRACE_LOOKBACKS else TRACE_DEFAULT_LOOKBACK,
            "tags": params.get("tags", ""),
            "min_duration": params.get("minDuration", ""),
            "max_duration": params.get("maxDuration", ""),
            "limit": limit,
            "errors_only": params.get("errorsOnly") == "true",
            "sort_by": "duration" if params.get("sortBy") == "duration" else "start",
            "trace_lookup": wanted,
            "trace_matches": matches,
            "prefix_min": TRACE_PREFIX_MIN,
            "prefix_lookback": TRACE_PREFIX_LOOKBACK_LABEL,
        },
    )


def _trace_redirect(access: Access, trace_id: str) -> HttpResponse:
    url = reverse("web:trace", args=[trace_id])
    return redirect(f"{url}?{urlencode({'org': access.org.slug})}")


def _trace_lookup(request, access: Access, wanted: str) -> HttpResponse | dict | None:
    """The "go to trace" box: a full id (32 hex digits) opens its trace; a shorter one is a
    prefix of the ids the pages show, looked up among the org's traces of the last day: one
    match opens it, several are listed (the answer), none is said plainly (None). A 16-digit
    id nobody's recent trace starts with still opens as a 64-bit trace id."""
    if not TRACE_ID.fullmatch(wanted):
        messages.error(request, "A trace ID is hexadecimal digits (0-9, a-f), 32 at most.")
        return None
    if len(wanted) == 32:
        return _trace_redirect(access, wanted)
    if len(wanted) < TRACE_PREFIX_MIN:
        messages.error(
            request,
            f"“{wanted}” is too short: type at least {TRACE_PREFIX_MIN} hex digits of the "
            "trace ID (the short ids in the lists have 8).",
        )
        return None
    now_ns = time.time_ns()
    timeout = float(limits_get(org_id=access.org.pk).query_timeout_seconds)
    try:
        with bounded_reading(timeout_seconds=timeout):
            found = traces_by_prefix(
                org_id=access.org.pk,
                prefix=wanted,
                start_ns=now_ns - TRACE_PREFIX_LOOKBACK_NS,
                end_ns=now_ns,
                limit=TRACE_PREFIX_MATCHES + 1,
            )
            roots = {}
            if len(found) > 1:
                roots = traces_get(
                    org_id=access.org.pk, trace_ids=[t for t, _ in found[:TRACE_PREFIX_MATCHES]]
                )
            transaction.set_rollback(True)  # read only: its settings end with it
    except ReadTimedOut:
        messages.error(
            request,
            f"Looking up “{wanted}” took longer than the query timeout ({timeout:g} s): "
            "type more of the trace ID.",
        )
        return None
    if len(found) == 1:
        return _trace_redirect(access, trace_id_hex(found[0][0]))
    if not found:
        if len(wanted) == 16:
            return _trace_redirect(access, wanted)
        messages.error(
            request,
            f"No trace with spans in the last {TRACE_PREFIX_LOOKBACK_LABEL} has an ID starting "
            f"with “{wanted}”. Paste the whole ID (32 hex digits) for older traces.",
        )
        return None
    out = []
    for trace_id, last_ns in found[:TRACE_PREFIX_MATCHES]:
        spans = roots.get(trace_id, [])
        root = next((sp for sp in spans if sp.parent_span_id is None), spans[0] if spans else None)
        out.append(
            {
                "id": trace_id_hex(trace_id),
                "service": root.service if root else "",
                "operation": root.name if root else "",
                "spans": len(spans),
                "when": datetime.fromtimestamp(last_ns / 1e9, UTC),
            }
        )
    return {"items": out, "more": len(found) > TRACE_PREFIX_MATCHES}


@login_required
def trace(request: HttpRequest, trace_id: str) -> HttpResponse:
    """One trace's waterfall. The spans and the critical path come from the Jaeger API in the
    browser, scoped to the viewer's org: another org's trace id shows the not-found state."""
    _page_access(request)
    return render(
        request,
        "web/trace.html",
        {**_tracing_context(request), "trace_id": trace_id.lower()},
    )


@login_required
def traces_map(request: HttpRequest) -> HttpResponse:
    """The service map, drawn in the browser from the org's dependency rollups."""
    _page_access(request)
    lookback = request.GET.get("lookback", TRACE_DEFAULT_LOOKBACK)
    return render(
        request,
        "web/traces_map.html",
        {
            **_tracing_context(request),
            "lookbacks": TRACE_LOOKBACKS,
            "lookback": lookback if lookback in TRACE_LOOKBACKS else TRACE_DEFAULT_LOOKBACK,
            "graph_url": reverse("web:traces-graph"),
        },
    )


@login_required
@require_POST
def switch_org(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("org", "")
    try:
        session_org_select(request, org_slug=slug)
    except OrgNotFound as exc:
        raise Http404(exc.message) from exc
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "web:home"
    return redirect(next_url)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    access = _access_or_404(request)
    created_secret = None
    if request.method == "POST":
        if not access.can_manage:
            raise Http404("only owners and admins manage tokens")
        try:
            token, created_secret = services.token_create(
                org=access.org,
                name=request.POST.get("name", "").strip() or "unnamed token",
                scopes=request.POST.getlist("scopes"),
                created_by=request.user,
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(
                request, f"Token “{token.name}” created. Copy it now: it is shown once."
            )
    return render(
        request,
        "web/tokens.html",
        {
            "tokens": selectors.token_list(org=access.org) if access.can_manage else [],
            "can_manage": access.can_manage,
            "all_scopes": sorted(ALL_SCOPES),
            "default_scopes": [Scope.METRICS_WRITE, Scope.TRACES_WRITE],
            "created_secret": created_secret,
            "snippet": _snippet_context(created_secret),
        },
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    access = _access_or_404(request)
    if not access.can_manage:
        raise Http404("only owners and admins manage tokens")
    token = selectors.token_list(org=access.org).filter(pk=pk).first()
    if token is None:
        raise Http404("no such token")
    services.token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("web:tokens")


@login_required
def mesh(request: HttpRequest) -> HttpResponse:
    """The mesh graph from Istio's metrics, drawn in the browser from ``/mesh/graph``."""
    _page_access(request)
    group = request.GET.get("group", "app")
    window = request.GET.get("window", mesh_graph.DEFAULT_WINDOW)
    return render(
        request,
        "web/mesh.html",
        {
            "groupings": mesh_graph.GROUPINGS,
            "group": group if group in mesh_graph.GROUPINGS else "app",
            "windows": list(mesh_graph.WINDOWS),
            "window": window if window in mesh_graph.WINDOWS else mesh_graph.DEFAULT_WINDOW,
            "refresh": request.GET.get("refresh", "on") == "on",
            "graph_url": reverse("web:mesh-graph"),
            "public_url": settings.PUBLIC_URL,
            "degraded_pct": f"{mesh_graph.DEGRADED_PCT:g}",
            "failing_pct": f"{mesh_graph.FAILING_PCT:g}",
        },
    )


# The limits an owner or admin edits on the usage page: retention, within the plan's bounds.
# The quotas that protect other tenants are the operator's (services.limits_update_by_tenant):
# the page shows them.
USAGE_EDITABLE_LIMITS = tuple(TENANT_LIMIT_FIELDS)
USAGE_OPERATOR_LIMITS = (
    "max_global_series_per_user",
    "max_global_series_per_metric",
    "ingestion_rate",
    "ingestion_burst_size",
    "traces_ingestion_rate",
    "traces_ingestion_burst_size",
    "query_max_series",
)
USAGE_TOP_METRICS = 15


def _limit_row(limits, field: str) -> dict:
    return {
        "name": field,
        "label": field.replace("_", " "),
        "value": getattr(limits, field),
        "help": limits._meta.get_field(field).help_text,
    }


def _pct(used: float, limit: float) -> float:
    return min(100.0, round(100 * used / limit, 1)) if limit else 0.0


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """Usage against the org's limits, refusals, and the cardinality explorer (which reads
    the Mimir-shaped cardinality API in the browser). Owners and admins edit limits here."""
    access = _page_access(request)
    org = access.org
    if request.method == "POST":
        if not access.can_manage:
            raise Http404("only owners and admins edit limits")
        changes = {}
        for field in USAGE_EDITABLE_LIMITS:
            raw = request.POST.get(field, "").strip()
            if raw:
                if not raw.isdigit() or len(raw) > 10:
                    messages.error(request, f"{field.replace('_', ' ')}: a whole number")
                    return redirect("web:usage")
                changes[field] = int(raw)
        try:
            services.limits_update_by_tenant(org=org, changes=changes, actor=request.user)
        except PermissionDenied as exc:
            messages.error(request, str(exc))
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, "Limits saved.")
        return redirect("web:usage")
    limits = limits_get(org_id=org.pk)
    ingest = ingest_overview(org_id=org.pk)
    spans = traces_overview(org_id=org.pk, now_ns=time.time_ns())
    samples_rate = ingest.samples_last_hour / 3600
    spans_rate = spans.spans_last_hour / 3600
    top = cardinality.top_metrics(org_id=org.pk, limit=USAGE_TOP_METRICS)
    refused = rejections_get(org_id=org.pk)
    recent = rejections_recent(org_id=org.pk)
    context = {
        "limits": limits,
        "can_manage": access.can_manage,
        "series": ingest.series,
        "series_pct": _pct(ingest.series, limits.max_global_series_per_user),
        "samples_rate": samples_rate,
        "samples_pct": _pct(samples_rate, limits.ingestion_rate),
        "spans_rate": spans_rate,
        "spans_pct": _pct(spans_rate, limits.traces_ingestion_rate),
        "top_metrics": [
            {
                "name": name,
                "series": n,
                "pct": _pct(n, limits.max_global_series_per_metric),
            }
            for name, n in top
        ],
        "refused": sorted(
            (
                {
                    "signal": signal,
                    "reason": reason.replace("_", " "),
                    "recent": recent.get(signal, {}).get(reason, 0),
                    "count": n,
                }
                for signal, reasons in refused.items()
                for reason, n in reasons.items()
            ),
            key=lambda row: (-row["recent"], -row["count"]),
        ),
        "refused_window_hours": REJECTIONS_WINDOW_HOURS,
        "editable": [_limit_row(limits, field) for field in USAGE_EDITABLE_LIMITS],
        "operator_limits": [_limit_row(limits, field) for field in USAGE_OPERATOR_LIMITS],
        "api_base": reverse("prom-cardinality-label-names").removesuffix("label_names"),
        "public_url": settings.PUBLIC_URL,
    }
    return render(request, "web/usage.html", context)


WORKLOAD_KINDS = ("workload", "app")
WORKLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


@login_required
def workload(request: HttpRequest, kind: str, namespace: str, name: str) -> HttpResponse:
    """One workload's (or app's) RED charts, operations and traces, read in the browser from
    the Prometheus and Jaeger APIs (so the page carries no data of its own)."""
    _page_access(request)
    if kind not in WORKLOAD_KINDS or not (
        WORKLOAD_NAME.fullmatch(namespace) and WORKLOAD_NAME.fullmatch(name)
    ):
        raise Http404("no such workload")
    return render(
        request,
        "web/workload.html",
        {
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "ranges": {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400},
            "sides": [
                ("in", "Inbound", "Requests to it, as its own proxy reports them."),
                ("out", "Outbound", "Requests it makes, as its own proxy reports them."),
            ],
            "prom_base": reverse("prom-query").removesuffix("query"),
            "jaeger_base": reverse("jaeger-services").removesuffix("services"),
            "trace_url": reverse("web:trace", args=["0"]).removesuffix("0"),
        },
    )
