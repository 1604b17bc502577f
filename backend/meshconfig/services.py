"""Writes of the mesh configuration room. Keyword-only; every publish, rollout, rollback,
forced publish and token change is audited (tenancy's ``AuditEvent``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from backend.meshconfig.bundle import (
    EMPTY_DIGEST,
    bundle_digest,
    canonical_bundle,
    resource_key,
)
from backend.meshconfig.models import (
    AgentReport,
    Cluster,
    ClusterStatus,
    Revision,
    SyncState,
    TelemetrySettings,
)
from backend.meshconfig.notify import config_changed_notify
from backend.meshconfig.telemetry import render_telemetry
from backend.meshconfig.validation import Report, validate_bundle
from backend.tenancy.models import ApiToken, Organization, Scope
from backend.tenancy.services import audit_record, token_create, token_revoke

AGENT_TOKEN_SCOPES = (Scope.CONFIG_READ, Scope.CONFIG_REPORT)
REPORTS_KEPT = 100
MAX_LABELS = 32


class MeshConfigError(ValidationError):
    """Bad input (a 400 for the APIs)."""


class StaleParent(Exception):
    """The publish named a parent that is no longer the head (a 409)."""

    def __init__(self, *, parent: int | None, head: int | None):
        super().__init__(f"parent {parent} is not the head revision (head is {head})")
        self.parent, self.head = parent, head


class Blocked(Exception):
    """Validation errors block the publish (a 422); ``report`` has the findings."""

    def __init__(self, report: Report):
        super().__init__("validation errors block publishing: " + report.summary())
        self.report = report


def _actor_token(actor) -> ApiToken | None:
    return getattr(actor, "token", None)


def _actor_user(actor):
    if actor is None or _actor_token(actor) is not None:
        return None
    return actor if getattr(actor, "is_authenticated", False) else None


# ---- clusters ------------------------------------------------------------------------------


def _clean_labels(labels) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise MeshConfigError("labels must be an object of strings")
    if len(labels) > MAX_LABELS:
        raise MeshConfigError(f"at most {MAX_LABELS} labels")
    out = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise MeshConfigError("labels must be an object of strings")
        if not key or len(key) > 63 or len(value) > 63:
            raise MeshConfigError("label names are 1-63 characters, values at most 63")
        out[key] = value
    return out


def cluster_create(
    *, org: Organization, name: str, labels: dict | None = None, actor=None
) -> tuple[Cluster, str]:
    """A cluster with its agent token; returns the cluster and the token's secret (shown
    once). Its status starts DISCONNECTED with no desired revision."""
    cluster = Cluster(
        org=org, name=name, labels=_clean_labels(labels), created_by=_actor_user(actor)
    )
    try:
        cluster.full_clean(
            exclude=["agent_token", "created_by"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        raise MeshConfigError(exc.message_dict) from exc
    try:
        with transaction.atomic():
            token, secret = token_create(
                org=org,
                name=f"agent of cluster {name}",
                scopes=AGENT_TOKEN_SCOPES,
                created_by=_actor_user(actor),
            )
            cluster.agent_token = token
            cluster.save()
            ClusterStatus.objects.for_org(org).create(org=org, cluster=cluster)
            audit_record(
                org=org,
                actor=actor,
                action="meshconfig.cluster.create",
                target=name,
                details={"labels": cluster.labels, "token": token.prefix},
            )
    except IntegrityError as exc:
        raise MeshConfigError({"name": [f"a cluster named {name!r} exists"]}) from exc
    return cluster, secret


def cluster_token_rotate(*, cluster: Cluster, actor=None) -> str:
    """Revoke the cluster's agent token and issue a new one; returns its secret."""
    with transaction.atomic():
        old = cluster.agent_token
        token, secret = token_create(
            org=cluster.org,
            name=f"agent of cluster {cluster.name}",
            scopes=AGENT_TOKEN_SCOPES,
            created_by=_actor_user(actor),
        )
        cluster.agent_token = token
        # By (org_id, pk), not save()'s UPDATE … WHERE id = …: the org routes it (docs/scaling.md).
        Cluster.objects.for_org(cluster.org_id).filter(pk=cluster.pk).update(agent_token=token)
        if old is not None:
            token_revoke(token=old, actor=actor)
        audit_record(
            org=cluster.org,
            actor=actor,
            action="meshconfig.cluster.token_rotate",
            target=cluster.name,
            details={"token": token.prefix, "revoked": old.prefix if old else None},
        )
    return secret


def cluster_delete(*, cluster: Cluster, actor=None) -> None:
    with transaction.atomic():
        token = cluster.agent_token
        name, org = cluster.name, cluster.org
        # Not cluster.delete(): Django's cascade deletes the status and reports WHERE
        # cluster_id IN (…) and the cluster WHERE id = …, without the org; these name it.
        AgentReport.objects.for_org(org).filter(cluster_id=cluster.pk).delete()
        ClusterStatus.objects.for_org(org).filter(cluster_id=cluster.pk).delete()
        with connection.cursor() as cur:
            cur.execute(
                "DELETE FROM mesh_clusters WHERE org_id = %s AND id = %s", [org.pk, cluster.pk]
            )
        if token is not None:
            token_revoke(token=token, actor=actor)
        audit_record(org=org, actor=actor, action="meshconfig.cluster.delete", target=name)


# ---- the agent side ------------------------------------------------------------------------


def cluster_seen(
    *, cluster: Cluster, wait_seconds: int | None = None, agent_version: str | None = None
) -> None:
    """A heartbeat: the agent asked for its bundle (``wait_seconds`` is the long poll's
    wait, which sets when silence means DISCONNECTED)."""
    fields = {"last_seen": timezone.now()}
    if wait_seconds is not None:
        fields["poll_wait_seconds"] = max(0, int(wait_seconds))
    if agent_version:
        fields["agent_version"] = agent_version[:100]
    ClusterStatus.objects.for_org(cluster.org_id).filter(cluster_id=cluster.pk).update(**fields)


def cluster_report(
    *,
    cluster: Cluster,
    revision: int | None,
    attempt_id: str,
    state: str,
    error: dict | None = None,
    agent_version: str = "",
) -> ClusterStatus:
    """An agent's ACK or NACK of ``revision`` (a number of the cluster's org, or None for the
    empty bundle). Idempotent per ``attempt_id``: a repeated report only counts as a
    heartbeat. Every call is a heartbeat. Raises MeshConfigError for bad input (unknown
    revision, state not ACK/NACK, attempt id empty or over 100 characters).

    One database round trip (``_REPORT_SQL``); a read more (and a write) only in the rare
    case of a revision newer than the statement's snapshot (a rollback committed while the
    report waited for the status row's lock)."""
    if state not in ("ACK", "NACK"):
        raise MeshConfigError("state must be ACK or NACK")
    if not isinstance(attempt_id, str) or not 0 < len(attempt_id) <= 100:
        raise MeshConfigError("attempt_id must be a string of 1-100 characters")
    if error is not None and not isinstance(error, dict):
        raise MeshConfigError("error must be an object")
    if revision is not None:
        if isinstance(revision, bool) or not isinstance(revision, int):
            raise MeshConfigError("revision must be a revision number or null")
        if not 0 < revision <= _MAX_REVISION_NUMBER:
            raise MeshConfigError(f"no revision {revision}")
    now = timezone.now()
    agent_version = (agent_version or "")[:100]
    ack = state == "ACK"
    params = {
        "org": cluster.org_id,
        "cluster": cluster.pk,
        "number": revision,
        "empty": EMPTY_DIGEST,
        "attempt": attempt_id,
        "state": state,
        "ack": ack,
        "report_error": json.dumps(error or {}),
        "status_error": json.dumps(error or {"message": "refused by the agent"}),
        "version": agent_version,
        "now": now,
        "older_kept": REPORTS_KEPT - 1,
    }
    with connection.cursor() as cursor:
        cursor.execute(_REPORT_SQL, params)
        row = cursor.fetchone()
    known, created, reported_digest = row[:3]
    if not known:
        raise MeshConfigError(f"no revision {revision}")
    columns = len(_STATUS_COLUMNS)
    values = row[3 : 3 + columns]
    desired_number, desired_digest, applied_number, applied_digest = row[3 + columns :]
    if values[0] is None:
        raise ClusterStatus.DoesNotExist(f"cluster {cluster.pk} has no status")
    status = _status_from_row(values)
    status.cluster = cluster
    if status.desired_id is not None and desired_digest is None:
        # The desired revision is newer than the statement's snapshot (a rollback's publish
        # and rollout committed while this report waited for the row): compare again.
        desired_number, desired_digest = _revision_number_digest(cluster, status.desired_id)
        if created and reported_digest == desired_digest:
            status.state = SyncState.SYNCED if ack else SyncState.NACK
            ClusterStatus.objects.for_org(cluster.org_id).filter(
                cluster_id=cluster.pk,
                desired_id=status.desired_id,
                last_attempt_id=attempt_id,
            ).update(state=status.state)
    if status.applied_id is not None and applied_digest is None:
        # Likewise, another report of such a revision stored while this one waited.
        applied_number, applied_digest = _revision_number_digest(cluster, status.applied_id)
    status.desired = _revision_ref(status.desired_id, desired_number, desired_digest, cluster)
    status.applied = _revision_ref(status.applied_id, applied_number, applied_digest, cluster)
    return status


_MAX_REVISION_NUMBER = 2**31 - 1  # PostgreSQL's integer, the column's type

# The whole report in one statement (one round trip, atomic by itself): the revision named by
# its number (digest only: never the bundle), the attempt's row (INSERT … ON CONFLICT DO
# NOTHING: a repeated attempt inserts nothing, so it is only a heartbeat), the trim of old
# reports when one was added, and the status row's UPDATE (its row lock orders concurrent
# reports of a cluster), returning the status with its desired and applied revisions' numbers
# and digests. Every table is filtered by the cluster's org.
_STATUS_COLUMNS = [f.column for f in ClusterStatus._meta.concrete_fields]
# Only the model's own column names are formatted in; every value is a parameter.
_REPORT_SQL = """
WITH rev AS (
    SELECT id, digest FROM mesh_revisions WHERE org_id = %(org)s AND number = %(number)s::integer
), flags AS (
    SELECT
        (%(number)s::integer IS NULL OR EXISTS (SELECT 1 FROM rev)) AS known,
        (SELECT id FROM rev) AS rev_id,
        COALESCE((SELECT digest FROM rev), %(empty)s) AS digest
), ins AS (
    INSERT INTO mesh_agent_reports
        (org_id, cluster_id, attempt_id, revision_id, state, error, agent_version, created_at)
    SELECT %(org)s, %(cluster)s, %(attempt)s, f.rev_id, %(state)s, %(report_error)s::jsonb,
        %(version)s, %(now)s
    FROM flags f WHERE f.known
    ON CONFLICT (org_id, cluster_id, attempt_id) DO NOTHING
    RETURNING id
), added AS (
    SELECT EXISTS (SELECT 1 FROM ins) AS created
), trimmed AS (
    DELETE FROM mesh_agent_reports WHERE org_id = %(org)s AND cluster_id = %(cluster)s
    AND (SELECT created FROM added) AND id IN (
        SELECT id FROM mesh_agent_reports WHERE org_id = %(org)s AND cluster_id = %(cluster)s
        ORDER BY created_at DESC, id DESC OFFSET %(older_kept)s
    )
), upd AS (
    UPDATE mesh_cluster_status s SET
        last_seen = %(now)s,
        updated_at = %(now)s,
        agent_version = CASE WHEN %(version)s = '' THEN s.agent_version ELSE %(version)s END,
        last_attempt_id = CASE WHEN a.created THEN %(attempt)s ELSE s.last_attempt_id END,
        attempted_id = CASE WHEN a.created THEN f.rev_id ELSE s.attempted_id END,
        applied_id = CASE WHEN a.created AND %(ack)s THEN f.rev_id ELSE s.applied_id END,
        applied_at = CASE WHEN a.created AND %(ack)s THEN %(now)s ELSE s.applied_at END,
        error = CASE WHEN NOT a.created THEN s.error
            WHEN %(ack)s THEN '{{}}'::jsonb ELSE %(status_error)s::jsonb END,
        state = CASE
            WHEN NOT a.created THEN s.state
            WHEN %(ack)s THEN
                CASE WHEN f.digest = {desired_digest} THEN 'SYNCED' ELSE 'APPLYING' END
            WHEN f.digest = {desired_digest} THEN 'NACK'
            ELSE s.state END
    FROM flags f, added a
    WHERE s.org_id = %(org)s AND s.cluster_id = %(cluster)s AND f.known
    RETURNING {returning}
)
SELECT f.known, a.created, f.digest, {selected},
    des.number, des.digest, app.number, app.digest
FROM flags f CROSS JOIN added a
LEFT JOIN upd u ON true
LEFT JOIN mesh_revisions des ON des.id = u.desired_id AND des.org_id = %(org)s
LEFT JOIN mesh_revisions app ON app.id = u.applied_id AND app.org_id = %(org)s
""".format(  # noqa: S608
    returning=", ".join(f"s.{c}" for c in _STATUS_COLUMNS),
    desired_digest=(
        "(CASE WHEN s.desired_id IS NULL THEN %(empty)s"
        " ELSE (SELECT digest FROM mesh_revisions"
        " WHERE id = s.desired_id AND org_id = %(org)s) END)"
    ),
    selected=", ".join(f"u.{c}" for c in _STATUS_COLUMNS),
)


def _status_from_row(values) -> ClusterStatus:
    fields = ClusterStatus._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        if value is not None and hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        converted.append(value)
    return ClusterStatus.from_db(connection.alias, [f.attname for f in fields], converted)


def _revision_number_digest(cluster: Cluster, pk: int) -> tuple[int, str]:
    return (
        Revision.objects.for_org(cluster.org_id).filter(pk=pk).values_list("number", "digest").get()
    )


def _revision_ref(pk: int | None, number: int | None, digest: str | None, cluster: Cluster):
    """The revision ``pk`` with only its number and digest loaded (the rest is read if used)."""
    if pk is None:
        return None
    return Revision.from_db(
        connection.alias, ["id", "org_id", "number", "digest"], [pk, cluster.org_id, number, digest]
    )


# ---- revisions and rollouts ----------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    revision: Revision
    report: Report


def revision_publish(
    *,
    org: Organization,
    resources: list[dict],
    message: str = "",
    parent: int | None = None,
    check_parent: bool = False,
    actor=None,
    force: bool = False,
    known=None,
    rollback_of: int | None = None,
    with_telemetry: bool = True,
) -> Published:
    """Validate and store a new revision (head + 1). With ``check_parent`` the publish is
    refused (StaleParent) unless ``parent`` is the current head (None: no revision yet).
    Validation errors raise Blocked unless ``force`` (the caller checks that the actor may
    force; a forced publish is audited as such). ``known`` is the ``validation.Known`` of
    services and workloads; None reads it from the org's metrics and traces. While the org has
    telemetry settings, ``with_telemetry`` adds their Telemetry resource (replacing one of the
    same name)."""
    if not isinstance(message, str) or len(message) > 1000:
        raise MeshConfigError("message must be a string of at most 1000 characters")
    if not isinstance(resources, list):
        raise MeshConfigError("resources must be a list")
    if with_telemetry:
        resources = _with_telemetry(org, resources)
    canonical = canonical_bundle(resources)
    report = validate_bundle(resources, org=org, known=known)
    if report.blocking and not force:
        raise Blocked(report)
    with transaction.atomic():
        # Serialise publishes of one org: the org row is the lock.
        Organization.objects.select_for_update().filter(pk=org.pk).first()
        head = Revision.objects.for_org(org).order_by("-number").first()
        head_number = head.number if head else None
        if check_parent and parent != head_number:
            raise StaleParent(parent=parent, head=head_number)
        revision = Revision.objects.for_org(org).create(
            org=org,
            number=(head_number or 0) + 1,
            digest=bundle_digest(canonical),
            parent=head,
            author=_actor_user(actor),
            author_token=_actor_token(actor),
            message=message,
            resources=canonical,
            validation=report.as_dict(),
            forced=bool(force and report.blocking),
            rollback_of=rollback_of,
        )
        action = "meshconfig.revision.publish"
        if revision.forced:
            action = "meshconfig.revision.force_publish"
        audit_record(
            org=org,
            actor=actor,
            action=action,
            target=f"revision {revision.number}",
            details={
                "digest": revision.digest,
                "resources": len(canonical),
                "errors": report.counts()["error"],
                "warnings": report.counts()["warning"],
                "rollback_of": rollback_of,
            },
        )
    return Published(revision=revision, report=report)


def _with_telemetry(org: Organization, resources: list) -> list:
    settings = TelemetrySettings.objects.for_org(org).first()
    if settings is None:
        return resources
    rendered = render_telemetry(
        trace_sampling_percent=settings.trace_sampling_percent,
        traces=settings.traces,
        metrics=settings.metrics,
        custom_tags=settings.custom_tags,
    )
    key = resource_key(rendered)
    kept = [r for r in resources if not (isinstance(r, dict) and resource_key(r) == key)]
    return [*kept, rendered]


def _clusters_select(
    *, org: Organization, clusters: Iterable[str] | None, selector: dict | None
) -> list[Cluster]:
    if (clusters is None) == (selector is None):
        raise MeshConfigError("name either clusters or a selector")
    qs = Cluster.objects.for_org(org)
    if clusters is not None:
        names = list(clusters)
        if not names or not all(isinstance(n, str) for n in names) or len(names) > 1000:
            raise MeshConfigError("clusters must be a list of 1-1000 cluster names")
        found = list(qs.filter(name__in=names))
        missing = sorted(set(names) - {c.name for c in found})
        if missing:
            raise MeshConfigError(f"no such cluster(s): {', '.join(missing)}")
        return found
    wanted = _clean_labels(selector)
    return [c for c in qs if all(c.labels.get(k) == v for k, v in wanted.items())]


def rollout_create(
    *,
    org: Organization,
    revision: int,
    clusters: Iterable[str] | None = None,
    selector: dict | None = None,
    actor=None,
) -> list[Cluster]:
    """Make revision number ``revision`` the desired one of the named clusters (or of those
    whose labels match ``selector``; an empty selector is every cluster), and wake their
    agents. Returns the clusters."""
    rev = Revision.objects.for_org(org).filter(number=revision).first()
    if rev is None:
        raise MeshConfigError(f"no revision {revision}")
    chosen = _clusters_select(org=org, clusters=clusters, selector=selector)
    with transaction.atomic():
        _desired_set(org=org, cluster_ids=[c.pk for c in chosen], revision=rev)
        audit_record(
            org=org,
            actor=actor,
            action="meshconfig.rollout",
            target=f"revision {rev.number}",
            details={"clusters": sorted(c.name for c in chosen), "selector": selector},
        )
    return chosen


def _desired_set(*, org: Organization, cluster_ids: list[int], revision: Revision) -> None:
    if not cluster_ids:
        return
    now = timezone.now()
    statuses = ClusterStatus.objects.for_org(org).filter(cluster_id__in=cluster_ids)
    statuses.exclude(desired=revision).update(
        desired=revision, desired_at=now, state=SyncState.APPLYING, updated_at=now
    )
    config_changed_notify(org_id=org.pk, cluster_ids=cluster_ids)


def revision_rollback(
    *, org: Organization, number: int, actor=None, force: bool = False, known=None
) -> tuple[Published, list[Cluster]]:
    """Publish a new revision equal to revision ``number`` (validated again) and make it the
    desired revision of every cluster whose desired revision is one of ``number``'s
    successors. Returns the publish and those clusters."""
    target = Revision.objects.for_org(org).filter(number=number).first()
    if target is None:
        raise MeshConfigError(f"no revision {number}")
    with transaction.atomic():
        published = revision_publish(
            org=org,
            resources=target.resources,
            message=f"rollback to revision {number}",
            actor=actor,
            force=force,
            known=known,
            rollback_of=number,
            with_telemetry=False,
        )
        new = published.revision
        cluster_ids = list(
            ClusterStatus.objects.for_org(org)
            .filter(desired__number__gt=number)
            .exclude(desired=new)
            .values_list("cluster_id", flat=True)
        )
        _desired_set(org=org, cluster_ids=cluster_ids, revision=new)
        audit_record(
            org=org,
            actor=actor,
            action="meshconfig.rollback",
            target=f"revision {number}",
            details={"new_revision": new.number, "clusters": len(cluster_ids)},
        )
    clusters = list(Cluster.objects.for_org(org).filter(pk__in=cluster_ids))
    return published, clusters


# ---- telemetry -----------------------------------------------------------------------------


def telemetry_update(
    *,
    org: Organization,
    trace_sampling_percent: float,
    traces: bool,
    metrics: bool,
    custom_tags: dict,
    actor=None,
) -> TelemetrySettings:
    if isinstance(trace_sampling_percent, bool) or not isinstance(
        trace_sampling_percent, int | float
    ):
        raise MeshConfigError("trace_sampling_percent must be a number")
    if not 0 <= trace_sampling_percent <= 100:
        raise MeshConfigError("trace_sampling_percent must be between 0 and 100")
    if not isinstance(traces, bool) or not isinstance(metrics, bool):
        raise MeshConfigError("traces and metrics must be booleans")
    tags = _clean_tags(custom_tags)
    with transaction.atomic():
        settings, _ = TelemetrySettings.objects.for_org(org).get_or_create(org=org)
        settings.trace_sampling_percent = float(trace_sampling_percent)
        settings.traces, settings.metrics, settings.custom_tags = traces, metrics, tags
        settings.updated_at = timezone.now()
        TelemetrySettings.objects.for_org(org).filter(pk=settings.pk).update(
            trace_sampling_percent=settings.trace_sampling_percent,
            traces=traces,
            metrics=metrics,
            custom_tags=tags,
            updated_at=settings.updated_at,
        )
        audit_record(
            org=org,
            actor=actor,
            action="meshconfig.telemetry.update",
            details={
                "trace_sampling_percent": settings.trace_sampling_percent,
                "traces": traces,
                "metrics": metrics,
                "custom_tags": tags,
            },
        )
    return settings


def _clean_tags(tags) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or len(tags) > 32:
        raise MeshConfigError("custom_tags must be an object of at most 32 tags")
    out = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise MeshConfigError("custom_tags maps tag names to literal values (strings)")
        if len(key) > 100 or len(value) > 200:
            raise MeshConfigError("custom tag names are at most 100 characters, values 200")
        out[key] = value
    return out
