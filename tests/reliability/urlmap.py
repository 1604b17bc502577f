"""Every route Canopy answers, found from the code, and the explicit table of how the
reliability tests exercise each one.

``url_patterns()`` walks Django's URL resolver recursively (includes, DRF views, the admin);
``grpc_methods()`` lists the methods the OTLP/gRPC server registers; ``AGENT_SERVER_PATHS``
are the agent server's own routes. ``ROUTES`` / ``GRPC`` / ``AGENT`` say, per route, which
methods are sent and with which victim ids in the URL. A route missing from the table makes
``uncovered()`` non-empty, and the isolation walk fails with its name: a new endpoint must be
added here (and so gets walked with an outsider's credentials and fuzzed) before it can ship.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.urls import URLPattern, URLResolver, get_resolver

GET, POST, PUT, PATCH, DELETE = "GET", "POST", "PUT", "PATCH", "DELETE"
FORM = "application/x-www-form-urlencoded"
ALL = (GET, POST, PUT, PATCH, DELETE)


@dataclass(frozen=True)
class Victim:
    """The ids of the victim org's data, put in URLs where a pattern has parameters."""

    slug: str
    member_pk: int
    token_pk: int
    invitation_pk: int
    cluster: str
    revision: int
    trace_id: str
    namespace: str
    group: str
    workload: tuple[str, str, str]
    label: str


@dataclass(frozen=True)
class Route:
    """How one URL pattern is exercised. ``url`` builds the path from the victim's ids (the
    pattern itself when it has no parameters); ``methods`` are sent in turn; ``body`` is the
    JSON or text a write sends (something that would change the victim's data if it were let
    through); ``note`` says why the route is what it is."""

    methods: tuple[str, ...] = ALL
    url: Callable[[Victim], str] | None = None
    body: Callable[[Victim], tuple[str, str]] | None = None
    note: str = ""
    fuzz: bool = True


def _json(value) -> Callable[[Victim], tuple[str, str]]:
    import json

    return lambda v: (json.dumps(value(v) if callable(value) else value), "application/json")


RULE_GROUP = "name: {group}\nrules:\n- record: stolen:up\n  expr: up\n"

# pattern (as the resolver prints it) -> Route. Every pattern of the URL map must be here.
ROUTES: dict[str, Route] = {
    "healthz": Route((GET,), note="liveness, no tenant data"),
    "readyz": Route((GET,), note="readiness, no tenant data"),
    # the write path: a token writes to its own org only
    "api/v1/push": Route((POST,), note="remote write: lands in the token's org"),
    "api/prom/push": Route((POST,), note="remote write (legacy path)"),
    "api/v1/write": Route((POST,), note="remote write (Prometheus path)"),
    "v1/traces": Route((POST,), note="OTLP/HTTP traces"),
    "api/v2/spans": Route((POST,), note="Zipkin spans"),
    "otlp/v1/metrics": Route((POST,), note="OTLP/HTTP metrics"),
    "v1/metrics": Route((POST,), note="OTLP/HTTP metrics (default path)"),
    # tenancy API, the token's org and the org named in the URL
    "api/v1/orgs": Route((GET,)),
    "api/v1/members": Route(
        (GET, POST), body=_json({"email": "thief@example.com", "role": "admin"})
    ),
    "api/v1/members/<int:pk>": Route(
        (GET, PATCH, DELETE),
        url=lambda v: f"/api/v1/members/{v.member_pk}",
        body=_json({"role": "owner"}),
    ),
    "api/v1/tokens": Route((GET, POST), body=_json({"name": "stolen", "scopes": ["admin"]})),
    "api/v1/tokens/<int:pk>": Route((GET, DELETE), url=lambda v: f"/api/v1/tokens/{v.token_pk}"),
    "api/v1/limits": Route((GET, PATCH), body=_json({"retention_days": 1})),
    "api/v1/invitations": Route(
        (GET, POST), body=_json({"email": "thief@example.com", "role": "owner"})
    ),
    "api/v1/invitations/<int:pk>": Route(
        (GET, DELETE), url=lambda v: f"/api/v1/invitations/{v.invitation_pk}"
    ),
    "api/v1/orgs/<slug:org_slug>/members": Route(
        (GET, POST),
        url=lambda v: f"/api/v1/orgs/{v.slug}/members",
        body=_json({"email": "thief@example.com", "role": "admin"}),
    ),
    "api/v1/orgs/<slug:org_slug>/members/<int:pk>": Route(
        (GET, PATCH, DELETE),
        url=lambda v: f"/api/v1/orgs/{v.slug}/members/{v.member_pk}",
        body=_json({"role": "owner"}),
    ),
    "api/v1/orgs/<slug:org_slug>/tokens": Route(
        (GET, POST),
        url=lambda v: f"/api/v1/orgs/{v.slug}/tokens",
        body=_json({"name": "stolen", "scopes": ["admin"]}),
    ),
    "api/v1/orgs/<slug:org_slug>/tokens/<int:pk>": Route(
        (GET, DELETE), url=lambda v: f"/api/v1/orgs/{v.slug}/tokens/{v.token_pk}"
    ),
    "api/v1/orgs/<slug:org_slug>/limits": Route(
        (GET, PATCH),
        url=lambda v: f"/api/v1/orgs/{v.slug}/limits",
        body=_json({"retention_days": 1}),
    ),
    "api/v1/org": Route(
        (GET, DELETE), note="deleting the token's/session's org: owners by session only"
    ),
    "api/v1/orgs/<slug:org_slug>/org": Route(
        (GET, DELETE), url=lambda v: f"/api/v1/orgs/{v.slug}/org"
    ),
    "api/v1/orgs/<slug:org_slug>/invitations": Route(
        (GET, POST),
        url=lambda v: f"/api/v1/orgs/{v.slug}/invitations",
        body=_json({"email": "thief@example.com", "role": "owner"}),
    ),
    "api/v1/orgs/<slug:org_slug>/invitations/<int:pk>": Route(
        (GET, DELETE),
        url=lambda v: f"/api/v1/orgs/{v.slug}/invitations/{v.invitation_pk}",
    ),
    # the mesh agents' API on the web port: cluster tokens only
    "api/v1/agent/config": Route((GET,), url=lambda v: "/api/v1/agent/config?wait=0"),
    "api/v1/agent/status": Route(
        (POST,), body=_json(lambda v: {"revision": v.revision, "attempt_id": "a", "state": "ACK"})
    ),
    # tracing read APIs
    "jaeger/api/services": Route((GET,)),
    "jaeger/api/services/<str:service>/operations": Route(
        (GET,), url=lambda v: f"/jaeger/api/services/{v.workload[2]}/operations"
    ),
    "jaeger/api/operations": Route(
        (GET,), url=lambda v: f"/jaeger/api/operations?service={v.workload[2]}"
    ),
    "jaeger/api/dependencies": Route((GET,)),
    "jaeger/api/traces": Route((GET,), url=lambda v: f"/jaeger/api/traces?service={v.workload[2]}"),
    "jaeger/api/traces/<str:trace_id>": Route(
        (GET,), url=lambda v: f"/jaeger/api/traces/{v.trace_id}"
    ),
    "jaeger/api/traces/<str:trace_id>/critical-path": Route(
        (GET,), url=lambda v: f"/jaeger/api/traces/{v.trace_id}/critical-path"
    ),
    "jaeger/api/v3/services": Route((GET,)),
    "jaeger/api/v3/operations": Route(
        (GET,), url=lambda v: f"/jaeger/api/v3/operations?service={v.workload[2]}"
    ),
    "jaeger/api/v3/traces": Route(
        (GET,), url=lambda v: f"/jaeger/api/v3/traces?query.service_name={v.workload[2]}"
    ),
    "jaeger/api/v3/traces/<str:trace_id>": Route(
        (GET,), url=lambda v: f"/jaeger/api/v3/traces/{v.trace_id}"
    ),
    "zipkin/api/v2/services": Route((GET,)),
    "zipkin/api/v2/spans": Route(
        (GET,), url=lambda v: f"/zipkin/api/v2/spans?serviceName={v.workload[2]}"
    ),
    "zipkin/api/v2/remoteServices": Route(
        (GET,), url=lambda v: f"/zipkin/api/v2/remoteServices?serviceName={v.workload[2]}"
    ),
    "zipkin/api/v2/traces": Route((GET,)),
    "zipkin/api/v2/trace/<str:trace_id>": Route(
        (GET,), url=lambda v: f"/zipkin/api/v2/trace/{v.trace_id}"
    ),
    "zipkin/api/v2/dependencies": Route(
        (GET,),
        url=lambda v: "/zipkin/api/v2/dependencies?endTs=9999999999999&lookback=999999999999",
    ),
    # the Prometheus API (and the two paths the rules room answers)
    "prometheus/api/v1/rules": Route((GET,)),
    "prometheus/api/v1/alerts": Route((GET,)),
    "prometheus/api/v1/query": Route(
        (GET, POST), url=lambda v: f"/prometheus/api/v1/query?query={{{v.label}!=%22%22}}"
    ),
    "prometheus/api/v1/query_range": Route(
        (GET, POST),
        url=lambda v: (
            "/prometheus/api/v1/query_range?query=up&start=1699999980&end=1700000580&step=15"
        ),
    ),
    "prometheus/api/v1/series": Route(
        (GET, POST), url=lambda v: "/prometheus/api/v1/series?match[]={__name__=~%22.%2B%22}"
    ),
    "prometheus/api/v1/labels": Route((GET, POST)),
    "prometheus/api/v1/label/<str:name>/values": Route(
        (GET,), url=lambda v: f"/prometheus/api/v1/label/{v.label}/values"
    ),
    "prometheus/api/v1/metadata": Route((GET,)),
    "prometheus/api/v1/query_exemplars": Route(
        (GET, POST), url=lambda v: "/prometheus/api/v1/query_exemplars?query=up&start=0&end=2e9"
    ),
    "prometheus/api/v1/status/buildinfo": Route((GET,), note="static build facts"),
    "prometheus/api/v1/cardinality/label_names": Route((GET,)),
    "prometheus/api/v1/cardinality/label_values": Route(
        (GET,), url=lambda v: f"/prometheus/api/v1/cardinality/label_values?label_names[]={v.label}"
    ),
    "prometheus/api/v1/cardinality/active_series": Route(
        (GET,),
        url=lambda v: (
            "/prometheus/api/v1/cardinality/active_series?selector={__name__=~%22.%2B%22}"
        ),
    ),
    "prometheus/api/v1/read": Route((POST,), note="remote read (snappy protobuf)"),
    # mesh configuration
    "api/v1/clusters": Route((GET, POST), body=_json({"name": "stolen"})),
    "api/v1/clusters/<str:name>": Route(
        (GET, PATCH, DELETE),
        url=lambda v: f"/api/v1/clusters/{v.cluster}",
        body=_json({"labels": {"owned": "yes"}}),
    ),
    "api/v1/config/validate": Route((POST,), body=_json({"resources": []})),
    "api/v1/config/revisions": Route((GET, POST), body=_json({"resources": []})),
    "api/v1/config/revisions/<int:number>": Route(
        (GET,), url=lambda v: f"/api/v1/config/revisions/{v.revision}"
    ),
    "api/v1/config/revisions/<int:a>/diff/<int:b>": Route(
        (GET,), url=lambda v: f"/api/v1/config/revisions/{v.revision}/diff/{v.revision}"
    ),
    "api/v1/config/revisions/<int:number>/rollback": Route(
        (POST,),
        url=lambda v: f"/api/v1/config/revisions/{v.revision}/rollback",
        body=_json(lambda v: {"clusters": [v.cluster]}),
    ),
    "api/v1/config/rollouts": Route(
        (GET, POST), body=_json(lambda v: {"revision": v.revision, "clusters": [v.cluster]})
    ),
    "api/v1/config/status": Route((GET,)),
    "api/v1/config/telemetry": Route((GET, PUT), body=_json({"sampling": 100})),
    # the ruler configuration API
    "prometheus/config/v1/rules/": Route((GET,)),
    "prometheus/config/v1/rules/<str:namespace>": Route(
        (GET, POST, DELETE),
        url=lambda v: f"/prometheus/config/v1/rules/{v.namespace}",
        body=lambda v: (RULE_GROUP.format(group=v.group), "application/yaml"),
    ),
    "prometheus/config/v1/rules/<str:namespace>/<str:group>": Route(
        (GET, DELETE), url=lambda v: f"/prometheus/config/v1/rules/{v.namespace}/{v.group}"
    ),
    "prometheus/config/v1/rules": Route((GET,)),
    "api/v1/alerting/targets": Route(
        (GET, PUT), body=_json({"alertmanagers": [{"url": "http://thief.example"}]})
    ),
    # API description: the same for everyone, the docs pages behind login
    "api/schema/": Route((GET,), note="the OpenAPI schema: no tenant data"),
    "api/docs/": Route((GET,), note="Swagger UI, behind login"),
    "api/redoc/": Route((GET,), note="ReDoc, behind login"),
    # the dashboard (sessions; a token is no dashboard login)
    "": Route((GET,)),
    "login/": Route((GET,), note="public login form"),
    "signup": Route((GET, POST), note="open sign-up: public, 404 unless CANOPY_SIGNUP"),
    "signup/<str:token>": Route(
        (GET, POST),
        url=lambda v: "/signup/not-a-signed-token",
        note="the signed link is the credential; a forged one finds nothing",
    ),
    "logout/": Route((POST,), fuzz=False, note="ends the fuzzer's own session"),
    "metrics": Route((GET,), note="explorer for browsers; self-metrics (no tenant data)"),
    "traces": Route((GET,), url=lambda v: f"/traces?service={v.workload[2]}"),
    "alerts": Route((GET,)),
    "rules": Route((GET, POST), body=lambda v: (f"namespace={v.namespace}", FORM)),
    "rules/delete": Route(
        (POST,),
        body=lambda v: (f"namespace={v.namespace}&group={v.group}", FORM),
    ),
    "overview/figures": Route((GET,)),
    "traces/services/activity": Route((GET,)),
    "traces/map": Route((GET,)),
    "traces/map/graph": Route((GET,)),
    "^traces/(?P<trace_id>[0-9a-fA-F]{1,32})$": Route(
        (GET,), url=lambda v: f"/traces/{v.trace_id}"
    ),
    "orgs/switch": Route((POST,), body=lambda v: (f"org={v.slug}", FORM)),
    "settings/tokens": Route((GET, POST), body=lambda v: ("name=stolen&scopes=admin", FORM)),
    "settings/tokens/<int:pk>/revoke": Route(
        (POST,), url=lambda v: f"/settings/tokens/{v.token_pk}/revoke"
    ),
    "settings/members": Route(
        (GET, POST),
        body=lambda v: ("email=thief%40example.com&role=owner", FORM),
    ),
    "settings/org/delete": Route((POST,), body=lambda v: (f"confirm={v.slug}", FORM)),
    "settings/invitations/<int:pk>/revoke": Route(
        (POST,), url=lambda v: f"/settings/invitations/{v.invitation_pk}/revoke"
    ),
    "invitations/<str:secret>": Route(
        (GET, POST),
        url=lambda v: "/invitations/not-the-secret",
        note="the link's secret is the credential; a wrong one finds nothing",
    ),
    "mesh": Route((GET,)),
    "settings/usage": Route((GET,)),
    "mesh/<str:kind>/<str:namespace>/<str:name>": Route(
        (GET,), url=lambda v: "/mesh/{}/{}/{}".format(*v.workload)
    ),
    "mesh/graph": Route((GET,)),
    "config": Route((GET,)),
    "config/clusters": Route((POST,), body=lambda v: ("name=stolen", FORM)),
    "config/clusters/<str:name>/delete": Route(
        (POST,), url=lambda v: f"/config/clusters/{v.cluster}/delete"
    ),
    "config/clusters/<str:name>/token": Route(
        (POST,), url=lambda v: f"/config/clusters/{v.cluster}/token"
    ),
    "config/editor": Route((GET, POST)),
    "config/revisions": Route((GET,)),
    "config/rollouts": Route(
        (GET, POST),
        body=lambda v: (f"revision={v.revision}&clusters={v.cluster}", FORM),
    ),
    "config/revisions/<int:number>/rollback": Route(
        (POST,),
        url=lambda v: f"/config/revisions/{v.revision}/rollback",
        body=lambda v: (f"clusters={v.cluster}", FORM),
    ),
    "config/telemetry": Route((GET, POST), body=lambda v: ("sampling=100", FORM)),
}

# The Django admin is platform staff's: every one of its pages sends anyone else to the admin
# login. Its patterns are generated per registered model, so the table lists the models (a new
# ModelAdmin must be added here) and the admin site's own views.
ADMIN_MODELS = {
    "auth/group",
    "auth/user",
    "axes/accessattempt",
    "axes/accesslog",
    "axes/accessfailurelog",
    "tenancy/organization",
    "tenancy/orglimits",
    "meshconfig/cluster",
    "meshconfig/revision",
    "meshconfig/clusterstatus",
    "meshconfig/agentreport",
}
ADMIN_SITE = {
    "admin/": "/admin/",
    "admin/login/": None,  # the staff login form itself
    "admin/logout/": None,  # POST only; ends a session (the walk's own)
    "admin/password_change/": "/admin/password_change/",
    "admin/password_change/done/": "/admin/password_change/done/",
    "admin/autocomplete/": "/admin/autocomplete/",
    "admin/jsi18n/": None,  # translations catalogue, public
    "admin/r/<path:content_type_id>/<path:object_id>/": "/admin/r/1/1/",
    "admin/^(?P<app_label>auth|axes|tenancy|meshconfig)/$": "/admin/tenancy/",
    "admin/(?P<url>.*)$": "/admin/nowhere/",
}
ADMIN_MODEL_SUFFIXES = {
    "": "",
    "add/": "add/",
    "<path:object_id>/history/": "{pk}/history/",
    "<path:object_id>/delete/": "{pk}/delete/",
    "<path:object_id>/change/": "{pk}/change/",
    "<path:object_id>/": "{pk}/",
    "<id>/password/": "{pk}/password/",
}

# The OTLP/gRPC server's methods: write-only, a token writes to its own org.
GRPC = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "traces",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": "metrics",
}
# The agent server's routes (its own port, ``backend/meshconfig/agent_server.py``).
AGENT = {
    "/api/v1/agent/config": GET,
    "/api/v1/agent/status": POST,
    "/healthz": GET,
}


@dataclass
class Pattern:
    text: str
    name: str | None
    view: str = field(compare=False)


def url_patterns(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[Pattern]:
    """Every URL pattern of the resolver, depth first, with its full pattern text."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from url_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield Pattern(prefix + str(entry.pattern), entry.name, entry.lookup_str)


def admin_route(pattern: str) -> tuple[str | None, bool]:
    """(the URL to request, covered?) for an admin pattern."""
    if pattern in ADMIN_SITE:
        return ADMIN_SITE[pattern], True
    for model in ADMIN_MODELS:
        base = f"admin/{model}/"
        if pattern.startswith(base) and pattern[len(base) :] in ADMIN_MODEL_SUFFIXES:
            return "/" + base + ADMIN_MODEL_SUFFIXES[pattern[len(base) :]], True
    return None, False


def grpc_methods() -> set[str]:
    from ingest.grpc.server import method_names

    return set(method_names())


def agent_server_paths() -> set[str]:
    from backend.meshconfig import agent_server

    return set(agent_server.PATHS)


def uncovered(resolver: URLResolver | None = None) -> list[str]:
    """Routes that exist but that the table does not cover (empty when all are covered)."""
    missing = []
    for p in url_patterns(resolver):
        if p.text.startswith("admin/"):
            if not admin_route(p.text)[1]:
                missing.append(f"{p.text} ({p.view})")
        elif p.text not in ROUTES:
            missing.append(f"{p.text} ({p.view})")
    missing += [f"gRPC {m}" for m in sorted(grpc_methods() - set(GRPC))]
    missing += [f"agent server {p}" for p in sorted(agent_server_paths() - set(AGENT))]
    return missing
