"""Evaluating one rule group at one evaluation time: Prometheus's ``Group.Eval``.

Rules run in file order through an :class:`~backend.rules.querier.OverlayQuerier`, so each
rule sees what the rules before it produced at this evaluation. Recording rules produce
samples; alerting rules move their alerts through Prometheus's states (``AlertingRule.Eval``):
new → pending (or firing at once when ``for`` is 0) → firing once ``for`` has passed →
inactive when the expression stops returning it (unless ``keep_firing_for`` holds it),
kept 15 minutes as inactive to resend its resolution. Every active alert adds an ``ALERTS``
and an ``ALERTS_FOR_STATE`` sample. A series a rule produced at the previous evaluation and
not at this one gets a staleness marker, as in Prometheus.

Nothing here touches the database except through the querier: the caller loads and stores
alert state and writes the samples (``services.group_evaluate``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from backend.metrics.labels import METRIC_NAME, Labels
from backend.metrics.promql import PromQLError, QueryLimits, instant_query
from backend.metrics.promql.values import STALE_NAN_BITS
from backend.rules.querier import OverlayQuerier
from backend.rules.rulefile import Rule
from backend.rules.templates import Sample, template_expand

RESOLVED_RETENTION_MS = 15 * 60_000
DEFAULT_RESEND_DELAY_MS = 60_000
STALE_NAN = float(np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])
PENDING, FIRING, INACTIVE = "pending", "firing", "inactive"


def labels_fingerprint(labels: Labels) -> str:
    text = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class Alert:
    """Prometheus's ``rules.Alert``; times in ms, ``None`` for Go's zero time."""

    labels: Labels
    annotations: dict[str, str]
    state: str
    value: float
    active_at_ms: int
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    last_sent_ms: int | None = None
    valid_until_ms: int | None = None
    keep_firing_since_ms: int | None = None

    def needs_sending(self, ts_ms: int, resend_delay_ms: int) -> bool:
        if self.state == PENDING:
            return False
        if self.resolved_at_ms is not None and (
            self.last_sent_ms is None or self.resolved_at_ms > self.last_sent_ms
        ):
            return True
        if self.last_sent_ms is None:
            return True
        return self.last_sent_ms + resend_delay_ms < ts_ms


@dataclass
class RuleOutcome:
    health: str = "unknown"
    last_error: str = ""
    evaluation_time_s: float = 0.0
    series: list[Labels] = field(default_factory=list)  # produced this time (for staleness)


@dataclass
class GroupOutcome:
    rules: list[RuleOutcome]
    # (rule index, labels, value) written at the evaluation time, staleness markers included
    samples: list[tuple[int, Labels, float]]
    # per alerting rule index: fingerprint -> Alert (active or recently resolved)
    alerts: dict[int, dict[str, Alert]]
    # alerts to send now, as the Alertmanager v2 API wants them
    to_send: list[dict]
    duration_s: float


def _vector(result: dict) -> list[tuple[Labels, float]]:
    if result["resultType"] == "scalar":
        return [({}, float(result["result"][1]))]
    if result["resultType"] != "vector":
        raise PromQLError(f"rule result is not a vector but a {result['resultType']}")
    return [(dict(s["metric"]), float(s["value"][1])) for s in result["result"]]


def _rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def group_run(
    *,
    querier: OverlayQuerier,
    rules: list[Rule],
    ts_ms: int,
    interval_ms: int,
    limit: int,
    limits: QueryLimits,
    alerts: dict[int, dict[str, Alert]],
    previous_series: list[list[Labels]],
    generator_url: Callable[[str], str],
    resend_delay_ms: int = DEFAULT_RESEND_DELAY_MS,
) -> GroupOutcome:
    """Evaluate ``rules`` at ``ts_ms``; ``alerts`` (from the last evaluation) is updated in
    place and returned in the outcome."""
    started = time.perf_counter()
    outcomes: list[RuleOutcome] = []
    samples: list[tuple[int, Labels, float]] = []
    to_send: list[dict] = []

    def query(q: str) -> list[Sample]:
        got = instant_query(querier=querier, query=q, time_ms=ts_ms, limits=limits)
        return [Sample(labels, value) for labels, value in _vector(got)]

    for index, rule in enumerate(rules):
        t0 = time.perf_counter()
        outcome = RuleOutcome(health="ok")
        produced: list[tuple[Labels, float]] = []
        try:
            vector = _vector(
                instant_query(querier=querier, query=rule.expr, time_ms=ts_ms, limits=limits)
            )
            if rule.record:
                produced = _record(rule, vector, limit)
            else:
                rule_alerts = alerts.setdefault(index, {})
                produced = _alerting(rule, vector, ts_ms, limit, rule_alerts, query)
                delta = max(resend_delay_ms, interval_ms)
                for alert in rule_alerts.values():
                    if alert.needs_sending(ts_ms, resend_delay_ms):
                        alert.last_sent_ms = ts_ms
                        alert.valid_until_ms = ts_ms + 4 * delta
                        to_send.append(_wire(alert, rule, generator_url))
        except (PromQLError, RuleError) as exc:
            outcome.health, outcome.last_error = "err", str(exc)
            produced = []
        for labels, value in produced:
            querier.add(labels, ts_ms, value)
        outcome.series = [labels for labels, _ in produced]
        samples.extend((index, labels, value) for labels, value in produced)
        # Staleness: what this rule produced last time and not now ends here.
        now_keys = {labels_fingerprint(labels) for labels in outcome.series}
        before = previous_series[index] if index < len(previous_series) else []
        for labels in before:
            if labels_fingerprint(labels) not in now_keys:
                querier.add(labels, ts_ms, STALE_NAN)
                samples.append((index, labels, STALE_NAN))
        outcome.evaluation_time_s = time.perf_counter() - t0
        outcomes.append(outcome)
    return GroupOutcome(outcomes, samples, alerts, to_send, time.perf_counter() - started)


class RuleError(Exception):
    pass


def _record(rule: Rule, vector: list[tuple[Labels, float]], limit: int) -> list:
    out, seen = [], set()
    for labels, value in vector:
        labels = {**labels, **rule.labels, METRIC_NAME: rule.record}
        key = labels_fingerprint(labels)
        if key in seen:
            raise RuleError(
                "vector contains metrics with the same labelset after applying rule labels"
            )
        seen.add(key)
        out.append((labels, value))
    if limit and len(out) > limit:
        raise RuleError(f"exceeded limit of {limit} with {len(out)} series")
    return out


def _alerting(
    rule: Rule,
    vector: list[tuple[Labels, float]],
    ts_ms: int,
    limit: int,
    active: dict[str, Alert],
    query: Callable[[str], list[Sample]],
) -> list[tuple[Labels, float]]:
    name = f"__alert_{rule.alert}"
    found: dict[str, Alert] = {}
    for sample_labels, value in vector:
        labels = {k: v for k, v in sample_labels.items() if k != METRIC_NAME}
        for key, text in rule.labels.items():
            labels[key] = template_expand(
                text=text, name=name, labels=sample_labels, value=value, query=query
            )
        labels = {k: v for k, v in labels.items() if v != ""}  # an empty value is no label
        labels["alertname"] = rule.alert
        annotations = {
            key: template_expand(
                text=text, name=name, labels=sample_labels, value=value, query=query
            )
            for key, text in rule.annotations.items()
        }
        fp = labels_fingerprint(labels)
        if fp in found:
            raise RuleError(
                "vector contains metrics with the same labelset after applying alert labels"
            )
        found[fp] = Alert(labels, annotations, PENDING, value, ts_ms)
    for fp, alert in found.items():
        known = active.get(fp)
        if known is not None and known.state != INACTIVE:
            known.value, known.annotations = alert.value, alert.annotations
            continue
        active[fp] = alert
    out: list[tuple[Labels, float]] = []
    active_count = 0
    for fp in list(active):
        alert = active[fp]
        if fp not in found:
            keep_firing = False
            if alert.state == FIRING and rule.keep_firing_for_ms > 0:
                if alert.keep_firing_since_ms is None:
                    alert.keep_firing_since_ms = ts_ms
                if ts_ms - alert.keep_firing_since_ms < rule.keep_firing_for_ms:
                    keep_firing = True
            if alert.state == PENDING or (
                alert.resolved_at_ms is not None
                and ts_ms - alert.resolved_at_ms > RESOLVED_RETENTION_MS
            ):
                del active[fp]
            if alert.state != INACTIVE and not keep_firing:
                alert.state = INACTIVE
                alert.resolved_at_ms = ts_ms
            if not keep_firing:
                continue
        else:
            alert.keep_firing_since_ms = None
        active_count += 1
        if alert.state == PENDING and ts_ms - alert.active_at_ms >= rule.for_ms:
            alert.state = FIRING
            alert.fired_at_ms = ts_ms
        out.append(({**alert.labels, METRIC_NAME: "ALERTS", "alertstate": alert.state}, 1.0))
        out.append(
            ({**alert.labels, METRIC_NAME: "ALERTS_FOR_STATE"}, float(alert.active_at_ms // 1000))
        )
    if limit and active_count > limit:
        active.clear()
        raise RuleError(f"exceeded limit of {limit} with {active_count} alerts")
    return out


def _wire(alert: Alert, rule: Rule, generator_url: Callable[[str], str]) -> dict:
    """An alert as Alertmanager's ``POST /api/v2/alerts`` takes it (Prometheus's notifier)."""
    ends = alert.resolved_at_ms if alert.resolved_at_ms is not None else alert.valid_until_ms
    out = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": _rfc3339(
            alert.fired_at_ms if alert.fired_at_ms is not None else alert.active_at_ms
        ),
        "generatorURL": generator_url(rule.expr),
    }
    if ends is not None:
        out["endsAt"] = _rfc3339(ends)
    return out
