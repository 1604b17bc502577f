"""Walk every route of the URL map (and the gRPC methods, and the agent server's routes) with
an outsider's credentials: an API token of another org with every scope, that org's owner
logged in (naming the victim's org in ``?org=`` and in the session), a cluster token of the
other org, and no credentials at all. The victim's ids are in the URLs where a pattern has
parameters and the victim's data is present. No answer may carry the victim's data, no
request may change it, none may be a 5xx; and a route the table does not cover fails the
build (``check_coverage``)."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import parse_qsl, unquote, urlsplit

import grpc
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.urls import get_resolver
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from backend.meshconfig import services as mesh_services
from backend.meshconfig.models import Cluster
from backend.tenancy.access import SESSION_ORG_KEY
from backend.tenancy.models import ALL_SCOPES
from backend.tenancy.services import org_create, token_create, user_get_or_create
from tests.helpers.credentials import bearer
from tests.helpers.otlp import otlp_request, span
from tests.reliability.conftest import MARKER, org_snapshot
from tests.reliability.http import send as _send
from tests.reliability.urlmap import (
    AGENT,
    GRPC,
    ROUTES,
    admin_route,
    uncovered,
    url_patterns,
)

pytestmark = [pytest.mark.django_db, pytest.mark.reliability]


def check_coverage(resolver=None) -> None:
    missing = uncovered(resolver)
    assert not missing, (
        "routes without isolation/fuzz coverage -- add each to tests/reliability/urlmap.py "
        "(ROUTES, ADMIN_MODELS, GRPC or AGENT):\n  " + "\n  ".join(missing)
    )


def test_every_route_is_in_the_table():
    check_coverage()


def _extra_view(request):  # pragma: no cover - never called, only routed
    raise AssertionError


urlpatterns = [*get_resolver("backend.urls").url_patterns]


def test_a_new_route_without_coverage_fails_the_build():
    from django.urls import path

    extra = [*urlpatterns, path("api/v1/brand-new-endpoint", _extra_view)]
    module = type("urls", (), {"urlpatterns": extra})
    with pytest.raises(AssertionError) as failure:
        check_coverage(get_resolver(module))
    message = str(failure.value)
    assert "routes without isolation/fuzz coverage" in message
    assert "api/v1/brand-new-endpoint (tests.reliability.test_isolation_walk._extra_view)" in (
        message
    )
    # ... and only that one: the real map stays covered
    assert message.count("\n  ") == 1


def _echoes(url: str, body: str | None) -> list[str]:
    """The victim's names that the request itself carries (an answer may repeat them)."""
    parts = urlsplit(url)
    text = " ".join([unquote(parts.path), *(v for _, v in parse_qsl(parts.query)), body or ""])
    return sorted(set(re.findall(rf"[\w.:-]*{MARKER}[\w.:-]*", text)), key=len, reverse=True)


def _leaks(response, url: str, body: str | None) -> str | None:
    if response.status_code >= 500:
        return f"{response.status_code} (server fault):\n{getattr(response, 'fault', '')}"
    text = response.content.decode("utf-8", "replace") if hasattr(response, "content") else ""
    if 300 <= response.status_code < 400:
        text = response.get("Location", "")
    elif response.status_code >= 400:
        pass  # error bodies are checked too: an error must not quote the victim's data
    for echo in _echoes(url, body):
        text = text.replace(echo, "").replace(json.dumps(echo)[1:-1], "")
    if MARKER in text:
        at = text.index(MARKER)
        return f"{response.status_code} with victim data: ...{text[max(0, at - 80) : at + 80]}..."
    return None


def _requests(victim):
    for pattern in url_patterns():
        if pattern.text.startswith("admin/"):
            url, _ = admin_route(pattern.text)
            if url is None:
                continue
            yield pattern.text, "GET", url.format(pk=1), None, None
            yield pattern.text, "POST", url.format(pk=1), "", "application/x-www-form-urlencoded"
            continue
        route = ROUTES[pattern.text]
        url = route.url(victim) if route.url else "/" + pattern.text
        for method in route.methods:
            body, content_type = route.body(victim) if route.body else ("", "application/json")
            if method in ("GET", "DELETE"):
                body, content_type = None, None
            yield pattern.text, method, url, body, content_type


def test_outsiders_never_see_or_change_the_victims_data(victim, tenants):
    before = org_snapshot(tenants.org.pk)
    outsider_token = tenants.token(sorted(ALL_SCOPES), org=tenants.other_org)
    _, outsider_cluster_token = mesh_services.cluster_create(org=tenants.other_org, name="theirs")
    session = Client(raise_request_exception=False)
    session.force_login(tenants.outsider)
    store = session.session
    store[SESSION_ORG_KEY] = victim.slug
    store.save()
    identities = {
        "outsider token": (Client(raise_request_exception=False), bearer(outsider_token), None),
        "outsider session": (session, {}, victim.slug),
        "outsider cluster token": (
            Client(raise_request_exception=False),
            bearer(outsider_cluster_token),
            None,
        ),
        "anonymous": (Client(raise_request_exception=False), {}, None),
    }
    failures, sent = [], 0
    for who, (client, headers, org_param) in identities.items():
        for pattern, method, url, body, content_type in _requests(victim):
            if pattern in ("logout/", "admin/logout/"):
                continue  # would end the walk's own session; they show no data
            if org_param:
                url += ("&" if "?" in url else "?") + f"org={org_param}"
            response = _send(client, method, url, body, content_type, **headers)
            sent += 1
            leak = _leaks(response, url, body)
            if leak:
                failures.append(f"{who}: {method} {url} [{pattern}] -> {leak}")
    assert not failures, f"{len(failures)} of {sent} requests:\n" + "\n".join(failures)
    assert sent > 4 * len(ROUTES)
    after = org_snapshot(tenants.org.pk)
    changed = [table for table in before if before[table] != after.get(table)]
    assert not changed, f"the outsiders changed the victim's rows in {changed}"


def test_the_leak_detector_sees_the_victims_own_data(victim, tenants):
    """The check above can fail: the victim's own credentials get answers with the marker."""
    own = Client()
    token = token_create(org=tenants.org, name="own", scopes=sorted(ALL_SCOPES))[1]
    seen = []
    for url in (
        "/api/v1/tokens",
        "/api/v1/invitations",
        f"/prometheus/api/v1/label/{victim.label}/values",
        "/prometheus/config/v1/rules",
        f"/jaeger/api/traces/{victim.trace_id}",
        "/api/v1/clusters",
    ):
        response = own.get(url, **bearer(token))
        assert response.status_code == 200, url
        seen.append(_leaks(response, url, None))
    assert all(seen), seen
    own.force_login(tenants.owner)
    assert _leaks(own.get("/settings/tokens"), "/settings/tokens", None)


def test_the_agent_server_routes_with_outsider_credentials(victim, tenants):
    from backend.meshconfig.agent_server import application

    before = org_snapshot(tenants.org.pk)
    _, outsider_cluster = mesh_services.cluster_create(org=tenants.other_org, name="theirs")
    outsider_user = tenants.token(sorted(ALL_SCOPES), org=tenants.other_org)

    def call(method: str, path: str, authorization: str, body: bytes = b"", query=b""):
        sent: list[dict] = []
        queue = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if queue:
                return queue.pop(0)
            await asyncio.Event().wait()  # the agent stays connected until answered

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query,
            "headers": [(b"authorization", authorization.encode())] if authorization else [],
        }
        async_to_sync(application)(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, content.decode()

    report = json.dumps({"revision": victim.revision, "attempt_id": "x", "state": "ACK"})
    checked = set()
    for authorization in (f"Bearer {outsider_cluster}", f"Bearer {outsider_user}", ""):
        for path, method in AGENT.items():
            body = report.encode() if method == "POST" else b""
            status, content = call(method, path, authorization, body, b"wait=0")
            assert status < 500, (path, status, content)
            assert MARKER not in content, (path, authorization[:12], content)
            checked.add(path)
    assert checked == set(AGENT)
    assert org_snapshot(tenants.org.pk) == before
    # the victim's own cluster token does get its bundle (the check can fail)
    cluster = Cluster.objects.for_org(tenants.org).get(name=victim.cluster)
    own = mesh_services.cluster_token_rotate(cluster=cluster)
    status, content = call("GET", "/api/v1/agent/config", f"Bearer {own}", query=b"wait=0")
    assert status == 200 and MARKER in content


@pytest.mark.django_db(transaction=True)
def test_grpc_methods_write_to_the_callers_org_only():
    """The gRPC server runs its handlers on its own threads (own connections): committed data."""
    from ingest.grpc.server import build_server

    owner = user_get_or_create(username="v-owner")
    thief = user_get_or_create(username="t-owner")
    victim_org = org_create(slug="victim", name="Victim", owner=owner)
    thief_org = org_create(slug="thief", name="Thief", owner=thief)
    before = org_snapshot(victim_org.pk)
    _, secret = token_create(org=thief_org, name="t", scopes=sorted(ALL_SCOPES))
    traces = otlp_request([span("eee19b7ec3c1b174", name="x")], service="s")
    metrics = metrics_service_pb2.ExportMetricsServiceRequest()
    server, port = build_server("127.0.0.1:0", workers=2)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method, signal in GRPC.items():
                request = traces if signal == "traces" else metrics
                assert isinstance(
                    request,
                    trace_service_pb2.ExportTraceServiceRequest
                    if signal == "traces"
                    else metrics_service_pb2.ExportMetricsServiceRequest,
                )
                call = channel.unary_unary(method)
                # naming the victim's org in any of the usual headers changes nothing
                metadata = (
                    ("authorization", f"Bearer {secret}"),
                    ("x-scope-orgid", victim_org.slug),
                    ("org", victim_org.slug),
                )
                call(request.SerializeToString(), metadata=metadata, timeout=30)
                with pytest.raises(grpc.RpcError) as refused:
                    call(request.SerializeToString(), timeout=30)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(grace=1).wait()
        # the server's handler threads outlive it with their database connections open: end
        # them, or the test database cannot be dropped at the end of the run
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    assert org_snapshot(victim_org.pk) == before
