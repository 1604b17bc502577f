"""Cross-resource checks with Kiali's (KIA) and istioctl analyze's (IST) codes, messages and
field paths, as gathered in ``ISTIO-VALIDATION.md``. Severities follow Kiali, except that
anything that would break traffic once applied is an error in Canopy: KIA1101, KIA1102,
KIA1107, KIA0202, IST0106 and the mTLS conflicts KIA0205-KIA0208.

Each check takes the ``Mesh`` (the bundle indexed, plus what Canopy knows) and yields findings.
Only resources that passed structural validation are checked."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import re2

from backend.meshconfig.bundle import resource_key
from backend.meshconfig.findings import ERROR, INFO, WARNING, Finding, Known, finding
from backend.meshconfig.hosts import (
    DOMAIN,
    fqdn,
    hosts_overlap,
    is_wildcard,
    namespace_of,
    service_entry_covers,
    short_name,
    wildcard_covers,
)

ROUTE_KINDS = ("http", "tcp", "tls")


def _ns(resource: dict) -> str:
    return resource_key(resource)[1]


def _spec(resource: dict) -> dict:
    spec = resource.get("spec")
    return spec if isinstance(spec, dict) else {}


@dataclass
class Mesh:
    resources: list[dict]
    known: Known
    by_kind: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    namespaces: set[str] = field(default_factory=set)
    registry_empty: bool = False

    def __post_init__(self):
        for r in self.resources:
            self.by_kind[r.get("kind")].append(r)
        self.namespaces = set(self.known.namespaces) | {_ns(r) for r in self.resources}
        self.namespaces |= {namespace_of(s) for s in self.known.services} - {None}
        self.registry_empty = self.known.empty and not self.by_kind["ServiceEntry"]

    def fqdn(self, host: str, namespace: str) -> str:
        return fqdn(host, namespace, self.namespaces)

    def se_hosts(self) -> Iterator[str]:
        for se in self.by_kind["ServiceEntry"]:
            for host in _spec(se).get("hosts") or []:
                if isinstance(host, str):
                    yield host.lower()

    def service_exists(self, host: str) -> bool:
        """Kiali's KIA1101 lookup: a ServiceEntry host or a known service."""
        if any(service_entry_covers(se, host) for se in self.se_hosts()):
            return True
        if host in self.known.services:
            return True
        # Trace service names carry a short name only ("reviews" without a namespace).
        return f"{short_name(host)}.*" in self.known.services and namespace_of(host) is not None

    def workloads_in(self, namespace: str) -> list:
        return [w for w in self.known.workloads if w.namespace == namespace]

    def gateways(self) -> set[tuple[str, str]]:
        return {(_ns(g), resource_key(g)[2]) for g in self.by_kind["Gateway"]}

    def dr_subsets(self) -> dict[str, set[str]]:
        """FQDN host (resolved in the DR's namespace) -> the subset names DRs define."""
        out: dict[str, set[str]] = defaultdict(set)
        for dr in self.by_kind["DestinationRule"]:
            spec = _spec(dr)
            host = self.fqdn(str(spec.get("host") or ""), _ns(dr))
            for subset in spec.get("subsets") or []:
                if isinstance(subset, dict) and subset.get("name"):
                    out[host].add(subset["name"])
        return out

    def not_found(self, message: str) -> str:
        if self.registry_empty:
            return message + " (Canopy has no Istio metrics or traces of this org yet: a warning)"
        return message

    def not_found_severity(self, severity: str) -> str:
        """Host lookups against an empty registry (no metrics, no traces, no ServiceEntry yet)
        would fail for every host: they warn instead of blocking."""
        return WARNING if self.registry_empty else severity


def _routes(vs: dict) -> Iterator[tuple[str, list]]:
    """(path of the route list, the route list) for every http/tcp/tls rule."""
    spec = _spec(vs)
    for kind in ROUTE_KINDS:
        for i, rule in enumerate(spec.get(kind) or []):
            if isinstance(rule, dict) and isinstance(rule.get("route"), list):
                yield f"spec/{kind}[{i}]", rule["route"]


# ---- VirtualService --------------------------------------------------------------------------


def check_route_hosts(mesh: Mesh) -> Iterator[Finding]:
    """KIA1101: a route destination's host is not found; KIA1107: its subset is not defined by
    any DestinationRule for that host."""
    subsets = mesh.dr_subsets()
    for vs in mesh.by_kind["VirtualService"]:
        ns = _ns(vs)
        for path, route in _routes(vs):
            for j, dest in enumerate(route):
                destination = dest.get("destination") if isinstance(dest, dict) else None
                if not isinstance(destination, dict) or not destination.get("host"):
                    continue
                host = mesh.fqdn(str(destination["host"]), ns)
                if not mesh.service_exists(host):
                    yield finding(
                        vs,
                        "KIA1101",
                        mesh.not_found_severity(ERROR),
                        f"{path}/route[{j}]/destination/host",
                        mesh.not_found(
                            "DestinationWeight on route doesn't have a valid service "
                            "(host not found)"
                        ),
                    )
                subset = destination.get("subset")
                if subset and subset not in subsets.get(host, set()):
                    yield finding(
                        vs,
                        "KIA1107",
                        ERROR,
                        f"{path}/route[{j}]/destination",
                        f"Subset not found: no DestinationRule for {host} defines subset "
                        f"{subset!r}",
                    )


def _gateway_ref(ref: str, vs_ns: str) -> tuple[str, str]:
    if "/" in ref:
        ns, _, name = ref.partition("/")
        return ns, name
    if "." in ref:  # legacy name.ns or name.ns.svc.cluster.local
        parts = ref.split(".")
        return parts[1], parts[0]
    return vs_ns, ref


def check_gateway_refs(mesh: Mesh) -> Iterator[Finding]:
    """KIA1102: a VirtualService names a Gateway that does not exist."""
    gateways = mesh.gateways()
    for vs in mesh.by_kind["VirtualService"]:
        ns, spec = _ns(vs), _spec(vs)
        refs = [(f"spec/gateways[{i}]", g) for i, g in enumerate(spec.get("gateways") or [])]
        for i, rule in enumerate(spec.get("http") or []):
            for k, match in enumerate((rule or {}).get("match") or []):
                for j, g in enumerate((match or {}).get("gateways") or []):
                    refs.append((f"spec/http[{i}]/match[{k}]/gateways[{j}]", g))
        for path, ref in refs:
            if not isinstance(ref, str) or ref == "mesh":
                continue
            if "." in ref and "/" not in ref:
                ns_name = "/".join(_gateway_ref(ref, ns))
                message = f"Preferred nomenclature: <gateway namespace>/<gateway name> ({ns_name})"
                yield finding(vs, "KIA1108", INFO, path, message)
            if _gateway_ref(ref, ns) not in gateways:
                yield finding(
                    vs,
                    "KIA1102",
                    ERROR,
                    path,
                    "VirtualService is pointing to a non-existent gateway",
                )


def check_weights(mesh: Mesh) -> Iterator[Finding]:
    """KIA1104: a single destination with 0 < weight < 100; IST0106: several destinations
    whose weights total 0; KIA1105: the same host+subset twice in one route."""
    for vs in mesh.by_kind["VirtualService"]:
        ns = _ns(vs)
        for path, route in _routes(vs):
            dests = [d for d in route if isinstance(d, dict)]
            weights = [d.get("weight") or 0 for d in dests]
            if len(dests) == 1 and isinstance(weights[0], int) and 0 < weights[0] < 100:
                yield finding(
                    vs,
                    "KIA1104",
                    WARNING,
                    f"{path}/route[0]/weight",
                    "The weight is assumed to be 100 because there is only one route destination",
                )
            if len(dests) > 1 and all(isinstance(w, int) for w in weights) and sum(weights) == 0:
                yield finding(
                    vs,
                    "IST0106",
                    ERROR,
                    f"{path}/route",
                    "Schema validation error: total destination weight = 0 (give the "
                    "destinations weights)",
                )
            seen: dict[tuple[str, str], list[int]] = defaultdict(list)
            for j, d in enumerate(dests):
                destination = d.get("destination") or {}
                if isinstance(destination, dict) and destination.get("host"):
                    key = (mesh.fqdn(str(destination["host"]), ns), destination.get("subset") or "")
                    seen[key].append(j)
            for indexes in seen.values():
                if len(indexes) > 1:
                    for j in indexes:
                        yield finding(
                            vs,
                            "KIA1105",
                            WARNING,
                            f"{path}/route[{j}]/host",
                            "This host subset combination is already referenced in another "
                            "route destination",
                        )


_STRING_MATCH_FIELDS = ("uri", "scheme", "method", "authority")
_STRING_MATCH_MAPS = ("headers", "queryParams", "withoutHeaders")


def _regexes(match: dict, base: str) -> Iterator[tuple[str, str]]:
    for key in _STRING_MATCH_FIELDS:
        value = match.get(key)
        if isinstance(value, dict) and isinstance(value.get("regex"), str):
            yield f"{base}/{key}/regex", value["regex"]
    for key in _STRING_MATCH_MAPS:
        mapping = match.get(key)
        if isinstance(mapping, dict):
            for name, value in mapping.items():
                if isinstance(value, dict) and isinstance(value.get("regex"), str):
                    yield f"{base}/{key}/{name}/regex", value["regex"]


def check_regexes(mesh: Mesh) -> Iterator[Finding]:
    """IST0106: a match regex that RE2 (Envoy's engine) does not accept."""
    options = re2.Options()
    options.log_errors = False
    for vs in mesh.by_kind["VirtualService"]:
        spec = _spec(vs)
        candidates: list[tuple[str, str]] = []
        for i, rule in enumerate(spec.get("http") or []):
            if not isinstance(rule, dict):
                continue
            for k, match in enumerate(rule.get("match") or []):
                if isinstance(match, dict):
                    candidates.extend(_regexes(match, f"spec/http[{i}]/match[{k}]"))
            origins = (rule.get("corsPolicy") or {}).get("allowOrigins") or []
            for k, origin in enumerate(origins):
                if isinstance(origin, dict) and isinstance(origin.get("regex"), str):
                    candidates.append(
                        (f"spec/http[{i}]/corsPolicy/allowOrigins[{k}]/regex", origin["regex"])
                    )
        for path, pattern in candidates:
            try:
                re2.compile(pattern, options)
            except re2.error as exc:
                yield finding(
                    vs,
                    "IST0106",
                    ERROR,
                    path,
                    f"Schema validation error: {pattern!r} is not a valid RE2 regex ({exc})",
                )


def _match_key(match) -> str:
    if not isinstance(match, dict):
        return json.dumps(match, sort_keys=True)
    return json.dumps({k: v for k, v in match.items() if k != "name"}, sort_keys=True)


def _uri_prefix(match) -> str | None:
    """The URI prefix of a match that tests nothing else."""
    if not isinstance(match, dict):
        return None
    rest = {k: v for k, v in match.items() if k != "name"}
    uri = rest.pop("uri", None)
    if rest or not isinstance(uri, dict) or set(uri) != {"prefix"}:
        return None
    return uri["prefix"] if isinstance(uri["prefix"], str) else None


def check_shadowed_routes(mesh: Mesh) -> Iterator[Finding]:
    """IST0130: a rule that can never match (after a catch-all rule, or all of its matches seen
    before); IST0131: a match identical to an earlier one, or whose URI prefix an earlier
    prefix match already covers."""
    for vs in mesh.by_kind["VirtualService"]:
        rules = _spec(vs).get("http") or []
        catch_all_at = None
        earlier: list[tuple[int, int, object]] = []
        for i, rule in enumerate(rules):
            if not isinstance(rule, dict):
                continue
            matches = rule.get("match") or []
            if catch_all_at is not None:
                yield finding(
                    vs,
                    "IST0130",
                    WARNING,
                    f"spec/http[{i}]",
                    f"VirtualService rule #{i} not used (only the last rule can have no matches "
                    f"for it to be reachable; rule #{catch_all_at} has none)",
                )
                continue
            if not matches:
                catch_all_at = i
                continue
            shadowed = []
            for k, match in enumerate(matches):
                key, prefix = _match_key(match), _uri_prefix(match)
                for ei, ek, emat in earlier:
                    eprefix = _uri_prefix(emat)
                    if _match_key(emat) == key:
                        shadowed.append((k, f"identical to match #{ek} of rule #{ei}"))
                        break
                    if prefix is not None and eprefix is not None and prefix.startswith(eprefix):
                        shadowed.append(
                            (k, f"its URI prefix {prefix!r} overlaps rule #{ei}'s {eprefix!r}")
                        )
                        break
            if shadowed and len(shadowed) == len(matches):
                yield finding(
                    vs,
                    "IST0130",
                    WARNING,
                    f"spec/http[{i}]",
                    f"VirtualService rule #{i} not used (every match of it is matched before)",
                )
            else:
                for k, why in shadowed:
                    yield finding(
                        vs,
                        "IST0131",
                        INFO,
                        f"spec/http[{i}]/match[{k}]",
                        f"VirtualService rule #{i} match #{k} is not used: {why}",
                    )
            earlier.extend((i, k, m) for k, m in enumerate(matches))


def check_duplicate_vs_hosts(mesh: Mesh) -> Iterator[Finding]:
    """KIA1106 (istioctl: IST0109 for mesh-bound VirtualServices): more than one
    VirtualService for the same host on the same gateway."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for vs in mesh.by_kind["VirtualService"]:
        spec, ns = _spec(vs), _ns(vs)
        keys = spec.get("gateways") or ["no-gateway"]
        hosts = {mesh.fqdn(str(h), ns) for h in spec.get("hosts") or [] if isinstance(h, str)}
        for gw in keys:
            gw_key = gw if gw in ("mesh", "no-gateway") else "/".join(_gateway_ref(str(gw), ns))
            for host in hosts:
                groups[(gw_key, host)].append(vs)
    flagged = set()
    for (gw_key, host), members in groups.items():
        if len(members) < 2:
            continue
        for vs in members:
            key = (*resource_key(vs), host)
            if key in flagged:
                continue
            flagged.add(key)
            yield finding(
                vs,
                "KIA1106",
                WARNING,
                "spec/hosts",
                f"More than one Virtual Service for same host ({host} on {gw_key}"
                + ("; istioctl: IST0109" if gw_key in ("mesh", "no-gateway") else "")
                + ")",
            )


# ---- DestinationRule -------------------------------------------------------------------------


def _dr_host_exists(mesh: Mesh, host: str, namespace: str) -> bool:
    if is_wildcard(host) or mesh.service_exists(host):
        return True
    app = short_name(host)
    return any(w.labels.get("app") == app for w in mesh.workloads_in(namespace))


def _routed_subsets(mesh: Mesh) -> set[tuple[str, str]]:
    out = set()
    for vs in mesh.by_kind["VirtualService"]:
        for _, route in _routes(vs):
            for dest in route:
                destination = dest.get("destination") if isinstance(dest, dict) else None
                if isinstance(destination, dict) and destination.get("subset"):
                    out.add(
                        (mesh.fqdn(str(destination.get("host")), _ns(vs)), destination["subset"])
                    )
    return out


def check_destination_rules(mesh: Mesh) -> Iterator[Finding]:
    """KIA0202: the DestinationRule's host is not found; KIA0203: a subset's labels match no
    known workload of that host (Info when no route uses the subset)."""
    routed = _routed_subsets(mesh)
    for dr in mesh.by_kind["DestinationRule"]:
        spec, ns = _spec(dr), _ns(dr)
        raw = spec.get("host")
        if not isinstance(raw, str):
            continue
        host = mesh.fqdn(raw, ns)
        if not _dr_host_exists(mesh, host, ns):
            yield finding(
                dr,
                "KIA0202",
                mesh.not_found_severity(ERROR),
                "spec/host",
                mesh.not_found(
                    "This host has no matching entry in the service registry (service, "
                    "workload or service entries)"
                ),
            )
            continue
        host_ns = namespace_of(host)
        backing = [w for w in mesh.known.workloads if host in w.services]
        if not backing and host_ns:
            backing = [
                w for w in mesh.workloads_in(host_ns) if w.labels.get("app") == short_name(host)
            ]
        if not backing:
            continue  # nothing known of the host's workloads: cannot judge the subsets
        for i, subset in enumerate(spec.get("subsets") or []):
            labels = (subset or {}).get("labels") or {}
            if not labels or not set(labels) <= mesh.known.workload_label_names:
                continue
            if not any(all(w.labels.get(k) == v for k, v in labels.items()) for w in backing):
                used = (host, subset.get("name")) in routed
                yield finding(
                    dr,
                    "KIA0203",
                    ERROR if used else INFO,
                    f"spec/subsets[{i}]",
                    "This subset's labels are not found in any matching host",
                )


def check_subset_labels(mesh: Mesh) -> Iterator[Finding]:
    """KIA0209: a subset without labels (Info when a sibling subset has labels)."""
    for dr in mesh.by_kind["DestinationRule"]:
        subsets = [s for s in _spec(dr).get("subsets") or [] if isinstance(s, dict)]
        labelled = any(s.get("labels") for s in subsets)
        for i, subset in enumerate(subsets):
            if not subset.get("labels"):
                yield finding(
                    dr,
                    "KIA0209",
                    INFO if labelled else WARNING,
                    f"spec/subsets[{i}]",
                    "This subset has not labels",
                )


def _overlapping_hosts(a: str, b: str) -> bool:
    return a == b or ((is_wildcard(a) or is_wildcard(b)) and hosts_overlap(a, b))


def _mesh_wide_mutual(dr: dict) -> bool:
    spec = _spec(dr)
    host = str(spec.get("host") or "")
    mode = ((spec.get("trafficPolicy") or {}).get("tls") or {}).get("mode")
    return mode == "ISTIO_MUTUAL" and (host == "*.local" or host.endswith("." + DOMAIN))


def check_multiple_destination_rules(mesh: Mesh) -> Iterator[Finding]:
    """KIA0201: more than one DestinationRule for the same host and subset."""
    entries = []
    for dr in mesh.by_kind["DestinationRule"]:
        if _mesh_wide_mutual(dr) and "*" in str(_spec(dr).get("host")):
            continue
        spec = _spec(dr)
        host = mesh.fqdn(str(spec.get("host") or ""), _ns(dr))
        names = {s.get("name") for s in spec.get("subsets") or [] if isinstance(s, dict)}
        entries.append((dr, host, names))
    for i, (dr, host, names) in enumerate(entries):
        for j, (other, ohost, onames) in enumerate(entries):
            if i == j or not _overlapping_hosts(host, ohost):
                continue
            # A DestinationRule without subsets covers the whole host.
            if not names or not onames or names & onames:
                yield finding(
                    dr,
                    "KIA0201",
                    WARNING,
                    "spec/host",
                    "More than one DestinationRules for the same host subset combination "
                    f"(also {resource_key(other)[1]}/{resource_key(other)[2]})",
                )
                break


# ---- mTLS --------------------------------------------------------------------------------


def _pa_mode(pa: dict) -> str | None:
    return ((_spec(pa).get("mtls") or {}).get("mode")) or None


def _selectorless(resource: dict) -> bool:
    selector = _spec(resource).get("selector") or {}
    return not (selector.get("matchLabels") if isinstance(selector, dict) else None)


def check_mtls(mesh: Mesh) -> Iterator[Finding]:
    """KIA0205-KIA0208: DestinationRule TLS modes that contradict PeerAuthentications."""
    root = mesh.known.root_namespace
    pas = [pa for pa in mesh.by_kind["PeerAuthentication"] if _selectorless(pa)]
    mesh_pa = [pa for pa in pas if _ns(pa) == root]
    path = "spec/trafficPolicy/tls/mode"
    for dr in mesh.by_kind["DestinationRule"]:
        spec, ns = _spec(dr), _ns(dr)
        host = str(spec.get("host") or "")
        mode = ((spec.get("trafficPolicy") or {}).get("tls") or {}).get("mode")
        ns_wide = host.startswith("*.") and host.endswith("." + DOMAIN)
        host_ns = host[2 : -len(DOMAIN) - 1] if ns_wide else None
        ns_pa = [pa for pa in pas if _ns(pa) in (host_ns, ns)]
        if mode == "ISTIO_MUTUAL" and not mesh.known.auto_mtls:
            enabling = ("STRICT", "PERMISSIVE")
            if host == "*.local" and not any(_pa_mode(pa) in enabling for pa in mesh_pa):
                yield finding(
                    dr,
                    "KIA0205",
                    ERROR,
                    path,
                    "PeerAuthentication enabling mTLS at mesh level is missing",
                )
            elif ns_wide and not any(_pa_mode(pa) in enabling for pa in ns_pa + mesh_pa):
                yield finding(
                    dr,
                    "KIA0206",
                    ERROR,
                    path,
                    "PeerAuthentication enabling namespace-wide mTLS is missing",
                )
        if mode == "DISABLE":
            if ns_wide and any(_pa_mode(pa) == "STRICT" for pa in ns_pa if _ns(pa) != root):
                yield finding(
                    dr,
                    "KIA0207",
                    ERROR,
                    path,
                    "PeerAuthentication with TLS strict mode found, it should be permissive",
                )
            elif any(_pa_mode(pa) == "STRICT" for pa in mesh_pa):
                yield finding(
                    dr,
                    "KIA0208",
                    ERROR,
                    path,
                    "PeerAuthentication enabling mTLS found, permissive mode needed",
                )


# ---- Gateway, Sidecar ------------------------------------------------------------------------


def _gateway_host(host: str) -> tuple[str, str]:
    ns, sep, name = host.partition("/")
    return (ns, name.lower()) if sep else ("*", host.lower())


def _gateway_hosts_collide(a: str, b: str) -> bool:
    (ans, ah), (bns, bh) = _gateway_host(a), _gateway_host(b)
    if ans not in ("*", ".", bns) and bns not in ("*", "."):
        return False
    if ah == bh:
        return True
    if ah.startswith("*.") and bh.startswith("*."):
        return False
    return ah == "*" or bh == "*" or wildcard_covers(ah, bh) or wildcard_covers(bh, ah)


def check_gateways(mesh: Mesh) -> Iterator[Finding]:
    """KIA0301 (istioctl: IST0145): more than one Gateway server for the same host and port on
    the same selector."""
    servers = []
    for gw in mesh.by_kind["Gateway"]:
        spec = _spec(gw)
        selector = json.dumps(spec.get("selector") or {}, sort_keys=True)
        for i, server in enumerate(spec.get("servers") or []):
            if not isinstance(server, dict):
                continue
            port = (server.get("port") or {}).get("number")
            for j, host in enumerate(server.get("hosts") or []):
                if isinstance(host, str):
                    servers.append((gw, (selector, port), host, f"spec/servers[{i}]/hosts[{j}]"))
    for a, (gw, key, host, path) in enumerate(servers):
        for b, (ogw, okey, ohost, _) in enumerate(servers):
            if a != b and key == okey and _gateway_hosts_collide(host, ohost):
                other = resource_key(ogw)
                yield finding(
                    gw,
                    "KIA0301",
                    WARNING,
                    path,
                    "More than one Gateway for the same host port combination "
                    f"({host} on port {key[1]}, also {other[1]}/{other[2]}; istioctl: IST0145)",
                )
                break


def check_sidecars(mesh: Mesh) -> Iterator[Finding]:
    """IST0110: two Sidecars of one namespace select the same workload (identical selectors,
    or a known workload both match); IST0111: more than one selector-less Sidecar in a
    namespace."""
    by_ns: dict[str, list[dict]] = defaultdict(list)
    for sc in mesh.by_kind["Sidecar"]:
        by_ns[_ns(sc)].append(sc)
    for ns, sidecars in by_ns.items():
        selectorless = []
        selected = []
        for sc in sidecars:
            labels = (_spec(sc).get("workloadSelector") or {}).get("labels") or {}
            (selected if labels else selectorless).append((sc, labels))
        if len(selectorless) > 1:
            for sc, _ in selectorless:
                yield finding(
                    sc,
                    "IST0111",
                    ERROR,
                    "spec",
                    f"The Sidecars {', '.join(resource_key(s)[2] for s, _ in selectorless)} in "
                    f"namespace {ns} have no workload selector: only one may",
                )
        workloads = mesh.workloads_in(ns)
        for sc, labels in selected:
            for other, olabels in selected:
                if other is sc:
                    continue
                same = labels == olabels
                compatible = all(olabels.get(k, v) == v for k, v in labels.items())
                both = compatible and any(
                    all(w.labels.get(k) == v for k, v in {**labels, **olabels}.items())
                    for w in workloads
                )
                if same or both:
                    yield finding(
                        sc,
                        "IST0110",
                        ERROR,
                        "spec/workloadSelector/labels",
                        f"The Sidecars {resource_key(sc)[2]} and {resource_key(other)[2]} in "
                        f"namespace {ns} select the same workloads",
                    )
                    break


def check_duplicates(resources: list[dict]) -> Iterator[Finding]:
    """CNP0003: the same kind, namespace and name twice in one bundle."""
    seen: set[tuple[str, str, str]] = set()
    for r in resources:
        key = resource_key(r)
        if key in seen:
            yield finding(
                r,
                "CNP0003",
                ERROR,
                "metadata/name",
                f"{key[0]} {key[1]}/{key[2]} appears more than once in the bundle",
            )
        seen.add(key)


CHECKS = (
    check_route_hosts,
    check_gateway_refs,
    check_weights,
    check_regexes,
    check_shadowed_routes,
    check_duplicate_vs_hosts,
    check_destination_rules,
    check_subset_labels,
    check_multiple_destination_rules,
    check_mtls,
    check_gateways,
    check_sidecars,
)
