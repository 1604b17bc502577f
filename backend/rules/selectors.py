"""Reads of the rules room: rule groups as files, and Prometheus's ``/api/v1/rules`` and
``/api/v1/alerts`` answers."""

from __future__ import annotations

import math
import time

from backend.rules.models import AlertingConfig, AlertState, DeliveryStatus, Notification, RuleGroup
from backend.rules.rulefile import Group, Rule, yaml_dump


def alerting_config_get(*, org_id: int) -> AlertingConfig:
    """The org's alerting configuration (defaults when never set)."""
    return AlertingConfig.objects.for_org(org_id).first() or AlertingConfig(org_id=org_id)


def groups_list(
    *, org_id: int, namespace: str | None = None, name: str | None = None
) -> list[RuleGroup]:
    qs = RuleGroup.objects.for_org(org_id)
    if namespace is not None:
        qs = qs.filter(namespace=namespace)
    if name is not None:
        qs = qs.filter(name=name)
    return list(qs.order_by("namespace", "position", "name"))


def group_as_dict(group: RuleGroup) -> dict:
    return Group(
        name=group.name,
        interval_ms=group.interval_ms,
        limit=group.limit,
        rules=tuple(Rule.from_dict(r) for r in group.rules),
    ).as_dict()


def namespaces_yaml(groups: list[RuleGroup]) -> str:
    """Cortex/Mimir's ``GET /config/v1/rules`` body: namespace -> list of groups."""
    out: dict[str, list] = {}
    for group in groups:
        out.setdefault(group.namespace, []).append(group_as_dict(group))
    return yaml_dump(out)


def _rfc3339(ms: int | None) -> str:
    if ms is None:
        return "0001-01-01T00:00:00Z"
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _value_text(value: float) -> str:
    """Prometheus's ``strconv.FormatFloat(v, 'e', 10, 64)`` for an alert's value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.10e}"


def _alert_json(row: AlertState) -> dict:
    return {
        "labels": row.labels,
        "annotations": row.annotations,
        "state": row.state,
        "activeAt": _rfc3339(row.active_at_ms),
        "value": _value_text(row.value),
    }


def _active(org_id: int, group_ids: list[int] | None = None) -> list[AlertState]:
    qs = AlertState.objects.for_org(org_id).exclude(state=AlertState.INACTIVE)
    if group_ids is not None:
        qs = qs.filter(group_id__in=group_ids)
    return list(qs.order_by("group_id", "rule_index", "active_at_ms", "fingerprint"))


def rules_api(
    *,
    org_id: int,
    kind: str | None = None,
    rule_names: set[str] | None = None,
    group_names: set[str] | None = None,
    namespaces: set[str] | None = None,
) -> dict:
    """``GET /api/v1/rules``'s ``data``: groups with their rules, health and alerts."""
    groups = groups_list(org_id=org_id)
    if group_names:
        groups = [g for g in groups if g.name in group_names]
    if namespaces:
        groups = [g for g in groups if g.namespace in namespaces]
    by_rule: dict[tuple[int, int], list[AlertState]] = {}
    for row in _active(org_id, [g.pk for g in groups]):
        by_rule.setdefault((row.group_id, row.rule_index), []).append(row)
    config = alerting_config_get(org_id=org_id)
    out = []
    for group in groups:
        interval_ms = max(group.interval_ms or 60_000, config.min_interval_seconds * 1000)
        health = group.rule_health or []
        rules = []
        for i, raw in enumerate(group.rules):
            rule = Rule.from_dict(raw)
            if kind and rule.kind != kind:
                continue
            if rule_names and rule.name not in rule_names:
                continue
            h = health[i] if i < len(health) else {}
            common = {
                "name": rule.name,
                "query": rule.expr,
                "labels": rule.labels,
                "health": h.get("health", "unknown"),
                "lastError": h.get("lastError", ""),
                "evaluationTime": h.get("evaluationTime", 0),
                "lastEvaluation": _rfc3339(h.get("lastEvaluation")),
            }
            if rule.alert:
                alerts = by_rule.get((group.pk, i), [])
                states = {a.state for a in alerts}
                rules.append(
                    {
                        "state": "firing"
                        if "firing" in states
                        else "pending"
                        if states
                        else "inactive",
                        **common,
                        "duration": rule.for_ms / 1000,
                        "keepFiringFor": rule.keep_firing_for_ms / 1000,
                        "annotations": rule.annotations,
                        "alerts": [_alert_json(a) for a in alerts],
                        "type": "alerting",
                    }
                )
            else:
                rules.append({**common, "type": "recording"})
        if (kind or rule_names) and not rules:
            continue
        out.append(
            {
                "name": group.name,
                "file": group.namespace,
                "rules": rules,
                "interval": interval_ms / 1000,
                "limit": group.limit,
                "evaluationTime": group.last_duration_s,
                "lastEvaluation": _rfc3339(group.last_eval_ms),
            }
        )
    return {"groups": out}


def alerts_api(*, org_id: int) -> dict:
    """``GET /api/v1/alerts``'s ``data``: every pending and firing alert."""
    return {"alerts": [_alert_json(a) for a in _active(org_id)]}


def alerts_for_page(*, org_id: int) -> list[dict]:
    """Active alerts with their rule's expression, for the dashboard."""
    rows = _active(org_id)
    groups = {g.pk: g for g in groups_list(org_id=org_id)}
    out = []
    for row in rows:
        group = groups.get(row.group_id)
        rule = group.rules[row.rule_index] if group and row.rule_index < len(group.rules) else {}
        out.append(
            {
                "name": row.labels.get("alertname", row.rule_name),
                "state": row.state,
                "labels": {k: v for k, v in sorted(row.labels.items()) if k != "alertname"},
                "annotations": row.annotations,
                "active_at_ms": row.active_at_ms,
                "value": _value_text(row.value),
                "value_float": row.value,
                "expr": rule.get("expr", ""),
                "group": f"{group.namespace}/{group.name}" if group else "",
            }
        )
    return out


def delivery_status(*, org_id: int) -> list[dict]:
    pending: dict[str, int] = {}
    for url in Notification.objects.for_org(org_id).values_list("target_url", flat=True):
        pending[url] = pending.get(url, 0) + 1
    return [
        {
            "url": s.target_url,
            "lastSuccess": s.last_success_at.isoformat() if s.last_success_at else None,
            "lastError": s.last_error,
            "lastErrorAt": s.last_error_at.isoformat() if s.last_error_at else None,
            "sentAlerts": s.sent_alerts,
            "failedAttempts": s.failed_attempts,
            "queued": pending.get(s.target_url, 0),
        }
        for s in DeliveryStatus.objects.for_org(org_id).order_by("target_url")
    ]
