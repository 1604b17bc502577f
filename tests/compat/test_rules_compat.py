"""Canopy's rule evaluation against a real Prometheus (Debian's 2.42) over the same data.

Both get the same remote-written, Istio-shaped dataset (1 s scrapes from 30 s before the
test to 40 s after, with a burst of 5xx on ``reviews`` a few seconds in, so an alert goes
pending, fires and resolves while Prometheus evaluates). Prometheus loads the rule file and
evaluates it every second on its own clock; Canopy then evaluates the same group at exactly
the evaluation timestamps Prometheus used (read back from its recorded series). The recorded
series, ``ALERTS`` and ``ALERTS_FOR_STATE`` must hold the same samples, timestamp for
timestamp (values to 1e-9 relative).
"""

from __future__ import annotations

import math
import time

import pytest
import requests

from backend.metrics.promql import instant_query
from backend.metrics.storage.reader import PostgresQuerier
from backend.pipeline.drain import org_drain
from backend.rules import services
from backend.rules.models import AlertingConfig
from backend.rules.rulefile import groups_parse
from backend.tenancy.services import limits_update, org_create, token_create, user_get_or_create
from bench import istio_payloads as ip
from tests.compat.prometheus_harness import PrometheusServer, post_remote_write
from tests.rules.raw_tables import _raw_sample_tables_emptied  # noqa: F401 - autouse

pytestmark = pytest.mark.compat

RULES = """
groups:
- name: istio
  interval: 1s
  rules:
  - record: destination_service:istio_requests:rate10s
    expr: sum by (destination_service) (rate(istio_requests_total[10s]))
  - record: destination_service:istio_5xx:ratio10s
    expr: |
      sum by (destination_service) (rate(istio_requests_total{response_code=~"5.."}[10s]))
        / destination_service:istio_requests:rate10s
  - alert: IstioHigh5xxRate
    expr: destination_service:istio_5xx:ratio10s > 0.2
    for: 2s
    labels:
      severity: page
      service: '{{ $labels.destination_service }}'
    annotations:
      summary: '{{ $labels.destination_service }}: {{ $value | humanizePercentage }} 5xx'
  - alert: IstioTraffic
    expr: destination_service:istio_requests:rate10s > 0
  - record: istio:latency_p99:10s
    expr: >-
      histogram_quantile(0.99,
        sum by (le) (rate(istio_request_duration_milliseconds_bucket[10s])))
"""
SERIES_COMPARED = [
    "destination_service:istio_requests:rate10s",
    "destination_service:istio_5xx:ratio10s",
    "istio:latency_p99:10s",
    "ALERTS",
    "ALERTS_FOR_STATE",
]
BEFORE_S, AFTER_S = 30, 40
BURST = (4, 10)  # seconds after the start: reviews answers 503 to 60% of its requests
RUN_S = 15  # how long Prometheus evaluates


def _dataset(start_ms: int) -> list[tuple[dict, list[tuple[int, float]]]]:
    series = []
    services_rps = {
        "reviews.default.svc.cluster.local": 20.0,
        "ratings.default.svc.cluster.local": 5.0,
    }
    buckets = [5.0, 25.0, 100.0, 500.0, math.inf]
    for svc, rps in services_rps.items():
        ok, bad, hist = 0.0, 0.0, [0.0] * len(buckets)
        ok_points, bad_points, hist_points = [], [], [[] for _ in buckets]
        for s in range(-BEFORE_S, AFTER_S + 1):
            t = start_ms + s * 1000
            failing = svc.startswith("reviews") and BURST[0] <= s < BURST[1]
            bad += rps * 0.6 if failing else (0.1 if svc.startswith("reviews") else 0.0)
            ok += rps * 0.4 if failing else rps
            bad_points.append((t, bad))
            ok_points.append((t, ok))
            latency = 300.0 if failing else 20.0
            for i, le in enumerate(buckets):
                hist[i] += rps if latency <= le else rps * 0.01
                hist_points[i].append((t, hist[i]))
        base = {
            "__name__": "istio_requests_total",
            "destination_service": svc,
            "reporter": "destination",
        }
        series.append(({**base, "response_code": "200"}, ok_points))
        series.append(({**base, "response_code": "503"}, bad_points))
        for i, le in enumerate(buckets):
            labels = {
                "__name__": "istio_request_duration_milliseconds_bucket",
                "destination_service": svc,
                "le": "+Inf" if math.isinf(le) else f"{le:g}",
            }
            series.append((labels, hist_points[i]))
    return series


def _bodies(series) -> list[bytes]:
    """One body per second of data, in time order (a Prometheus head wants it so)."""
    by_t: dict[int, list[bytes]] = {}
    for labels, points in series:
        blob = ip.encode_labels(sorted(labels.items()))
        for t, v in points:
            by_t.setdefault(t, []).append(ip.encode_write_request_from_blobs([blob], [t], [[v]]))
    return [ip.compress(b"".join(by_t[t])) for t in sorted(by_t)]


def _raw_samples(result: list[dict]) -> dict[tuple, dict[int, float]]:
    return {
        tuple(sorted(s["metric"].items())): {
            round(float(t) * 1000): float(v) for t, v in s["values"]
        }
        for s in result
    }


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def test_recorded_series_and_alerts_match_prometheus(prometheus_binary, tmp_path, live_server):
    start_ms = (int(time.time()) + 2) * 1000
    bodies = _bodies(_dataset(start_ms))
    rule_file = tmp_path / "istio.rules.yml"
    rule_file.write_text(RULES)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}
    # Canopy's org first (loading takes a moment), then Prometheus: it must hold all data
    # before its first evaluation, so the rules are loaded with a reload after the writes.
    owner = user_get_or_create(username="rules-compat")
    org = org_create(slug="rules-compat", name="Rules compatibility", owner=owner)
    limits_update(
        org=org, changes={"ingestion_rate": 1_000_000, "ingestion_burst_size": 10_000_000}
    )
    AlertingConfig.objects.for_org(org).create(org=org, min_interval_seconds=1)
    _, write_token = token_create(org=org, name="rw", scopes=["metrics:write"])
    with requests.Session() as session:
        for body in bodies:
            r = post_remote_write(
                f"{live_server.url}/api/v1/push",
                body,
                headers={"Authorization": f"Bearer {write_token}"},
                session=session,
            )
            assert r.status_code == 204, r.text
    while org_drain(signal="metrics", org_id=org.pk):
        pass
    (group,) = groups_parse(RULES)
    saved = services.group_save(org_id=org.pk, namespace="istio.rules.yml", group=group)

    with PrometheusServer(
        binary=prometheus_binary, remote_write_receiver=True, config=config
    ) as prom:
        for body in bodies:
            prom.remote_write(body)
        prom.custom_config = {**config, "rule_files": [str(rule_file)]}
        prom.reload()
        time.sleep(RUN_S)
        at = time.time()

        def samples(name: str) -> dict[tuple, dict[int, float]]:
            return _raw_samples(prom.query(f"{name}[{RUN_S + 10}s]", at))

        prom_data = {name: samples(name) for name in SERIES_COMPARED}
        rules_state = prom.api("rules")
    (prom_group,) = rules_state["groups"]
    assert all(r["health"] == "ok" for r in prom_group["rules"]), prom_group

    eval_times = sorted({t for points in prom_data[SERIES_COMPARED[0]].values() for t in points})
    assert len(eval_times) >= RUN_S - 3, eval_times
    # the burst must have made the alert go through pending and firing
    states = {dict(k).get("alertstate") for k in prom_data["ALERTS"]}
    assert {"pending", "firing"} <= states, prom_data["ALERTS"].keys()

    for ts in eval_times:
        outcome = services.group_evaluate(org_id=saved.org_id, group_id=saved.pk, ts_ms=ts)
        assert all(r.health == "ok" for r in outcome.rules), [r.last_error for r in outcome.rules]
    while org_drain(signal="metrics", org_id=org.pk):
        pass

    first = eval_times[0]
    mismatches = []
    for name in SERIES_COMPARED:
        got = instant_query(
            querier=PostgresQuerier(org_id=org.pk),
            query=f"{name}[{RUN_S + 10}s]",
            time_ms=round(at * 1000),
        )
        canopy = _raw_samples(got["result"])
        expected = prom_data[name]
        if set(canopy) != set(expected):
            mismatches.append(f"{name}: series {sorted(canopy)} != {sorted(expected)}")
            continue
        for key, points in expected.items():
            mine = {t: v for t, v in canopy[key].items() if first <= t <= eval_times[-1]}
            theirs = {t: v for t, v in points.items() if first <= t <= eval_times[-1]}
            if set(mine) != set(theirs):
                mismatches.append(f"{name}{dict(key)}: times {sorted(mine)} != {sorted(theirs)}")
                continue
            bad = [t for t in theirs if not _same(mine[t], theirs[t])]
            if bad:
                mismatches.append(
                    f"{name}{dict(key)} at {bad[:3]}: {[mine[t] for t in bad[:3]]} "
                    f"!= {[theirs[t] for t in bad[:3]]}"
                )
    assert not mismatches, "\n".join(mismatches)
