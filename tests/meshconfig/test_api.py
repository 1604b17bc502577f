"""The user API of mesh configuration: the exact paths and shapes of issue 13, 409 on a stale
parent, 422 with findings (and admins' force), rollouts, rollback, diff, status, telemetry,
audit events, and isolation (another org's user and every cluster token see nothing)."""

from __future__ import annotations

import pytest
import yaml

from backend.meshconfig import services
from backend.meshconfig.selectors import cluster_get
from backend.tenancy.models import AuditEvent, Scope
from tests.helpers.credentials import bearer

pytestmark = pytest.mark.django_db

VS_YAML = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
"""
BROKEN = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "front", "namespace": "bookinfo"},
    "spec": {"hosts": ["front.example.com"], "gateways": ["bogus"], "http": []},
}


def _publish_yaml(api, secret, body=VS_YAML, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.generic(
        "POST",
        f"/api/v1/config/revisions?{query}",
        body,
        content_type="application/yaml",
        **bearer(secret),
    )


@pytest.fixture
def writer(tenants):
    return tenants.token([Scope.CONFIG_READ, Scope.CONFIG_WRITE])


def test_validate_yaml_and_json(api, tenants, writer):
    got = api.generic(
        "POST",
        "/api/v1/config/validate",
        VS_YAML,
        content_type="application/yaml",
        **bearer(writer),
    )
    assert got.status_code == 200, got.content
    body = got.json()
    assert set(body) == {"valid", "findings"} and body["valid"] is True
    got = api.post(
        "/api/v1/config/validate", {"resources": [BROKEN]}, format="json", **bearer(writer)
    )
    body = got.json()
    assert body["valid"] is False
    assert {
        "code": "KIA1102",
        "severity": "error",
        "kind": "VirtualService",
        "namespace": "bookinfo",
        "name": "front",
        "path": "spec/gateways[0]",
        "message": "VirtualService is pointing to a non-existent gateway",
    } in body["findings"]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        ("a: [1, 2", "application/yaml", "not valid YAML"),
        ("- just\n- a list\n", "application/yaml", "not a mapping"),
        ("a: &x [1]\nb: *x\n", "application/yaml", "aliases"),
        ('{"resource": []}', "application/json", "resources"),
        # a JSON array is not a YAML stream: the JSON body's checks (found by the fuzzer: an
        # array of arrays was taken as resources and failed with a 500 on publish)
        ("[[[]]]", "application/json", "resources"),
        ('[{"kind": "Gateway"}]', "application/json", "resources"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/config/validate", "/api/v1/config/revisions"])
def test_bad_bodies_are_400_with_the_reason(api, writer, body, content_type, reason, path):
    got = api.generic("POST", path, body, content_type=content_type, **bearer(writer))
    assert got.status_code == 400
    assert reason in got.json()["detail"]


def test_publish_list_detail_yaml_and_diff(api, tenants, writer):
    first = _publish_yaml(api, writer, message="first")
    assert first.status_code == 201, first.content
    assert set(first.json()) >= {"number", "digest", "findings"}
    assert first.json()["number"] == 1 and len(first.json()["digest"]) == 64
    second_bundle = VS_YAML.replace("subset: v1", "subset: v2").replace("name: v1", "name: v2")
    second = _publish_yaml(api, writer, second_bundle, message="v2", parent=1)
    assert second.json()["number"] == 2

    listed = api.get("/api/v1/config/revisions", **bearer(writer)).json()
    assert [r["number"] for r in listed] == [2, 1]
    assert listed[0]["parent"] == 1 and listed[0]["message"] == "v2"
    assert listed[0]["created_at"] and listed[0]["author"].startswith("token ")

    detail = api.get("/api/v1/config/revisions/1", **bearer(writer)).json()
    assert [r["kind"] for r in detail["resources"]] == ["DestinationRule", "VirtualService"]
    as_yaml = api.get("/api/v1/config/revisions/1?format=yaml", **bearer(writer))
    assert as_yaml["Content-Type"].startswith("application/yaml")
    docs = [d for d in yaml.safe_load_all(as_yaml.content) if d]
    assert docs == detail["resources"]

    diff = api.get("/api/v1/config/revisions/1/diff/2", **bearer(writer)).json()
    changed = {(d["kind"], d["change"]) for d in diff["resources"]}
    assert changed == {("DestinationRule", "changed"), ("VirtualService", "changed")}
    vs_diff = next(d["diff"] for d in diff["resources"] if d["kind"] == "VirtualService")
    assert "-        subset: v1" in vs_diff and "+        subset: v2" in vs_diff
    assert api.get("/api/v1/config/revisions/9", **bearer(writer)).status_code == 404


def test_stale_parent_is_409(api, writer):
    assert _publish_yaml(api, writer, parent="null").status_code == 201
    assert _publish_yaml(api, writer, parent=1).status_code == 201
    stale = _publish_yaml(api, writer, parent=1)
    assert stale.status_code == 409
    assert stale.json()["head"] == 2
    # In JSON too, and "parent": null claims there is no revision yet.
    resources = yaml.safe_load_all(VS_YAML)
    body = {"resources": [r for r in resources if r], "parent": None}
    stale = api.post("/api/v1/config/revisions", body, format="json", **bearer(writer))
    assert stale.status_code == 409
    body["parent"] = 2
    assert (
        api.post("/api/v1/config/revisions", body, format="json", **bearer(writer)).json()["number"]
        == 3
    )


def test_errors_block_publishing_unless_an_admin_forces(api, tenants, writer):
    blocked = api.post(
        "/api/v1/config/revisions",
        {"resources": [BROKEN], "message": "x"},
        format="json",
        **bearer(writer),
    )
    assert blocked.status_code == 422
    assert blocked.json()["valid"] is False
    assert blocked.json()["findings"][0]["code"] == "KIA1102"
    refused = api.post(
        "/api/v1/config/revisions?force=true",
        {"resources": [BROKEN]},
        format="json",
        **bearer(writer),
    )
    assert refused.status_code == 403
    admin = tenants.token([Scope.ADMIN])
    forced = api.post(
        "/api/v1/config/revisions?force=true",
        {"resources": [BROKEN]},
        format="json",
        **bearer(admin),
    )
    assert forced.status_code == 201 and forced.json()["forced"] is True
    actions = list(AuditEvent.objects.for_org(tenants.org).values_list("action", flat=True))
    assert "meshconfig.revision.force_publish" in actions


def test_clusters_rollout_status_and_rollback(api, tenants, writer):
    created = api.post(
        "/api/v1/clusters",
        {"name": "east", "labels": {"env": "prod"}},
        format="json",
        **bearer(writer),
    )
    assert created.status_code == 201, created.content
    token = created.json()["token"]
    assert token.startswith("cnp_") and token in created.json()["agent_command"]
    api.post(
        "/api/v1/clusters",
        {"name": "west", "labels": {"env": "dev"}},
        format="json",
        **bearer(writer),
    )
    dup = api.post("/api/v1/clusters", {"name": "east"}, format="json", **bearer(writer))
    assert dup.status_code == 400
    bad = api.post("/api/v1/clusters", {"name": "East_1"}, format="json", **bearer(writer))
    assert bad.status_code == 400

    _publish_yaml(api, writer)
    rolled = api.post(
        "/api/v1/config/rollouts",
        {"revision": 1, "selector": {"env": "prod"}},
        format="json",
        **bearer(writer),
    )
    assert rolled.status_code == 201 and rolled.json()["clusters"] == ["east"]
    both = api.post(
        "/api/v1/config/rollouts",
        {"revision": 1, "clusters": ["east", "west"]},
        format="json",
        **bearer(writer),
    )
    assert both.json()["clusters"] == ["east", "west"]
    missing = api.post(
        "/api/v1/config/rollouts",
        {"revision": 1, "clusters": ["nope"]},
        format="json",
        **bearer(writer),
    )
    assert missing.status_code == 400

    # The east agent applies revision 1.
    east = cluster_get(org=tenants.org, name="east")
    services.cluster_report(cluster=east, revision=1, attempt_id="x1", state="ACK")
    status = api.get("/api/v1/config/status", **bearer(writer)).json()
    assert (status["synced"], status["total"]) == (1, 2)
    by_name = {c["name"]: c for c in status["clusters"]}
    assert by_name["east"]["state"] == "SYNCED" and by_name["east"]["applied"] == 1
    assert by_name["west"]["state"] == "DISCONNECTED" and by_name["west"]["desired"] == 1
    assert set(by_name["east"]) >= {"name", "desired", "applied", "state", "last_seen", "error"}

    # Revision 2 goes to east; rolling back to 1 publishes 3 = 1 and moves east to it.
    v2 = VS_YAML.replace("subset: v1", "subset: v2").replace("name: v1", "name: v2")
    assert _publish_yaml(api, writer, v2).status_code == 201
    api.post(
        "/api/v1/config/rollouts",
        {"revision": 2, "clusters": ["east"]},
        format="json",
        **bearer(writer),
    )
    back = api.post("/api/v1/config/revisions/1/rollback", **bearer(writer))
    assert back.status_code == 201, back.content
    assert back.json()["number"] == 3 and back.json()["clusters"] == ["east"]
    revs = {r["number"]: r for r in api.get("/api/v1/config/revisions", **bearer(writer)).json()}
    assert revs[3]["digest"] == revs[1]["digest"] and revs[3]["rollback_of"] == 1
    status = api.get("/api/v1/config/status", **bearer(writer)).json()
    by_name = {c["name"]: c for c in status["clusters"]}
    # Revision 3 has the digest east already applied (revision 1): it is in sync at once.
    assert by_name["east"]["desired"] == 3 and by_name["east"]["state"] == "SYNCED"

    assert api.delete("/api/v1/clusters/west", **bearer(writer)).status_code == 204
    assert api.get("/api/v1/clusters/west", **bearer(writer)).status_code == 404
    actions = set(AuditEvent.objects.for_org(tenants.org).values_list("action", flat=True))
    assert {
        "meshconfig.cluster.create",
        "meshconfig.revision.publish",
        "meshconfig.rollout",
        "meshconfig.rollback",
        "meshconfig.cluster.delete",
    } <= actions


def test_telemetry_settings_render_into_the_next_revision(api, tenants, writer):
    got = api.get("/api/v1/config/telemetry", **bearer(writer)).json()
    assert got["saved"] is False and got["trace_sampling_percent"] == 1.0
    put = api.put(
        "/api/v1/config/telemetry",
        {
            "trace_sampling_percent": 10,
            "traces": True,
            "metrics": False,
            "custom_tags": {"env": "prod"},
        },
        format="json",
        **bearer(writer),
    )
    assert put.status_code == 200, put.content
    body = put.json()
    assert set(body) >= {"trace_sampling_percent", "traces", "metrics", "custom_tags"}
    assert "randomSamplingPercentage: 10.0" in body["telemetry_resource"]
    provider = yaml.safe_load(body["extension_providers"])
    entry = provider["meshConfig"]["extensionProviders"][0]
    assert entry["name"] == "canopy" and entry["opentelemetry"]["http"]["path"] == "/v1/traces"
    bad = api.put(
        "/api/v1/config/telemetry",
        {"trace_sampling_percent": 101, "traces": True, "metrics": True},
        format="json",
        **bearer(writer),
    )
    assert bad.status_code == 400

    _publish_yaml(api, writer)
    detail = api.get("/api/v1/config/revisions/1", **bearer(writer)).json()
    telemetry = [r for r in detail["resources"] if r["kind"] == "Telemetry"]
    assert len(telemetry) == 1
    spec = telemetry[0]["spec"]
    assert telemetry[0]["metadata"]["namespace"] == "istio-system"
    assert spec["tracing"][0]["randomSamplingPercentage"] == 10.0
    assert spec["tracing"][0]["customTags"] == {"env": {"literal": {"value": "prod"}}}
    assert spec["metrics"][0]["overrides"] == [
        {"match": {"metric": "ALL_METRICS"}, "disabled": True}
    ]
    assert detail["valid"] is True


def test_scopes_and_roles(api, tenants, writer):
    reader = tenants.token([Scope.CONFIG_READ])
    assert api.get("/api/v1/config/status", **bearer(reader)).status_code == 200
    assert _publish_yaml(api, reader).status_code == 403
    metrics_only = tenants.token([Scope.METRICS_READ])
    assert api.get("/api/v1/config/revisions", **bearer(metrics_only)).status_code == 403
    api.force_login(tenants.viewer)
    assert api.get("/api/v1/config/status?org=acme").status_code == 200
    assert api.post("/api/v1/clusters?org=acme", {"name": "x"}, format="json").status_code == 403
    api.force_login(tenants.member)
    assert api.post("/api/v1/clusters?org=acme", {"name": "x"}, format="json").status_code == 201


def test_isolation(api, tenants, writer):
    _publish_yaml(api, writer)
    _, agent_secret = services.cluster_create(org=tenants.org, name="east")
    outsider = tenants.outsider_token()
    for path in (
        "/api/v1/config/revisions/1",
        "/api/v1/config/revisions/1/diff/1",
        "/api/v1/clusters/east",
    ):
        assert api.get(path, **bearer(outsider)).status_code == 404, path
    assert api.get("/api/v1/config/revisions", **bearer(outsider)).json() == []
    assert api.get("/api/v1/clusters", **bearer(outsider)).json() == []
    assert api.get("/api/v1/config/status", **bearer(outsider)).json()["total"] == 0
    assert api.delete("/api/v1/clusters/east", **bearer(outsider)).status_code == 404
    assert api.post("/api/v1/config/revisions/1/rollback", **bearer(outsider)).status_code == 404
    rollout = api.post(
        "/api/v1/config/rollouts",
        {"revision": 1, "clusters": ["east"]},
        format="json",
        **bearer(outsider),
    )
    assert rollout.status_code == 404
    api.force_login(tenants.outsider)
    assert api.get("/api/v1/config/revisions/1?org=acme").status_code == 404
    api.logout()
    # A cluster's agent token reads no user API, not even of its own org.
    for path in ("/api/v1/config/revisions", "/api/v1/config/status", "/api/v1/clusters"):
        assert api.get(path, **bearer(agent_secret)).status_code == 403, path
    # Nor does an outsider's publish land in acme.
    api.post("/api/v1/config/revisions", {"resources": []}, format="json", **bearer(outsider))
    assert [r["number"] for r in api.get("/api/v1/config/revisions", **bearer(writer)).json()] == [
        1
    ]


def test_revisions_in_a_time_window(api, tenants, writer):
    from datetime import UTC, datetime, timedelta

    from backend.meshconfig.models import Revision

    for message in ("old", "mid", "new"):
        assert _publish_yaml(api, writer, message=message).status_code == 201
    now = datetime.now(UTC).replace(microsecond=0)
    for number, hours_ago in ((1, 48), (2, 5), (3, 0)):
        Revision.objects.for_org(tenants.org).filter(number=number).update(
            created_at=now - timedelta(hours=hours_ago)
        )

    def numbers(query):
        got = api.get(f"/api/v1/config/revisions?{query}", **bearer(writer))
        assert got.status_code == 200, got.content
        return [r["number"] for r in got.json()]

    ms = lambda dt: int(dt.timestamp() * 1000)  # noqa: E731
    day_ago, hour_ago = now - timedelta(days=1), now - timedelta(hours=1)
    assert numbers(f"since={ms(day_ago)}") == [3, 2]
    assert numbers(f"since={ms(day_ago)}&until={ms(hour_ago)}") == [2]
    assert numbers(f"until={ms(now - timedelta(hours=5))}") == [2, 1]  # inclusive
    rfc = (day_ago.isoformat().replace("+00:00", "Z"), hour_ago.isoformat())
    assert numbers(f"since={rfc[0]}&until={rfc[1].replace('+', '%2B')}") == [2]
    for bad, reason in (
        ("since=yesterday", "RFC 3339"),
        ("since=2026-01-01T00:00:00", "zone"),
        ("until=99999999999999999999", "out of range"),
        (f"since={ms(now)}&until={ms(day_ago)}", "after until"),
    ):
        got = api.get(f"/api/v1/config/revisions?{bad}", **bearer(writer))
        assert got.status_code == 400, bad
        assert reason in str(got.json()), (bad, got.json())
    # Another org's window holds none of acme's.
    outsider = tenants.outsider_token()
    got = api.get(f"/api/v1/config/revisions?since={ms(day_ago)}", **bearer(outsider))
    assert got.json() == []


def test_revisions_that_touched_a_service(api, tenants, writer):
    """?service=&namespace=: only the revisions whose changes (against their parent) touch
    the service, with what they touched; another org never sees them."""
    from backend.meshconfig.selectors import resource_touches

    ratings = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "ratings", "namespace": "bookinfo"},
        "spec": {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings"}}]}]},
    }
    docs = list(yaml.safe_load_all(VS_YAML))
    policy = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "reviews-only", "namespace": "bookinfo"},
        "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "action": "ALLOW"},
    }

    def publish(resources, message):
        got = api.post(
            f"/api/v1/config/revisions?message={message}",
            {"resources": resources},
            format="json",
            **bearer(writer),
        )
        assert got.status_code == 201, got.content

    publish([ratings], "r1-ratings")  # 1: ratings only
    publish([ratings, *docs], "r2-reviews")  # 2: adds the reviews VS + DR
    publish([{**ratings, "spec": {**ratings["spec"], "hosts": ["ratings", "x"]}}, *docs], "r3")
    publish([ratings, *docs, policy], "r4-policy")  # 4: a policy on app=reviews; ratings as 2
    publish([ratings, policy], "r5-drop")  # 5: removes the VS and DR

    def touching(query, token=writer):
        got = api.get(f"/api/v1/config/revisions?{query}", **bearer(token))
        assert got.status_code == 200, got.content
        return {r["number"]: r["touched"] for r in got.json()}

    assert touching("service=reviews&namespace=bookinfo") == {
        5: ["DestinationRule bookinfo/reviews", "VirtualService bookinfo/reviews"],
        4: ["AuthorizationPolicy bookinfo/reviews-only"],
        2: ["DestinationRule bookinfo/reviews", "VirtualService bookinfo/reviews"],
    }
    assert set(touching("service=ratings&namespace=bookinfo")) == {1, 3, 4}  # 4 undid 3
    assert touching("service=reviews&namespace=default") == {}
    assert touching("service=reviews&namespace=bookinfo&limit=1").keys() == {5}
    # Another org's token asks for the same service: nothing of acme's.
    assert touching("service=reviews&namespace=bookinfo", tenants.outsider_token()) == {}
    for bad, reason in (
        ("service=reviews", "go together"),
        ("namespace=bookinfo", "go together"),
        ("service=Reviews!&namespace=bookinfo", "DNS label"),
        ("service=reviews&namespace=bookinfo&before=3", "not with service"),
    ):
        got = api.get(f"/api/v1/config/revisions?{bad}", **bearer(writer))
        assert got.status_code == 400 and reason in str(got.json()), (bad, got.json())

    # Host forms: FQDN, namespaced short name, a wildcard over the namespace; a namespace-
    # wide policy touches every service of its namespace, one of another namespace none.
    def vs(host, ns="front"):
        return {"kind": "VirtualService", "metadata": {"name": "v", "namespace": ns},
                "spec": {"hosts": [host]}}  # fmt: skip

    hosts = (
        "reviews.bookinfo.svc.cluster.local",
        "reviews.bookinfo",
        "*.bookinfo.svc.cluster.local",
    )
    for host in hosts:
        assert resource_touches(vs(host), namespace="bookinfo", service="reviews"), host
    assert not resource_touches(vs("reviews"), namespace="bookinfo", service="reviews")
    assert not resource_touches(vs("ratings.bookinfo"), namespace="bookinfo", service="reviews")
    wide = {"kind": "PeerAuthentication", "metadata": {"name": "p", "namespace": "bookinfo"},
            "spec": {"mtls": {"mode": "STRICT"}}}  # fmt: skip
    assert resource_touches(wide, namespace="bookinfo", service="reviews")
    assert not resource_touches(wide, namespace="shop", service="reviews")
