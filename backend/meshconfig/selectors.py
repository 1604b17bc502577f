"""Reads of the mesh configuration room (for the APIs, the agent API and the dashboard)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Func, IntegerField, Prefetch
from django.utils import timezone

from backend.meshconfig.bundle import EMPTY_DIGEST
from backend.meshconfig.findings import Known, Workload
from backend.meshconfig.hosts import DOMAIN, fqdn, wildcard_covers
from backend.meshconfig.models import (
    AgentReport,
    Cluster,
    ClusterStatus,
    Revision,
    SyncState,
    TelemetrySettings,
)
from backend.metrics.models import Series
from backend.metrics.storage.catalog import label_pairs_by_id
from backend.tenancy.models import ApiToken, Organization
from backend.tracing.selectors import services_list


def _with_status(org: Organization | int) -> tuple[Prefetch, ...]:
    """A cluster's status and its desired and applied revisions, each read by the org
    (``WHERE org_id = … AND cluster_id IN (…)``, ``… AND id IN (…)``) rather than joined on
    ``cluster_id = id`` alone, which a distribution by ``org_id`` cannot route
    (docs/scaling.md)."""
    return (
        Prefetch("status", queryset=ClusterStatus.objects.for_org(org)),
        Prefetch("status__desired", queryset=Revision.objects.for_org(org)),
        Prefetch("status__applied", queryset=Revision.objects.for_org(org)),
    )


def _with_parent(org: Organization | int, *deferred: str) -> Prefetch:
    """A revision's parent, read by the org (see ``_with_status``)."""
    return Prefetch("parent", queryset=Revision.objects.for_org(org).defer(*deferred))


# A desired revision the agent has neither ACKed nor NACKed after this long is STALE.
STALE_AFTER = timedelta(seconds=60)
# A cluster whose agent has been silent for this many times its long-poll wait is DISCONNECTED.
DISCONNECTED_WAITS = 3
# The floor of that silence, for agents that poll without waiting.
DISCONNECTED_MIN = timedelta(seconds=30)


def cluster_for_token(*, token: ApiToken | None) -> Cluster | None:
    """The cluster whose agent token this is, or None (a user's token, or no token). The
    token's validity (revoked, expired) is checked by access.py before this is asked."""
    if token is None or token.pk is None:
        return None
    return (
        Cluster.objects.for_org(token.org_id)
        .prefetch_related(*_with_status(token.org_id))
        .filter(agent_token_id=token.pk)
        .first()
    )


def is_agent_token(token: ApiToken | None) -> bool:
    return (
        token is not None
        and Cluster.objects.for_org(token.org_id).filter(agent_token_id=token.pk).exists()
    )


def bundle_for_cluster(*, cluster: Cluster) -> tuple[Revision | None, str, list[dict]]:
    """The bundle the cluster should run: (desired revision or None, its digest, its
    resources). With no desired revision: (None, EMPTY_DIGEST, [])."""
    status = (
        ClusterStatus.objects.for_org(cluster.org_id)
        .prefetch_related(Prefetch("desired", queryset=Revision.objects.for_org(cluster.org_id)))
        .filter(cluster_id=cluster.pk)
        .first()
    )
    revision = status.desired if status else None
    if revision is None:
        return None, EMPTY_DIGEST, []
    return revision, revision.digest, revision.resources


def cluster_state(status: ClusterStatus, now: datetime | None = None) -> str:
    """The state to show: the stored one, made DISCONNECTED by silence and STALE by an
    unanswered desired revision."""
    now = now or timezone.now()
    if status.last_seen is None:
        return SyncState.DISCONNECTED
    silence = max(
        DISCONNECTED_MIN, timedelta(seconds=DISCONNECTED_WAITS * status.poll_wait_seconds)
    )
    if now - status.last_seen > silence:
        return SyncState.DISCONNECTED
    if _in_sync(status):
        return SyncState.SYNCED
    if status.state == SyncState.NACK:
        return SyncState.NACK
    if status.desired_at is not None and now - status.desired_at > STALE_AFTER:
        return SyncState.STALE
    return SyncState.APPLYING


def _in_sync(status: ClusterStatus) -> bool:
    desired = status.desired.digest if status.desired_id else EMPTY_DIGEST
    if status.applied_id is None:
        # Nothing applied yet: in sync only while nothing is desired and the agent said so.
        return status.desired_id is None and status.state == SyncState.SYNCED
    return status.applied.digest == desired


@dataclass(frozen=True)
class ClusterView:
    cluster: Cluster
    status: ClusterStatus
    state: str

    @property
    def desired(self) -> int | None:
        return self.status.desired.number if self.status.desired_id else None

    @property
    def applied(self) -> int | None:
        return self.status.applied.number if self.status.applied_id else None

    def as_dict(self) -> dict:
        status = self.status
        return {
            "name": self.cluster.name,
            "labels": self.cluster.labels,
            "desired": self.desired,
            "applied": self.applied,
            "state": self.state,
            "last_seen": status.last_seen.isoformat() if status.last_seen else None,
            "agent_version": status.agent_version,
            "error": status.error or None,
        }


def clusters_list(*, org: Organization | int, now: datetime | None = None) -> list[ClusterView]:
    now = now or timezone.now()
    rows = Cluster.objects.for_org(org).prefetch_related(*_with_status(org)).order_by("name")
    return [
        ClusterView(cluster=c, status=c.status, state=cluster_state(c.status, now)) for c in rows
    ]


def cluster_get(*, org: Organization | int, name: str) -> Cluster | None:
    return (
        Cluster.objects.for_org(org).prefetch_related(*_with_status(org)).filter(name=name).first()
    )


def status_summary(*, org: Organization | int, now: datetime | None = None) -> dict:
    views = clusters_list(org=org, now=now)
    return {
        "clusters": [v.as_dict() for v in views],
        "synced": sum(1 for v in views if v.state == SyncState.SYNCED),
        "total": len(views),
    }


def revision_head(*, org: Organization | int) -> Revision | None:
    return Revision.objects.for_org(org).order_by("-number").first()


def revision_get(
    *, org: Organization | int, number: int, with_parent: bool = False
) -> Revision | None:
    """The org's revision of this number; ``with_parent``: its parent read too, by the org
    (``rev.parent`` alone would read it by id)."""
    qs = Revision.objects.for_org(org).filter(number=number)
    if with_parent:
        qs = qs.prefetch_related(_with_parent(org, "resources", "validation"))
    return qs.first()


def revisions_list(
    *,
    org: Organization | int,
    limit: int = 100,
    before: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    with_resources: bool = True,
):
    """The org's revisions, newest first; ``since``/``until`` bound their creation time
    (both inclusive). Without ``with_resources``, neither their resources nor their parents'
    are read (``revisions_resources`` reads them): each has ``n_resources``, their count."""
    # author and author_token are reference tables (users, tokens): joined anywhere.
    qs = Revision.objects.for_org(org).select_related("author", "author_token")
    if not with_resources:
        qs = qs.prefetch_related(_with_parent(org, "resources", "validation"))
        qs = qs.defer("resources").annotate(
            n_resources=Func(
                F("resources"), function="jsonb_array_length", output_field=IntegerField()
            )
        )
    else:
        qs = qs.prefetch_related(_with_parent(org))
    if before is not None:
        qs = qs.filter(number__lt=before)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lte=until)
    return list(qs.order_by("-number")[:limit])


def revisions_resources(*, org: Organization | int, ids) -> dict[int, list[dict]]:
    """{revision id: its resources} for these revisions of the org."""
    return dict(
        Revision.objects.for_org(org).filter(pk__in=list(ids)).values_list("pk", "resources")
    )


# Kinds whose resource without a workload selector applies to every workload of its namespace.
_NAMESPACE_WIDE = frozenset(
    {"AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication", "Sidecar", "Telemetry"}
)
# Revisions looked at, at most, for one service's markers.
TOUCHING_SCAN = 500


def _hosts_in(value):
    """Every host a resource's spec names: ``hosts`` lists, and ``host`` keys at any depth
    (a DestinationRule's host, route destinations, mirrors)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "host" and isinstance(item, str):
                yield item
            elif key == "hosts" and isinstance(item, list):
                yield from (h for h in item if isinstance(h, str))
            else:
                yield from _hosts_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _hosts_in(item)


def _selector_labels(spec: dict) -> dict | None:
    """The workload labels a resource selects (None: it has no selector)."""
    for key in ("selector", "workloadSelector"):
        sel = spec.get(key)
        if isinstance(sel, dict):
            labels = sel.get("matchLabels", sel.get("labels", sel))
            return labels if isinstance(labels, dict) else {}
    return None


def resource_touches(resource: dict, *, namespace: str, service: str) -> bool:
    """Whether an Istio resource configures the service ``service`` of ``namespace`` (its
    workloads labelled ``app: service``): it names the service's host (short, namespaced
    or FQDN, or a wildcard over the namespace), or it is in that namespace and selects
    ``app=service`` — or selects nothing and is of a kind that then applies to the whole
    namespace (policies, Sidecar, Telemetry)."""
    meta = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    if not isinstance(spec, dict):
        return False
    own_ns = meta.get("namespace") or "default"
    target = f"{service}.{namespace}.{DOMAIN}"
    for host in _hosts_in(spec):
        resolved = fqdn(host, own_ns, frozenset({namespace, own_ns}))
        if resolved == target or (resolved.startswith("*.") and wildcard_covers(resolved, target)):
            return True
    if own_ns != namespace:
        return False
    labels = _selector_labels(spec)
    if labels is None:
        return resource.get("kind") in _NAMESPACE_WIDE
    return labels.get("app") == service


def _key(resource: dict) -> tuple:
    meta = resource.get("metadata") or {}
    return (resource.get("kind"), meta.get("namespace") or "default", meta.get("name"))


def revision_touched(
    rev: Revision, *, namespace: str, service: str, parent: Revision | None = None
) -> list[str]:
    """The resources this revision added, changed or removed (against its parent, which
    ``parent`` may give already read) that touch the service, as ``Kind namespace/name``; []
    when it left the service alone."""
    if parent is None and rev.parent_id:
        parent = Revision.objects.for_org(rev.org_id).filter(pk=rev.parent_id).first()
    before = {_key(r): r for r in (parent.resources if parent is not None else [])}
    after = {_key(r): r for r in rev.resources}
    touched = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: tuple(map(str, k))):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if any(
            r is not None and resource_touches(r, namespace=namespace, service=service)
            for r in (old, new)
        ):
            touched.append(f"{key[0]} {key[1]}/{key[2]}")
    return touched


def revisions_touching(
    *,
    org: Organization | int,
    namespace: str,
    service: str,
    limit: int = 100,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[Revision, list[str]]]:
    """The org's revisions in the window (the newest ``TOUCHING_SCAN`` of them) that changed
    a resource touching the service, newest first, each with what it touched."""
    found = []
    revs = list(
        Revision.objects.for_org(org)
        .filter(**{k: v for k, v in (("created_at__gte", since), ("created_at__lte", until)) if v})
        .select_related("author", "author_token")
        .order_by("-number")[:TOUCHING_SCAN]
    )
    by_id = {rev.pk: rev for rev in revs}
    # a revision's parent is mostly the next one in the list: its bundle is read once; the
    # others (the oldest's) in one read by the org
    outside = {rev.parent_id for rev in revs if rev.parent_id and rev.parent_id not in by_id}
    if outside:
        by_id.update(
            (p.pk, p)
            for p in Revision.objects.for_org(org)
            .filter(pk__in=outside)
            .only("id", "org_id", "number", "resources")
        )
    for rev in revs:
        parent = None
        if rev.parent_id:
            parent = rev.parent = by_id[rev.parent_id]  # cached: the summary reads its number
        touched = revision_touched(rev, namespace=namespace, service=service, parent=parent)
        if touched:
            found.append((rev, touched))
            if len(found) >= limit:
                break
    return found


def agent_reports(*, cluster: Cluster, limit: int = 20) -> list[AgentReport]:
    return list(
        AgentReport.objects.for_org(cluster.org_id)
        .filter(cluster=cluster)
        .prefetch_related(Prefetch("revision", queryset=Revision.objects.for_org(cluster.org_id)))
        .order_by("-created_at", "-id")[:limit]
    )


def telemetry_get(*, org: Organization | int) -> TelemetrySettings:
    """The org's telemetry settings (defaults when never saved; not stored by this read)."""
    org_id = org if isinstance(org, int) else org.pk
    found = TelemetrySettings.objects.for_org(org_id).first()
    return found or TelemetrySettings(org_id=org_id)


# Istio's standard metrics, whose series name services and workloads on both sides.
ISTIO_METRICS = (
    "istio_requests_total",
    "istio_tcp_connections_opened_total",
    "istio_tcp_sent_bytes_total",
)
_SIDES = ("source", "destination")
MAX_SERIES_READ = 20_000


def known_for_org(*, org: Organization | int) -> Known:
    """What Canopy knows of the tenant's mesh, for validation:

    - services: ``destination_service`` values of Istio's standard metrics (FQDNs such as
      ``reviews.bookinfo.svc.cluster.local``) and trace service names (Istio names a proxy's
      spans ``<app>.<namespace>``; a name without a dot counts in any namespace);
    - workloads: ``{source,destination}_workload`` with their namespace and the ``app`` and
      ``version`` labels the metrics carry, and the services they served;
    - namespaces: every workload and service namespace seen.

    Reads at most MAX_SERIES_READ series (newest first)."""
    org_id = org if isinstance(org, int) else org.pk
    rows = list(
        Series.objects.for_org(org_id)
        .filter(metric_name__in=ISTIO_METRICS)
        .order_by("-id")
        .values_list("label_ids", flat=True)[:MAX_SERIES_READ]
    )
    ids = {i for label_ids in rows for i in label_ids}
    with connection.cursor() as cur:
        pairs = label_pairs_by_id(cur, org_id, ids) if ids else {}
    services: set[str] = set()
    namespaces: set[str] = set()
    workloads: dict[tuple[str, str], tuple[dict, set]] = {}
    for label_ids in rows:
        labels = dict(pairs[i] for i in label_ids if i in pairs)
        service = labels.get("destination_service", "")
        if service and service != "unknown":
            services.add(service)
        for side in _SIDES:
            name = labels.get(f"{side}_workload", "")
            namespace = labels.get(f"{side}_workload_namespace", "")
            if not name or name == "unknown" or not namespace:
                continue
            namespaces.add(namespace)
            wl_labels = {
                k: labels[f"{side}_{k}"]
                for k in ("app", "version")
                if labels.get(f"{side}_{k}") not in (None, "", "unknown")
            }
            entry = workloads.setdefault((namespace, name), (wl_labels, set()))
            if side == "destination" and service:
                entry[1].add(service)
    for service in services:
        if service.endswith("." + DOMAIN):
            namespaces.add(service.split(".")[1])
    for name in services_list(org_id=org_id):
        parts = name.lower().split(".")
        if len(parts) == 2:
            services.add(f"{parts[0]}.{parts[1]}.{DOMAIN}")
            namespaces.add(parts[1])
        elif len(parts) == 1 and parts[0]:
            services.add(f"{parts[0]}.*")
    return Known(
        services=frozenset(services),
        namespaces=frozenset(namespaces),
        workloads=tuple(
            Workload(namespace=ns, name=name, labels=labels, services=frozenset(served))
            for (ns, name), (labels, served) in sorted(workloads.items())
        ),
    )


def agent_command(*, secret: str) -> str:
    """The command that runs a cluster's agent, as the dashboard and the API print it: straight
    to the agent server (``CANOPY_AGENT_PUBLIC_URL``), where long polls hold no web thread."""
    return (
        f"canopy-agent --url {settings.AGENT_PUBLIC_URL} --token {secret}"
        " --dir ./canopy-mesh-config"
    )
