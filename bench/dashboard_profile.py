"""In-process timings (and cProfiles) of the dashboard's slow calls on a kept bench database:
what ``bench/dashboard.py`` measures end to end, without HTTP and the other processes' noise.

    CANOPY_BENCH_KEEP=1 .venv/bin/python bench/dashboard.py      # prints nothing of the folder:
    ls -dt /tmp/canopy-bench-*                                   #   the newest kept one
    .venv/bin/python bench/dashboard_profile.py /tmp/canopy-bench-XXXX --repeat 7
    .venv/bin/python bench/dashboard_profile.py /tmp/canopy-bench-XXXX --only jaeger --profile

Each call runs once (warm-up), then ``--repeat`` times: best and median wall time. Calls:
the workload page's Jaeger recent traces (``service=web``, 100, last 60 min — the bench's
spans age out an hour after its run), the revisions touching a service, the revision page
(view and template, a logged-in client), the cardinality calls and the mesh graph (cache
bypassed; at the dataset's last scrape unless ``--at-ms``). ``--out DIR`` writes each answer
to DIR/<call>.out, to compare two versions of the code byte for byte (run from each
worktree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALLS = (
    "jaeger",
    "touching",
    "revpage",
    "lv2",
    "lvname",
    "lnsel",
    "active",
    "graph_workload",
    "graph_namespace",
)

# Run in `manage.py shell` with ARGS = JSON {only, repeat, profile, out, at_ms}.
_CODE = r"""
import cProfile, datetime, inspect, io, json, pstats, time
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from backend.meshconfig import selectors as msel
from backend.meshconfig.api import _revision_summary
from backend.metrics import cardinality
from backend.metrics.mesh import mesh_graph
from backend.metrics.promql.evaluator import matchers_of
from backend.metrics.promql.parse import parse_expr, unwrap
from backend.tenancy.models import Organization
from backend.tracing import selectors as tsel
from backend.tracing.api.jaeger import jaeger_trace
from backend.tracing.selectors import TraceQuery

args = json.loads(ARGS)
org = Organization.objects.get(slug="bench")
settings.ALLOWED_HOSTS = ["*"]
client = Client()
client.force_login(get_user_model().objects.get(username="bench"))
now_ns = time.time_ns()
at_ms = args["at_ms"]
if at_ms is None:
    with connection.cursor() as cur:
        cur.execute("SELECT max(max_ts) FROM metric_blocks WHERE org_id = %s AND "
                    "metric_name = 'istio_requests_total'", [org.pk])
        at_ms = cur.fetchone()[0] // 15000 * 15000 - 15000

def jaeger():
    q = TraceQuery(service="web", start_ns=now_ns - 3600 * 10**9, end_ns=now_ns, limit=100)
    ids = tsel.traces_find(org_id=org.pk, query=q)
    found = tsel.traces_get(org_id=org.pk, trace_ids=ids)
    shared = len(inspect.signature(jaeger_trace).parameters) > 1  # (older code: no keys)
    keys = {}
    return json.dumps([jaeger_trace(found[t], keys) if shared else jaeger_trace(found[t])
                       for t in ids if t in found], default=str)

since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
def touching():
    found = msel.revisions_touching(org=org, namespace="bookinfo", service="reviews",
                                    since=since)
    return json.dumps([{**_revision_summary(r), "touched": t} for r, t in found])

def revpage():
    r = client.get("/config/revisions", HTTP_HOST="localhost")
    assert r.status_code == 200, r.status_code
    return r.content.decode()

def sel(text):
    return matchers_of(unwrap(parse_expr(text)))

def values(*names):
    return lambda: json.dumps(cardinality.label_values_cardinality(
        org_id=org.pk, names=list(names), matchers=None, limit=20, max_series=10**6))

def lnsel():
    return json.dumps(cardinality.label_names_cardinality(
        org_id=org.pk, matchers=sel('{__name__="istio_requests_total"}'), limit=20,
        max_series=10**6))

def active():
    return json.dumps(cardinality.active_series(
        org_id=org.pk, matchers=sel('istio_requests_total{destination_workload="reviews-v1"}'),
        max_series=10**6))

def graph(group):
    return lambda: json.dumps(mesh_graph(org_id=org.pk, grouping=group, window="5m",
                                         time_ms=at_ms), default=str, sort_keys=True)

calls = {"jaeger": jaeger, "touching": touching, "revpage": revpage,
         "lv2": values("destination_workload", "response_code"), "lvname": values("__name__"),
         "lnsel": lnsel, "active": active, "graph_workload": graph("workload"),
         "graph_namespace": graph("namespace")}
for name in args["only"]:
    fn = calls[name]
    first = fn()
    if args["out"]:
        with open(f"{args['out']}/{name}.out", "w") as f:
            f.write(first)
    walls = []
    for _ in range(args["repeat"]):
        t = time.perf_counter(); fn(); walls.append(time.perf_counter() - t)
    walls.sort()
    print(f"{name}: best {walls[0] * 1000:.1f} ms, median "
          f"{walls[len(walls) // 2] * 1000:.1f} ms of {len(walls)}")
    if args["profile"]:
        prof = cProfile.Profile(); prof.enable(); fn(); prof.disable()
        for key, n in (("cumulative", 30), ("tottime", 15)):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(key).print_stats(n)
            text = out.getvalue()
            print(f"--- top {n} by {key} ---")
            print(text[text.find("   ncalls"):].rstrip())
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", help="a bench run's data folder kept with CANOPY_BENCH_KEEP=1")
    ap.add_argument("--only", nargs="+", choices=CALLS, default=list(CALLS))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="also cProfile one call of each")
    ap.add_argument("--out", help="write each call's answer to OUT/<call>.out")
    ap.add_argument("--at-ms", type=int, help="the mesh graph's time (ms)")
    args = ap.parse_args(argv)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    payload = {
        "only": args.only,
        "repeat": max(1, args.repeat),
        "profile": args.profile,
        "out": args.out and str(Path(args.out).resolve()),
        "at_ms": args.at_ms,
    }
    code = f"ARGS = {json.dumps(json.dumps(payload))}\n" + _CODE
    env = {
        **os.environ,
        "CANOPY_DATA_DIR": str(Path(args.data_dir).resolve()),
        "CANOPY_MESH_GRAPH_CACHE_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    python = sys.executable
    done = subprocess.run(
        [python, "-m", "backend.embedded", "exec", "--", python, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=False,
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
