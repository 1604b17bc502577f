"""Evaluating rule groups over stored data: recording rules write queryable series, alerting
rules walk Prometheus's states, state lives in PostgreSQL, and only one worker gets a slot.

These tests use ``transactional_db``: an evaluation reads in read-only transactions of its
own and then writes, as it does in a worker (not inside one test-wide transaction)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from backend.metrics.promql import instant_query
from backend.metrics.storage import outbox
from backend.metrics.storage.reader import PostgresQuerier
from backend.rules import services
from backend.rules.models import AlertingConfig, AlertState, Notification, RuleGroup
from backend.rules.rulefile import group_parse
from backend.rules.selectors import alerts_api, rules_api
from tests.metrics.samples import T0, counter, load

pytestmark = pytest.mark.django_db(transaction=True)
MIN = 60_000

GROUP = """
name: g
interval: 1m
rules:
- record: svc:reqs:sum
  expr: sum by (svc) (reqs)
- record: svc:reqs:double
  expr: svc:reqs:sum * 2
- alert: HighErrors
  expr: svc:reqs:sum{svc="a"} > 10
  for: 2m
  labels:
    severity: page
    team: '{{ $labels.svc | toUpper }}'
  annotations:
    summary: '{{ $labels.svc }} at {{ $value }}'
"""


def _drain(org) -> None:
    while outbox.batches_drain(org_id=org.pk):
        pass


def _query(org, q: str, t_ms: int) -> dict:
    got = instant_query(querier=PostgresQuerier(org_id=org.pk), query=q, time_ms=t_ms)
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in got["result"]}


@pytest.fixture
def group(tenants):
    # 12 minutes of data: svc a high (20) until T0+5m, then gone; svc b always low (1).
    points_a = [(s, 20.0) for s in range(0, 301, 15)]
    points_b = [(s, 1.0) for s in range(0, 721, 15)]
    load(tenants.org, {counter("reqs", svc="a"): points_a, counter("reqs", svc="b"): points_b})
    return services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(GROUP))


def test_recording_rules_write_queryable_series_visible_to_later_rules(tenants, group):
    outcome = services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=T0 + MIN)
    assert [r.health for r in outcome.rules] == ["ok", "ok", "ok"]
    _drain(tenants.org)
    assert _query(tenants.org, "svc:reqs:sum", T0 + MIN) == {
        (("__name__", "svc:reqs:sum"), ("svc", "a")): 20.0,
        (("__name__", "svc:reqs:sum"), ("svc", "b")): 1.0,
    }
    # the second rule read the first one's result of the same evaluation
    assert _query(tenants.org, "svc:reqs:double", T0 + MIN) == {
        (("__name__", "svc:reqs:double"), ("svc", "a")): 40.0,
        (("__name__", "svc:reqs:double"), ("svc", "b")): 2.0,
    }


def test_alert_goes_pending_firing_resolved_and_is_sent_like_prometheus(tenants, group):
    AlertingConfig.objects.for_org(tenants.org).create(
        org=tenants.org, targets={"alertmanagers": [{"url": "http://127.0.0.1:1"}]}
    )
    states, sent = [], []
    for minute in range(1, 10):
        ts = T0 + minute * MIN
        outcome = services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=ts)
        alerts = alerts_api(org_id=tenants.org.pk)["alerts"]
        states.append(alerts[0]["state"] if alerts else "-")
        sent.append([(a.get("endsAt"), a["startsAt"]) for a in outcome.to_send])
    # a's data ends at T0+5m; the 5-minute lookback keeps it until T0+10m
    assert states[:3] == ["pending", "pending", "firing"]
    assert sent[0] == [] and sent[1] == []
    fired = "2023-11-14T22:16:00.000Z"  # T0 + 3m
    assert sent[2] == [("2023-11-14T22:20:00.000Z", fired)]  # endsAt = now + 4 * max(1m, 1m)
    assert sent[3] == []  # resend only after the resend delay (1 m, strictly)
    assert sent[4] == [("2023-11-14T22:22:00.000Z", fired)]
    # the alert's value and annotations follow the data; labels come from templates
    (row,) = AlertState.objects.for_org(tenants.org)
    assert row.labels == {"alertname": "HighErrors", "severity": "page", "svc": "a", "team": "A"}
    assert row.annotations == {"summary": "a at 20"}
    # one queued notification per send: minutes 3, 5, 7 and 9
    assert [len(s) for s in sent] == [0, 0, 1, 0, 1, 0, 1, 0, 1]
    assert Notification.objects.for_org(tenants.org).count() == 4


def test_resolution_is_sent_with_ends_at_then_resent_for_15_minutes(tenants):
    load(tenants.org, {counter("up", job="x"): [(s, 0.0) for s in range(0, 61, 15)]})
    group = services.group_save(
        org_id=tenants.org.pk,
        namespace="ns",
        group=group_parse("name: d\nrules:\n- alert: Down\n  expr: up == 0\n"),
    )
    out = {}
    for minute in (1, 2, 7, 8, 9, 25, 26):
        out[minute] = services.group_evaluate(
            org_id=group.org_id, group_id=group.pk, ts_ms=T0 + minute * MIN
        )
    assert [a["labels"]["alertname"] for a in out[1].to_send] == ["Down"]  # for: 0 fires at once
    assert "endsAt" in out[1].to_send[0]
    # data ends at T0+1m; the lookback lets it through until T0+6m: resolved at T0+7m
    assert out[7].to_send[0]["endsAt"] == "2023-11-14T22:20:00.000Z"
    assert out[8].to_send == []  # within the resend delay
    assert out[9].to_send[0]["endsAt"] == "2023-11-14T22:20:00.000Z"  # resent, same end
    assert out[26].to_send == []  # forgotten 15 minutes after resolving
    assert not AlertState.objects.for_org(tenants.org).exists()


def test_alerts_series_and_for_state(tenants, group):
    for minute in (1, 2, 3):
        services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=T0 + minute * MIN)
    _drain(tenants.org)
    labels = (("alertname", "HighErrors"), ("severity", "page"), ("svc", "a"), ("team", "A"))
    got = _query(tenants.org, "ALERTS", T0 + 3 * MIN)
    assert got == {
        (
            ("__name__", "ALERTS"),
            ("alertname", "HighErrors"),
            ("alertstate", "firing"),
            *labels[1:],
        ): 1.0
    }
    pending = _query(tenants.org, 'ALERTS{alertstate="pending"}', T0 + 2 * MIN)
    assert len(pending) == 1
    # the pending series got a staleness marker when the alert fired
    assert _query(tenants.org, 'ALERTS{alertstate="pending"}', T0 + 3 * MIN) == {}
    for_state = _query(tenants.org, "ALERTS_FOR_STATE", T0 + 3 * MIN)
    assert list(for_state.values()) == [(T0 + MIN) / 1000]


def test_staleness_marker_ends_a_recorded_series(tenants, group):
    services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=T0 + 5 * MIN)
    services.group_evaluate(
        org_id=group.org_id, group_id=group.pk, ts_ms=T0 + 11 * MIN
    )  # a is gone by then
    _drain(tenants.org)
    got = _query(tenants.org, 'svc:reqs:sum{svc="a"}', T0 + 11 * MIN)
    assert got == {}  # Prometheus would not show it either (5-minute lookback otherwise)


def test_errors_are_visible_per_rule(tenants):
    load(tenants.org, {counter("m", a="1"): [(0, 1.0)], counter("m", a="2"): [(0, 2.0)]})
    text = (
        "name: e\nrules:\n- record: dup\n  expr: m\n  labels: {a: same}\n"
        "- alert: Fine\n  expr: vector(1)\n"
    )
    group = services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(text))
    services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=T0 + 30_000)
    (g,) = rules_api(org_id=tenants.org.pk)["groups"]
    assert g["rules"][0]["health"] == "err"
    assert "same labelset" in g["rules"][0]["lastError"]
    assert g["rules"][1]["health"] == "ok" and g["rules"][1]["lastError"] == ""
    assert g["rules"][1]["state"] == "firing"
    assert g["rules"][1]["lastEvaluation"] == "2023-11-14T22:13:30.000Z"


def test_state_is_restored_from_postgresql_for_not_reset(tenants, group):
    services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=T0 + MIN)
    # a new process: nothing in memory, only the rows
    connection.close()
    services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=T0 + 2 * MIN)
    outcome = services.group_evaluate(org_id=group.org_id, group_id=group.pk, ts_ms=T0 + 3 * MIN)
    (alert,) = alerts_api(org_id=tenants.org.pk)["alerts"]
    assert alert["state"] == "firing"
    assert alert["activeAt"] == "2023-11-14T22:14:00.000Z"  # T0 + 1m: `for` ran on
    assert len(outcome.to_send) == 1


def test_one_claim_per_slot_across_workers(tenants, group):
    RuleGroup.objects.for_org(tenants.org).filter(pk=group.pk).update(next_eval_ms=T0)
    got, barrier = [], threading.Barrier(4)

    def claim():
        barrier.wait()
        try:
            got.append(
                services.group_claim(org_id=group.org_id, group_id=group.pk, now_ms=T0 + 150_000)
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # missed slots are skipped to the latest due one; one thread got it
    assert sorted(got, key=lambda v: v or 0) == [None, None, None, T0 + 120_000]
    assert RuleGroup.objects.for_org(tenants.org).get(pk=group.pk).next_eval_ms == T0 + 180_000
    assert services.group_claim(org_id=group.org_id, group_id=group.pk, now_ms=T0 + 150_000) is None


def test_a_group_held_by_one_worker_is_skipped_by_another(tenants, group):
    RuleGroup.objects.for_org(tenants.org).filter(pk=group.pk).update(next_eval_ms=T0)
    other = connections.create_connection("default")
    key = services._lock_key(group.org_id, group.pk)
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", [key])
        assert (
            services.group_evaluate_due(org_id=group.org_id, group_id=group.pk, now_ms=T0 + 1000)
            is None
        )
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [key])
        done = services.group_evaluate_due(org_id=group.org_id, group_id=group.pk, now_ms=T0 + 1000)
        assert done is not None and done.ts_ms == T0
    finally:
        other.close()


def test_groups_are_staggered_within_their_interval(tenants):
    slots = set()
    for i in range(20):
        g = services.group_save(
            org_id=tenants.org.pk,
            namespace="ns",
            group=group_parse(f"name: g{i}\nrules:\n- record: r{i}\n  expr: vector(1)\n"),
        )
        slots.add(g.next_eval_ms % MIN)
    assert len(slots) > 15


def test_a_due_slot_is_queued_once(tenants, group):
    RuleGroup.objects.for_org(tenants.org).filter(pk=group.pk).update(next_eval_ms=T0)
    assert services.groups_due(now_ms=T0) == [(group.org_id, group.pk)]
    assert services.groups_due(now_ms=T0 + 500) == []  # same slot: already handed out
    services.group_evaluate_due(org_id=group.org_id, group_id=group.pk, now_ms=T0 + 500)
    assert services.groups_due(now_ms=T0 + MIN) == [(group.org_id, group.pk)]  # the next slot


def test_templates_can_query_the_orgs_data(tenants, group):
    text = (
        "name: q\nrules:\n- alert: Q\n  expr: vector(1)\n  annotations:\n"
        "    total: '{{ with query \"sum(reqs)\" }}{{ . | first | value }}{{ end }}'\n"
        '    by: \'{{ range query "reqs" | sortByLabel "svc" }}{{ .Labels.svc }} {{ end }}\'\n'
    )
    q = services.group_save(org_id=tenants.org.pk, namespace="ns", group=group_parse(text))
    services.group_evaluate(org_id=q.org_id, group_id=q.pk, ts_ms=T0 + MIN)
    (alert,) = alerts_api(org_id=tenants.org.pk)["alerts"]
    assert alert["annotations"] == {"total": "21", "by": "a b "}
