"""Every validation code with a failing and a passing example (ISTIO-VALIDATION.md's ✗/✓),
against a fixed picture of the mesh: namespace bookinfo, service reviews with workloads
reviews-v1/v2 (version v1/v2), service ratings, the Gateway bookinfo/gw."""

from __future__ import annotations

import copy

import pytest

from backend.meshconfig.findings import Known, Workload
from backend.meshconfig.validation import validate_bundle

NS = "bookinfo"
REVIEWS = "reviews.bookinfo.svc.cluster.local"
RATINGS = "ratings.bookinfo.svc.cluster.local"
KNOWN = Known(
    services=frozenset({REVIEWS, RATINGS}),
    namespaces=frozenset({NS, "istio-system"}),
    workloads=(
        Workload(NS, "reviews-v1", {"app": "reviews", "version": "v1"}, frozenset({REVIEWS})),
        Workload(NS, "reviews-v2", {"app": "reviews", "version": "v2"}, frozenset({REVIEWS})),
        Workload(NS, "ratings-v1", {"app": "ratings", "version": "v1"}, frozenset({RATINGS})),
    ),
)


def res(kind, name, spec, ns=NS, api=None):
    api = api or {
        "PeerAuthentication": "security.istio.io/v1",
        "AuthorizationPolicy": "security.istio.io/v1",
        "RequestAuthentication": "security.istio.io/v1",
        "Telemetry": "telemetry.istio.io/v1",
        "EnvoyFilter": "networking.istio.io/v1alpha3",
    }.get(kind, "networking.istio.io/v1")
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def vs(name="reviews", route=None, hosts=("reviews",), gateways=None, http=None):
    spec = {"hosts": list(hosts)}
    if gateways is not None:
        spec["gateways"] = gateways
    spec["http"] = http if http is not None else [{"route": route or [dest("reviews")]}]
    return res("VirtualService", name, spec)


def dest(host, subset=None, weight=None):
    d = {"destination": {"host": host}}
    if subset:
        d["destination"]["subset"] = subset
    if weight is not None:
        d["weight"] = weight
    return d


def dr(name="reviews", host="reviews", subsets=(("v1", {"version": "v1"}),), tls=None, ns=NS):
    spec = {"host": host}
    if subsets:
        spec["subsets"] = [{"name": n, "labels": labels} for n, labels in subsets]
    if tls:
        spec["trafficPolicy"] = {"tls": {"mode": tls}}
    return res("DestinationRule", name, spec, ns=ns)


def gw(name="gw", hosts=("a.example.com",), port=80, selector=None):
    return res(
        "Gateway",
        name,
        {
            "selector": selector or {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": list(hosts)}
            ],
        },
    )


def pa(name="default", mode="STRICT", ns=NS):
    return res("PeerAuthentication", name, {"mtls": {"mode": mode}}, ns=ns)


def codes(bundle, known=KNOWN):
    return {(f.code, f.severity, f.path) for f in validate_bundle(bundle, known=known).findings}


def only(bundle, code, known=KNOWN):
    return {(sev, path) for c, sev, path in codes(bundle, known) if c == code}


# (code, failing bundle, passing bundle, (severity, path) expected on the failing one)
CASES = {
    "KIA1101": (
        [vs(route=[dest("nosvc")])],
        [vs(route=[dest("reviews")])],
        ("error", "spec/http[0]/route[0]/destination/host"),
    ),
    "KIA1107": (
        [vs(route=[dest("reviews", "v3")]), dr()],
        [vs(route=[dest("reviews", "v1")]), dr()],
        ("error", "spec/http[0]/route[0]/destination"),
    ),
    "KIA1102": (
        [vs(gateways=["bogus"]), gw()],
        [vs(gateways=["bookinfo/gw"]), gw()],
        ("error", "spec/gateways[0]"),
    ),
    "KIA0202": (
        [dr(host="nosvc", subsets=())],
        [dr(host="reviews", subsets=())],
        ("error", "spec/host"),
    ),
    "KIA0203": (
        [vs(route=[dest("reviews", "v1")]), dr(subsets=(("v1", {"version": "v9"}),))],
        [vs(route=[dest("reviews", "v1")]), dr(subsets=(("v1", {"version": "v1"}),))],
        ("error", "spec/subsets[0]"),
    ),
    "KIA0201": (
        [dr(name="a"), dr(name="b", host=REVIEWS)],
        [dr(name="a"), dr(name="b", host=REVIEWS, subsets=(("v2", {"version": "v2"}),))],
        ("warning", "spec/host"),
    ),
    "KIA1106": (
        [vs(name="a"), vs(name="b")],
        [vs(name="a"), vs(name="b", hosts=("ratings",), route=[dest("ratings")])],
        ("warning", "spec/hosts"),
    ),
    "KIA1104": (
        [vs(route=[dest("reviews", weight=10)])],
        [vs(route=[dest("reviews", weight=100)])],
        ("warning", "spec/http[0]/route[0]/weight"),
    ),
    "KIA1105": (
        [
            vs(route=[dest("reviews", "v1", 50), dest(REVIEWS, "v1", 50)]),
            dr(subsets=(("v1", {"version": "v1"}), ("v2", {"version": "v2"}))),
        ],
        [
            vs(route=[dest("reviews", "v1", 50), dest(REVIEWS, "v2", 50)]),
            dr(subsets=(("v1", {"version": "v1"}), ("v2", {"version": "v2"}))),
        ],
        ("warning", "spec/http[0]/route[1]/host"),
    ),
    "KIA0301": (
        [gw(name="a"), gw(name="b")],
        [gw(name="a"), gw(name="b", port=8080)],
        ("warning", "spec/servers[0]/hosts[0]"),
    ),
    "KIA0207": (
        [dr(host="*.bookinfo.svc.cluster.local", subsets=(), tls="DISABLE"), pa(mode="STRICT")],
        [dr(host="*.bookinfo.svc.cluster.local", subsets=(), tls="DISABLE"), pa(mode="PERMISSIVE")],
        ("error", "spec/trafficPolicy/tls/mode"),
    ),
    "KIA0208": (
        [dr(subsets=(), tls="DISABLE"), pa(mode="STRICT", ns="istio-system")],
        [dr(subsets=(), tls="DISABLE"), pa(mode="PERMISSIVE", ns="istio-system")],
        ("error", "spec/trafficPolicy/tls/mode"),
    ),
    "IST0110": (
        [
            res("Sidecar", "a", {"workloadSelector": {"labels": {"app": "reviews"}}}),
            res("Sidecar", "b", {"workloadSelector": {"labels": {"app": "reviews"}}}),
        ],
        [
            res("Sidecar", "a", {"workloadSelector": {"labels": {"app": "reviews"}}}),
            res("Sidecar", "b", {"workloadSelector": {"labels": {"app": "ratings"}}}),
        ],
        ("error", "spec/workloadSelector/labels"),
    ),
    "IST0111": (
        [res("Sidecar", "a", {}), res("Sidecar", "b", {})],
        [
            res("Sidecar", "a", {}),
            res("Sidecar", "b", {"workloadSelector": {"labels": {"app": "reviews"}}}),
        ],
        ("error", "spec"),
    ),
    "IST0130": (
        [
            vs(
                http=[
                    {"route": [dest("reviews")]},
                    {"match": [{"uri": {"prefix": "/a"}}], "route": [dest("reviews")]},
                ]
            )
        ],
        [
            vs(
                http=[
                    {"match": [{"uri": {"prefix": "/a"}}], "route": [dest("reviews")]},
                    {"route": [dest("reviews")]},
                ]
            )
        ],
        ("warning", "spec/http[1]"),
    ),
    "IST0131": (
        [
            vs(
                http=[
                    {"match": [{"uri": {"prefix": "/a"}}], "route": [dest("reviews")]},
                    {
                        "match": [{"uri": {"prefix": "/a/b"}}, {"uri": {"prefix": "/c"}}],
                        "route": [dest("reviews")],
                    },
                ]
            )
        ],
        [
            vs(
                http=[
                    {"match": [{"uri": {"prefix": "/a/b"}}], "route": [dest("reviews")]},
                    {
                        "match": [{"uri": {"prefix": "/a"}}, {"uri": {"prefix": "/c"}}],
                        "route": [dest("reviews")],
                    },
                ]
            )
        ],
        ("info", "spec/http[1]/match[0]"),
    ),
    "KIA0209": (
        [dr(subsets=(("v1", {}),))],
        [dr(subsets=(("v1", {"version": "v1"}),))],
        ("warning", "spec/subsets[0]"),
    ),
    "KIA1108": (
        [vs(gateways=["gw.bookinfo.svc.cluster.local"]), gw()],
        [vs(gateways=["bookinfo/gw"]), gw()],
        ("info", "spec/gateways[0]"),
    ),
    "CNP0001": (
        [res("Ingress", "x", {})],
        [vs()],
        ("error", "kind"),
    ),
    "CNP0002": (
        [res("VirtualService", "x", {"hosts": ["reviews"]}, api="networking.istio.io/v2")],
        [res("VirtualService", "x", {"hosts": ["reviews"]}, api="networking.istio.io/v1alpha3")],
        ("error", "apiVersion"),
    ),
    "CNP0003": ([vs(), vs()], [vs()], ("error", "metadata/name")),
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_code_fails_and_passes(code):
    failing, passing, expected = CASES[code]
    assert expected in only(failing, code), codes(failing)
    assert not only(passing, code), codes(passing)


def test_ist0106_weights_total_zero_and_bad_regex():
    zero = vs(route=[dest("reviews", "v1"), dest("reviews", "v2")])
    subsets = dr(subsets=(("v1", {"version": "v1"}), ("v2", {"version": "v2"})))
    assert ("error", "spec/http[0]/route") in only([zero, subsets], "IST0106")
    weighted = vs(route=[dest("reviews", "v1", 50), dest("reviews", "v2", 50)])
    assert not only([weighted, subsets], "IST0106")

    bad = vs(http=[{"match": [{"uri": {"regex": "/a(b"}}], "route": [dest("reviews")]}])
    assert ("error", "spec/http[0]/match[0]/uri/regex") in only([bad], "IST0106")
    headers = vs(
        http=[{"match": [{"headers": {"x-v": {"regex": "(?<=a)b"}}}], "route": [dest("reviews")]}]
    )
    assert ("error", "spec/http[0]/match[0]/headers/x-v/regex") in only([headers], "IST0106")
    good = vs(http=[{"match": [{"uri": {"regex": "/a(b)?"}}], "route": [dest("reviews")]}])
    assert not only([good], "IST0106")


def test_ist0106_schema_errors_name_the_field():
    broken = vs(route=[{"destination": {"hots": "reviews"}, "weight": "ten"}])
    found = only([broken], "IST0106")
    assert ("error", "spec/http[0]/route[0]/destination/host") in found
    assert ("error", "spec/http[0]/route[0]/destination/hots") in found
    assert ("error", "spec/http[0]/route[0]/weight") in found
    bad_enum = dr(subsets=(), tls="MUTUALISH")
    assert ("error", "spec/trafficPolicy/tls/mode") in only([bad_enum], "IST0106")
    nameless = vs()
    del nameless["metadata"]["name"]
    assert ("error", "metadata/name") in only([nameless], "IST0106")


def test_kia0205_and_kia0206_need_peer_authentication_without_auto_mtls():
    no_auto = Known(**{**KNOWN.__dict__, "auto_mtls": False})
    mesh_dr = dr(host="*.local", subsets=(), tls="ISTIO_MUTUAL", ns="istio-system")
    assert ("error", "spec/trafficPolicy/tls/mode") in only([mesh_dr], "KIA0205", no_auto)
    assert not only([mesh_dr, pa(ns="istio-system")], "KIA0205", no_auto)
    assert not only([mesh_dr], "KIA0205", KNOWN)  # auto mTLS on: nothing to say
    ns_dr = dr(host="*.bookinfo.svc.cluster.local", subsets=(), tls="ISTIO_MUTUAL")
    assert ("error", "spec/trafficPolicy/tls/mode") in only([ns_dr], "KIA0206", no_auto)
    assert not only([ns_dr, pa(mode="PERMISSIVE")], "KIA0206", no_auto)


def test_hosts_resolve_like_kiali():
    # A ServiceEntry makes its host (and, Kiali's quirk, sub-hosts) exist.
    se = res(
        "ServiceEntry",
        "ext",
        {
            "hosts": ["example.com"],
            "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
        },
    )
    external = vs(hosts=("api.example.com",), route=[dest("api.example.com")])
    assert not only([external, se], "KIA1101")
    assert only([external], "KIA1101")
    # name.namespace is an FQDN when the namespace exists.
    assert not only([vs(route=[dest("reviews.bookinfo")])], "KIA1101")
    # A DR host exists when a same-namespace workload has app=<name>.
    known = Known(**{**KNOWN.__dict__, "services": frozenset()})
    assert not only([dr(host="reviews", subsets=())], "KIA0202", known)
    assert only([dr(host="details", subsets=())], "KIA0202", known)


def test_empty_registry_warns_instead_of_blocking():
    report = validate_bundle([vs(route=[dest("nosvc")])], known=Known())
    assert report.valid
    assert [(f.code, f.severity) for f in report.findings] == [("KIA1101", "warning")]


def test_report_shape_and_order():
    report = validate_bundle([vs(route=[dest("nosvc", weight=10)])], known=KNOWN)
    data = report.as_dict()
    assert data["valid"] is False
    assert data["findings"][0] == {
        "code": "KIA1101",
        "severity": "error",
        "kind": "VirtualService",
        "namespace": "bookinfo",
        "name": "reviews",
        "path": "spec/http[0]/route[0]/destination/host",
        "message": "DestinationWeight on route doesn't have a valid service (host not found)",
    }
    assert [f["severity"] for f in data["findings"]] == ["error", "warning"]


def test_every_kind_validates_structurally():
    bundle = [
        vs(),
        dr(),
        gw(),
        res(
            "ServiceEntry",
            "se",
            {
                "hosts": ["db.ext"],
                "addresses": ["10.0.0.5"],
                "ports": [{"number": 5432, "name": "tcp", "protocol": "TCP"}],
            },
        ),
        res("Sidecar", "sc", {"egress": [{"hosts": ["./*"]}]}),
        pa(mode="PERMISSIVE"),
        res("RequestAuthentication", "ra", {"jwtRules": [{"issuer": "https://issuer"}]}),
        res(
            "AuthorizationPolicy",
            "ap",
            {"action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
        ),
        res(
            "Telemetry",
            "mesh",
            {"tracing": [{"randomSamplingPercentage": 10.0}]},
            ns="istio-system",
        ),
        res(
            "EnvoyFilter",
            "ef",
            {
                "configPatches": [
                    {"applyTo": "HTTP_FILTER", "patch": {"operation": "MERGE", "value": {}}}
                ]
            },
        ),
    ]
    report = validate_bundle(copy.deepcopy(bundle), known=KNOWN)
    assert report.valid, report.as_dict()
    for r in bundle:
        broken = copy.deepcopy(r)
        broken["spec"]["bogusField"] = 1
        found = only([broken], "IST0106")
        assert ("error", "spec/bogusField") in found, (r["kind"], found)
