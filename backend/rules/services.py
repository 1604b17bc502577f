"""Writes of the rules room: rule groups, alerting targets, evaluations and their results."""

from __future__ import annotations

import contextlib
import hashlib
import time
import urllib.parse
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from backend.metrics.labels import labels_key
from backend.metrics.promql import QueryLimits
from backend.metrics.series import series_ids_resolve
from backend.metrics.services import samples_write
from backend.metrics.storage.reader import PostgresQuerier
from backend.rules import notify
from backend.rules.evaluation import Alert, GroupOutcome, group_run
from backend.rules.models import AlertingConfig, AlertState, RuleGroup
from backend.rules.querier import OverlayQuerier
from backend.rules.rulefile import DEFAULT_INTERVAL_MS, Group, Rule
from backend.rules.selectors import alerting_config_get
from backend.tenancy.selectors import limits_get

MAX_TRACKED_SERIES = 10_000  # per rule, for staleness markers


class RulesRefused(ValueError):
    """A change the org's rule limits refuse (400)."""


# --- rule groups --------------------------------------------------------------------------


def interval_of(group: RuleGroup | Group, config: AlertingConfig) -> int:
    return max(group.interval_ms or DEFAULT_INTERVAL_MS, config.min_interval_seconds * 1000)


def _check_interval(group: Group, config: AlertingConfig) -> None:
    wanted = group.interval_ms or DEFAULT_INTERVAL_MS
    if wanted < config.min_interval_seconds * 1000:
        raise RulesRefused(
            f"{group.name}: interval {wanted / 1000:g}s is below this organization's minimum "
            f"of {config.min_interval_seconds}s"
        )


def _offset_ms(org_id: int, namespace: str, name: str, interval_ms: int) -> int:
    """Where in its interval a group runs: spread by a hash, as Prometheus staggers groups."""
    digest = hashlib.blake2b(f"{org_id}/{namespace}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % interval_ms


def _first_slot(org_id: int, namespace: str, name: str, interval_ms: int, now_ms: int) -> int:
    offset = _offset_ms(org_id, namespace, name, interval_ms)
    base = now_ms - now_ms % interval_ms + offset
    return base if base > now_ms else base + interval_ms


def _now_ms() -> int:
    return int(time.time() * 1000)


def group_save(*, org_id: int, namespace: str, group: Group) -> RuleGroup:
    """Create or replace one group of a namespace (the ruler API's POST). Alert state of
    rules that are kept, by index and name, survives the replacement."""
    config = alerting_config_get(org_id=org_id)
    _check_interval(group, config)
    with transaction.atomic():
        existing = (
            RuleGroup.objects.for_org(org_id)
            .select_for_update()
            .filter(namespace=namespace, name=group.name)
            .first()
        )
        if existing is None:
            count = RuleGroup.objects.for_org(org_id).count()
            if count >= config.max_groups:
                raise RulesRefused(
                    f"this organization may have at most {config.max_groups} rule groups"
                )
            position = RuleGroup.objects.for_org(org_id).filter(namespace=namespace).count()
            existing = RuleGroup(
                org_id=org_id, namespace=namespace, name=group.name, position=position
            )
        old_rules = existing.rules or []
        interval = interval_of(group, config)
        changed_interval = existing.pk is None or interval != interval_of(existing, config)
        existing.interval_ms = group.interval_ms
        existing.limit = group.limit
        existing.rules = [r.as_dict() for r in group.rules]
        if changed_interval:
            existing.next_eval_ms = _first_slot(org_id, namespace, group.name, interval, _now_ms())
        kept = [
            i
            for i, r in enumerate(group.rules)
            if i < len(old_rules) and Rule.from_dict(old_rules[i]) == r
        ]
        if existing.pk is not None and len(kept) < len(group.rules):
            health = list(existing.rule_health or [])
            existing.rule_health = [
                health[i] if i in kept and i < len(health) else {} for i in range(len(group.rules))
            ]
            AlertState.objects.for_org(org_id).filter(group=existing).exclude(
                rule_index__in=kept
            ).delete()
        if existing.pk is None:
            existing.save()  # an INSERT: it names the org
            return existing
        # By (org_id, pk), not save()'s UPDATE … WHERE id = …: the statement names the org,
        # so it uses the (org_id, id) key and routes to one shard once distributed.
        existing.updated_at = timezone.now()
        RuleGroup.objects.for_org(org_id).filter(pk=existing.pk).update(
            interval_ms=existing.interval_ms,
            limit=existing.limit,
            rules=existing.rules,
            next_eval_ms=existing.next_eval_ms,
            rule_health=existing.rule_health,
            updated_at=existing.updated_at,
        )
        return existing


def namespace_replace(*, org_id: int, namespace: str, groups: list[Group]) -> list[RuleGroup]:
    """A whole rule file into a namespace: its groups replace the namespace's."""
    with transaction.atomic():
        saved = [group_save(org_id=org_id, namespace=namespace, group=g) for g in groups]
        _groups_delete(
            org_id,
            RuleGroup.objects.for_org(org_id)
            .filter(namespace=namespace)
            .exclude(pk__in=[g.pk for g in saved]),
        )
        for position, g in enumerate(saved):
            if g.position != position:
                RuleGroup.objects.for_org(org_id).filter(pk=g.pk).update(position=position)
        return saved


def _groups_delete(org_id: int, groups) -> int:
    """Delete these groups of the org and their alerts; how many groups. Not the queryset's
    ``delete()``: Django's cascade deletes the alerts ``WHERE group_id IN (…)`` and the groups
    ``WHERE id IN (…)``, without the org; these statements name it (docs/scaling.md)."""
    with transaction.atomic():
        ids = list(groups.values_list("pk", flat=True))
        if not ids:
            return 0
        AlertState.objects.for_org(org_id).filter(group_id__in=ids).delete()
        with connection.cursor() as cur:
            cur.execute("DELETE FROM rule_groups WHERE org_id = %s AND id = ANY(%s)", [org_id, ids])
            return cur.rowcount


def group_delete(*, org_id: int, namespace: str, name: str) -> bool:
    mine = RuleGroup.objects.for_org(org_id).filter(namespace=namespace, name=name)
    return _groups_delete(org_id, mine) > 0


def namespace_delete(*, org_id: int, namespace: str) -> bool:
    return _groups_delete(org_id, RuleGroup.objects.for_org(org_id).filter(namespace=namespace)) > 0


def alerting_targets_update(*, org_id: int, targets: dict) -> AlertingConfig:
    """Replace where the org's alerts go (already validated by ``notify.targets_clean``)."""
    config, _ = AlertingConfig.objects.for_org(org_id).get_or_create(org_id=org_id)
    config.targets, config.updated_at = targets, timezone.now()
    AlertingConfig.objects.for_org(org_id).filter(pk=config.pk).update(
        targets=config.targets, updated_at=config.updated_at
    )
    return config


# --- scheduling and evaluation --------------------------------------------------------------


def groups_due(*, now_ms: int, limit: int = 1000) -> list[tuple[int, int]]:
    """(org id, group id) of the groups (of every org: a maintenance read) whose next
    evaluation is due and not handed to a worker yet: a slot is queued once (a Redis flag per
    group and slot), so a backlog of workers does not grow the queue by every due group at
    every tick. The org goes with the id so that every statement of the evaluation names it."""
    due = (
        RuleGroup.objects.unscoped()
        .filter(next_eval_ms__lte=now_ms)
        .order_by("next_eval_ms")
        .values_list("org_id", "pk", "next_eval_ms")[:limit]
    )
    return [
        (org_id, pk)
        for org_id, pk, slot in due
        if cache.add(f"rules:queued:{pk}:{slot}", 1, timeout=120)
    ]


def group_org_id(*, group_id: int) -> int | None:
    """The org of a group known by its id alone (None: deleted). Only for a task queued before
    the org went along with the id; a look-up by bare id, multi-shard once distributed."""
    return RuleGroup.objects.unscoped().filter(pk=group_id).values_list("org_id", flat=True).first()


def _lock_key(org_id: int, group_id: int) -> int:
    """The advisory lock's 64-bit key for a group: a hash of ("rules", org, group), so that the
    key names the org like every statement does, and any bigint id fits (the former two-int4
    form, (namespace, group id), failed for ids past 2**31)."""
    digest = hashlib.blake2b(f"rules/{org_id}/{group_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def _group_lock(org_id: int, group_id: int):
    """A session-level advisory lock: held across the evaluation's own transactions, so a
    second worker handed the same group skips it rather than evaluating it alongside."""
    key = _lock_key(org_id, group_id)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [key])
        (acquired,) = cur.fetchone()
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [key])


def group_claim(*, org_id: int, group_id: int, now_ms: int) -> int | None:
    """The evaluation time this worker owns for the group, or None (not due, or another
    worker took the slot). Compare-and-set on ``next_eval_ms``: of two workers handed the
    same slot, only the one whose UPDATE matches the slot it read gets it. Slots missed while
    nothing ran are skipped to the latest one, as Prometheus skips missed iterations."""
    row = (
        RuleGroup.objects.for_org(org_id)
        .filter(pk=group_id)
        .values("next_eval_ms", "interval_ms")
        .first()
    )
    if row is None or row["next_eval_ms"] > now_ms:
        return None
    config = alerting_config_get(org_id=org_id)
    interval = max(row["interval_ms"] or DEFAULT_INTERVAL_MS, config.min_interval_seconds * 1000)
    slot = row["next_eval_ms"] + (now_ms - row["next_eval_ms"]) // interval * interval
    claimed = (
        RuleGroup.objects.for_org(org_id)
        .filter(pk=group_id, next_eval_ms=row["next_eval_ms"])
        .update(next_eval_ms=slot + interval)
    )
    return slot if claimed else None


@dataclass
class Evaluated:
    group_id: int
    ts_ms: int
    outcome: GroupOutcome


def group_evaluate_due(
    *, org_id: int | None, group_id: int, now_ms: int | None = None
) -> Evaluated | None:
    """What the evaluation task does: lock the group, claim its due slot, evaluate it there.
    ``org_id`` None: a task queued before the org went with the id (looked up once)."""
    now_ms = _now_ms() if now_ms is None else now_ms
    if org_id is None:
        org_id = group_org_id(group_id=group_id)
        if org_id is None:
            return None
    with _group_lock(org_id, group_id) as acquired:
        if not acquired:
            return None
        ts_ms = group_claim(org_id=org_id, group_id=group_id, now_ms=now_ms)
        if ts_ms is None:
            return None
        outcome = group_evaluate(org_id=org_id, group_id=group_id, ts_ms=ts_ms)
        return Evaluated(group_id, ts_ms, outcome) if outcome else None


def _alert_of(row: AlertState) -> Alert:
    return Alert(
        labels=row.labels,
        annotations=row.annotations,
        state=row.state,
        value=row.value,
        active_at_ms=row.active_at_ms,
        fired_at_ms=row.fired_at_ms,
        resolved_at_ms=row.resolved_at_ms,
        last_sent_ms=row.last_sent_ms,
        valid_until_ms=row.valid_until_ms,
        keep_firing_since_ms=row.keep_firing_since_ms,
    )


def generator_url(expr: str) -> str:
    return f"{settings.PUBLIC_URL}/metrics?q={urllib.parse.quote(expr)}"


def group_evaluate(*, org_id: int, group_id: int, ts_ms: int) -> GroupOutcome | None:
    """Evaluate one group at ``ts_ms`` (the caller owns that slot), write its samples, store
    its alerts and health, and queue the notifications it produced."""
    group = RuleGroup.objects.for_org(org_id).filter(pk=group_id).first()
    if group is None:
        return None
    config = alerting_config_get(org_id=org_id)
    rules = [Rule.from_dict(d) for d in group.rules]
    alerts: dict[int, dict[str, Alert]] = {}
    for row in AlertState.objects.for_org(org_id).filter(group=group):
        alerts.setdefault(row.rule_index, {})[row.fingerprint] = _alert_of(row)
    health = list(group.rule_health or [])
    previous = [
        (health[i].get("series") or []) if i < len(health) else [] for i in range(len(rules))
    ]
    limits = limits_get(org_id=org_id)
    outcome = group_run(
        querier=OverlayQuerier(PostgresQuerier(org_id=org_id)),
        rules=rules,
        ts_ms=ts_ms,
        interval_ms=interval_of(group, config),
        limit=group.limit,
        limits=QueryLimits(
            max_series=limits.query_max_series,
            max_samples=limits.query_max_samples,
            timeout_seconds=float(limits.query_timeout_seconds),
        ),
        alerts=alerts,
        previous_series=previous,
        generator_url=generator_url,
        resend_delay_ms=settings.RULES_RESEND_DELAY_MS,
    )
    _samples_store(org_id, ts_ms, outcome, limits)
    with transaction.atomic():
        # The group may have been deleted or replaced while it was evaluated.
        if not RuleGroup.objects.for_org(org_id).filter(pk=group_id).exists():
            return outcome
        _alerts_store(org_id, group, outcome)
        RuleGroup.objects.for_org(org_id).filter(pk=group_id).update(
            last_eval_ms=ts_ms,
            last_duration_s=outcome.duration_s,
            rule_health=[
                {
                    "health": r.health,
                    "lastError": r.last_error,
                    "lastEvaluation": ts_ms,
                    "evaluationTime": r.evaluation_time_s,
                    "series": r.series if len(r.series) <= MAX_TRACKED_SERIES else [],
                }
                for r in outcome.rules
            ],
        )
        if outcome.to_send:
            notify.notifications_queue(org_id=org_id, config=config, alerts=outcome.to_send)
    return outcome


def _samples_store(org_id: int, ts_ms: int, outcome: GroupOutcome, limits) -> None:
    """Through the normal write path: series ids under the org's series limits, then one
    outbox batch. A refused series makes its rule unhealthy, as an append error does in
    Prometheus."""
    if not outcome.samples:
        return
    label_sets = [labels_key(labels) for _, labels, _ in outcome.samples]
    ids = series_ids_resolve(
        org_id=org_id,
        label_sets=label_sets,
        max_per_user=limits.max_global_series_per_user,
        max_per_metric=limits.max_global_series_per_metric,
        cache=True,
    )
    for refusal, positions in ids.refused.items():
        for pos in positions.tolist():
            rule = outcome.rules[outcome.samples[pos][0]]
            rule.health = "err"
            rule.last_error = f"writing the rule's results: {refusal.value}"
    keep = np.flatnonzero(ids.admitted)
    if not len(keep):
        return
    values = np.array([outcome.samples[i][2] for i in keep.tolist()], dtype=np.float64)
    samples_write(
        org_id=org_id,
        series_ids=ids.ids[keep],
        timestamps=np.full(len(keep), ts_ms, dtype=np.int64),
        values=values,
    )


def _alerts_store(org_id: int, group: RuleGroup, outcome: GroupOutcome) -> None:
    rows = []
    for index, by_fp in outcome.alerts.items():
        for fp, a in by_fp.items():
            rows.append(
                AlertState(
                    org_id=org_id,
                    group=group,
                    rule_index=index,
                    rule_name=a.labels.get("alertname", ""),
                    fingerprint=fp,
                    labels=a.labels,
                    annotations=a.annotations,
                    state=a.state,
                    value=a.value,
                    active_at_ms=a.active_at_ms,
                    fired_at_ms=a.fired_at_ms,
                    resolved_at_ms=a.resolved_at_ms,
                    last_sent_ms=a.last_sent_ms,
                    valid_until_ms=a.valid_until_ms,
                    keep_firing_since_ms=a.keep_firing_since_ms,
                )
            )
    AlertState.objects.for_org(org_id).filter(group=group).delete()
    AlertState.objects.for_org(org_id).bulk_create(rows)
