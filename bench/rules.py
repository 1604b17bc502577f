"""Rule evaluation: rule groups evaluated per minute per core, and group evaluation latency,
Canopy beside a real Prometheus evaluating the same rule file over the same data.

    .venv/bin/python bench/rules.py                     # 2,000 series, 1 h, ~2 min
    .venv/bin/python bench/rules.py --series 10000 --evaluations 60
    .venv/bin/python bench/rules.py --profile           # + cProfile of Canopy's evaluations

Dataset: bench/promql.py's Istio one (``istio_requests_total`` and the
``istio_request_duration_milliseconds`` histograms, 28-29 labels per series) over --hours
ending now, remote-written to a fresh Prometheus (Debian's 2.42) and a fresh Canopy
(bench/harness/canopy.py). Rules (RULES below): Istio's usual recording rules (per-workload
request rates and latency buckets) and alerts (5xx ratio, p99 latency), two groups.

Canopy: every group is evaluated --evaluations times in one process on the bench's database
(``manage.py shell``: ``services.group_evaluate``, what a worker runs for one tick: queries,
alert state, series ids, the outbox write) at successive 15-second evaluation times ending
at the dataset's last scrape (so every rule has data to work on).
Measured: the wall time of each group evaluation (p50/p95), and the CPU seconds of that
process plus every Canopy process (PostgreSQL included) over the run; groups per minute per
core = evaluations / CPU seconds * 60.

Prometheus (the reference, same run): the same rule file with a 1 s evaluation interval for
--prometheus-seconds; groups per minute per core from ``prometheus_rule_group_iterations_total``
over its process's CPU seconds, latency from ``prometheus_rule_group_last_duration_seconds``
sampled every evaluation (p50/p95).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import istio_payloads
from bench.harness.canopy import CanopyServer
from bench.harness.cpu import TreeCpu, background_load
from bench.harness.table import print_columns
from bench.promql import build_dataset, load
from tests.compat.prometheus_harness import PrometheusServer, prometheus_version

RULES = """groups:
- name: istio.workload.recording
  rules:
  - record: workload:istio_requests:rate5m
    expr: >-
      sum by (destination_workload, destination_workload_namespace, response_code, reporter)
        (rate(istio_requests_total[5m]))
  - record: workload:istio_request_duration_milliseconds_bucket:rate5m
    expr: >-
      sum by (le, destination_workload, destination_workload_namespace, reporter)
        (rate(istio_request_duration_milliseconds_bucket[5m]))
  - record: workload:istio_requests_5xx:ratio5m
    expr: >-
      sum by (destination_workload, destination_workload_namespace)
        (workload:istio_requests:rate5m{reporter="destination", response_code=~"5.."})
      / sum by (destination_workload, destination_workload_namespace)
        (workload:istio_requests:rate5m{reporter="destination"})
- name: istio.alerts
  rules:
  - alert: IstioHigh5xxRate
    expr: >-
      sum by (destination_workload, destination_workload_namespace)
        (rate(istio_requests_total{reporter="destination", response_code=~"5.."}[5m]))
      / sum by (destination_workload, destination_workload_namespace)
        (rate(istio_requests_total{reporter="destination"}[5m])) > 0.01
    for: 1m
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.destination_workload }}: {{ $value | humanizePercentage }} 5xx'
  - alert: IstioHighP99Latency
    expr: >-
      histogram_quantile(0.99, sum by (le, destination_workload)
        (rate(istio_request_duration_milliseconds_bucket{reporter="destination"}[5m]))) > 500
    for: 1m
    annotations:
      summary: '{{ $labels.destination_workload }} p99 {{ humanize $value }}ms'
"""

_EVALUATE = """
import json, os, resource, time
from backend.rules import services
from backend.rules.models import AlertingConfig
from backend.rules.rulefile import groups_parse
args = json.loads(os.environ["BENCH_RULES"])
org_id = args["org_id"]
AlertingConfig.objects.for_org(org_id).get_or_create(org_id=org_id)
# an interval of an hour: beat's own evaluations stay out of the way
groups = [services.group_save(org_id=org_id, namespace="istio.yml", group=g)
          for g in groups_parse(args["rules"].replace("  rules:", "  interval: 1h\\n  rules:"))]
walls, errors, series = [], set(), {}
if args["profile"]:
    import cProfile, pstats
    profiler = cProfile.Profile()
    profiler.enable()
cpu0 = time.process_time()
for i in range(args["evaluations"]):
    ts = args["end_ms"] - (args["evaluations"] - 1 - i) * 15_000  # within the data
    for g in groups:
        t = time.perf_counter()
        out = services.group_evaluate(org_id=g.org_id, group_id=g.pk, ts_ms=ts)
        walls.append(time.perf_counter() - t)
        errors |= {r.last_error for r in out.rules if r.health != "ok"}
        for raw, r in zip(g.rules, out.rules):
            series[raw.get("record") or raw.get("alert")] = len(r.series)
if args["profile"]:
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
print("RESULT", json.dumps({"walls": walls, "cpu": time.process_time() - cpu0,
                            "errors": sorted(errors), "series": series}))
"""


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def canopy_run(srv: CanopyServer, end_ms: int, evaluations: int, profile: bool) -> dict:
    cpu = TreeCpu(srv.root_pids(), srv.cpu_patterns())
    before = cpu()
    out = srv._manage(
        "shell",
        "-c",
        _EVALUATE,
        env={
            "BENCH_RULES": json.dumps(
                {
                    "org_id": srv.org_id,
                    "rules": RULES,
                    "end_ms": end_ms,
                    "evaluations": evaluations,
                    "profile": profile,
                }
            )
        },
    )
    server_cpu = cpu() - before
    if profile:
        print(out[: out.find("RESULT ")])
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["server_cpu"] = server_cpu
    return result


def _metric(prom: PrometheusServer, text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def prometheus_run(prom: PrometheusServer, rule_file: Path, seconds: float) -> dict:
    prom.custom_config = {
        "global": {"scrape_interval": "1m", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
    }
    prom.reload()
    time.sleep(3)  # the reload and a first evaluation
    metrics_url = prom.url + "/metrics"
    text = requests.get(metrics_url, timeout=10).text
    it0 = sum(_metric(prom, text, "prometheus_rule_group_iterations_total{").values())
    cpu0, t0 = prom.cpu_seconds(), time.monotonic()
    durations: list[float] = []
    while time.monotonic() - t0 < seconds:
        time.sleep(1)
        text = requests.get(metrics_url, timeout=10).text
        durations += _metric(prom, text, "prometheus_rule_group_last_duration_seconds{").values()
    cpu = prom.cpu_seconds() - cpu0
    text = requests.get(metrics_url, timeout=10).text
    iterations = sum(_metric(prom, text, "prometheus_rule_group_iterations_total{").values()) - it0
    rules = prom.api("rules")
    health = {r["name"]: r["health"] for g in rules["groups"] for r in g["rules"]}
    return {"iterations": iterations, "cpu": cpu, "durations": durations, "health": health}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", type=int, default=2000, help="about this many series (2000)")
    p.add_argument("--hours", type=float, default=1, help="history ending now (1)")
    p.add_argument("--interval", type=int, default=30_000, help="scrape interval, ms (30000)")
    p.add_argument("--evaluations", type=int, default=40, help="of each group in Canopy (40)")
    p.add_argument("--prometheus-seconds", type=float, default=30)
    p.add_argument("--profile", action="store_true", help="cProfile Canopy's evaluations")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    now = int(time.time() * 1000)
    end_ms = now - now % args.interval - args.interval
    ds = build_dataset(args.series, args.hours, args.interval, end_ms)
    print(
        f"dataset: {ds.n_series:,} Istio series, {ds.n_steps} scrapes {args.interval // 1000}s "
        f"apart ({ds.n_samples:,} samples); rules: 2 groups, 3 recording + 2 alerting; "
        f"machine: {os.cpu_count()} CPUs"
    )
    limits = {"out_of_order_time_window_seconds": int(args.hours * 3600) + 7200}
    with (
        PrometheusServer(remote_write_receiver=True, scrape_self=False) as prom,
        CanopyServer(extra_limits=limits) as srv,
        tempfile.TemporaryDirectory() as tmp,
    ):
        print(f"prometheus {prometheus_version()} at {prom.url}; canopy at {srv.url}")
        push = dict(istio_payloads.REMOTE_WRITE_HEADERS)
        load(
            ds,
            {
                "prometheus": (prom.write_url, push),
                "canopy": (
                    srv.url + "/api/v1/push",
                    {**push, "Authorization": f"Bearer {srv.token}"},
                ),
            },
            20,
        )
        while srv.stored_samples() < ds.n_samples:
            time.sleep(1)
        srv.compact()
        srv.sql("ANALYZE")
        print(f"background load: {background_load(2.0):.2f} of {os.cpu_count()} CPUs")

        canopy = canopy_run(srv, end_ms, args.evaluations, args.profile)
        rule_file = Path(tmp) / "istio.rules.yml"
        rule_file.write_text(RULES)
        reference = prometheus_run(prom, rule_file, args.prometheus_seconds)

    walls = canopy["walls"]
    canopy_cpu = canopy["cpu"] + canopy["server_cpu"]
    rows = [
        ["", "groups/min/core", "p50 ms", "p95 ms", "evaluations", "CPU s"],
        [
            "canopy",
            f"{len(walls) / canopy_cpu * 60:,.0f}",
            f"{statistics.median(walls) * 1000:.1f}",
            f"{_pct(walls, 95) * 1000:.1f}",
            str(len(walls)),
            f"{canopy_cpu:.1f}",
        ],
        [
            "prometheus",
            f"{reference['iterations'] / max(reference['cpu'], 1e-9) * 60:,.0f}",
            f"{statistics.median(reference['durations']) * 1000:.1f}",
            f"{_pct(reference['durations'], 95) * 1000:.1f}",
            f"{reference['iterations']:.0f}",
            f"{reference['cpu']:.1f}",
        ],
    ]
    print()
    print_columns(rows)
    print(
        f"\ncanopy CPU: evaluating process {canopy['cpu']:.1f} s + PostgreSQL and the rest of "
        f"Canopy {canopy['server_cpu']:.1f} s; series per rule: {canopy['series']}"
    )
    if canopy["errors"] or any(h != "ok" for h in reference["health"].values()):
        print(f"rule errors! canopy: {canopy['errors']}; prometheus: {reference['health']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
