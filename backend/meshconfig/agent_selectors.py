"""Reads for the agent API's hot path: every poll of every agent, and a thousand at once after
a rollout. Small queries, and two in-process caches:

- a token's cluster (id, org, name) for 10 s, as long as tenancy caches the token itself: a
  revoked or rotated token is refused by ``access.py`` before this is asked;
- revisions by id: they are append-only and never change, so a thousand woken agents read a
  new revision's resources once, not a thousand times.

Semantics are those of ``selectors.cluster_for_token`` and ``selectors.bundle_for_cluster``
(tested alike in tests/meshconfig/test_agent_live.py).
"""

from __future__ import annotations

from backend.meshconfig.bundle import EMPTY_DIGEST
from backend.meshconfig.models import Cluster, ClusterStatus, Revision
from backend.tenancy.models import ApiToken
from backend.tenancy.ttlcache import TTLCache

_clusters: TTLCache[int, Cluster] = TTLCache(ttl=10.0)
_revisions: TTLCache[int, tuple[int, str, list[dict]]] = TTLCache(ttl=3600.0, max_entries=256)


def agent_cluster(*, token: ApiToken | None) -> Cluster | None:
    """The cluster whose agent token this is (only its id, org and name loaded), or None."""
    if token is None or token.pk is None:
        return None
    cluster = _clusters.get(token.pk)
    if cluster is None:
        cluster = (
            Cluster.objects.for_org(token.org_id)
            .only("id", "org_id", "name", "agent_token_id")
            .filter(agent_token_id=token.pk)
            .first()
        )
        if cluster is None:
            return None
        _clusters.set(token.pk, cluster)
    return cluster


def agent_bundle(*, cluster: Cluster) -> tuple[int | None, str, list[dict]]:
    """(desired revision number or None, digest, resources) of the cluster."""
    desired_id = (
        ClusterStatus.objects.for_org(cluster.org_id)
        .filter(cluster_id=cluster.pk)
        .values_list("desired_id", flat=True)
        .first()
    )
    if desired_id is None:
        return None, EMPTY_DIGEST, []
    revision = _revisions.get(desired_id)
    if revision is None:
        revision = (
            Revision.objects.for_org(cluster.org_id)
            .filter(pk=desired_id)
            .values_list("number", "digest", "resources")
            .get()
        )
        _revisions.set(desired_id, revision)
    return revision


def agent_bundles(*, org_id: int, cluster_ids: list[int]) -> dict[int, tuple]:
    """``agent_bundle`` of many clusters of one org in two queries at most (what a rollout's
    notification wakes)."""
    desired = dict(
        ClusterStatus.objects.for_org(org_id)
        .filter(cluster_id__in=cluster_ids)
        .values_list("cluster_id", "desired_id")
    )
    missing = {d for d in desired.values() if d is not None and _revisions.get(d) is None}
    if missing:
        for pk, *revision in (
            Revision.objects.for_org(org_id)
            .filter(pk__in=missing)
            .values_list("pk", "number", "digest", "resources")
        ):
            _revisions.set(pk, tuple(revision))
    out = {}
    for cluster_id, desired_id in desired.items():
        revision = _revisions.get(desired_id) if desired_id is not None else None
        if desired_id is None:
            out[cluster_id] = (None, EMPTY_DIGEST, [])
        elif revision is not None:
            out[cluster_id] = revision
    return out


def caches_clear() -> None:
    _clusters.clear()
    _revisions.clear()
