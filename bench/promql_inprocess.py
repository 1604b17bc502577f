"""PromQL ``query_range`` in-process, through Django's test client, on a kept bench database.

    CANOPY_BENCH_KEEP=1 .venv/bin/python bench/promql.py --results-cache off   # prints its data
    .venv/bin/python bench/promql_inprocess.py /tmp/canopy-bench-XXXX [--repeat 50] [--queries RE]

Runs ``manage.py shell`` on that database (embedded PostgreSQL/Redis started for it) and times
each query of bench/promql.py's QUERIES at 1 h / 6 h / 24 h (Grafana's steps, ending at the
dataset's newest sample) as a form POST through the whole Django stack (middleware, DRF, token,
limits, the engine, JSON), with the results cache off; plus ``vector(1)`` (the floor). No
gunicorn and no socket: the fixed cost of Canopy's own request path. Prints, per cell, the
median and best of ``--repeat`` runs (after a warm-up) and the SQL statements one request sends
(counted with an execute wrapper: psycopg's own BEGIN and Django's COMMIT are not statements
there, so before the lazy read-only transaction a query made two round trips more than this
count, and after it one more, the COMMIT; a ``BEGIN …; SET …; SELECT …`` sent as one counts
one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

_SCRIPT = r"""
import json, os, statistics, time
from urllib.parse import urlencode
from django.db import connection
from django.test import Client
from backend.tenancy.models import Organization
from backend.tenancy.services import token_create

cfg = json.loads(CFG)
org = Organization.objects.get(slug="bench")
_, secret = token_create(org=org, name="inprocess", scopes=["metrics:read"])
with connection.cursor() as cur:
    cur.execute("SELECT max(max_ts) FROM metric_blocks WHERE org_id = %s", [org.pk])
    (newest,) = cur.fetchone()
client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
def post(form):  # a form POST, as Grafana sends it
    return client.post("/prometheus/api/v1/query_range", form,
                       content_type="application/x-www-form-urlencoded")
statements = []
def count(execute, sql, params, many, context):
    statements.append(sql)
    return execute(sql, params, many, context)
cells = [("vector(1)", "vector(1)", 3_600_000, 15_000)]
for name, expr in cfg["queries"]:
    for rng, step in ((3_600_000, 15_000), (6 * 3_600_000, 60_000), (24 * 3_600_000, 300_000)):
        cells.append((name, expr, rng, step))
out = []
for name, expr, rng, step in cells:
    end = newest // step * step
    form = urlencode({"query": expr, "start": f"{(end - rng) / 1000:.3f}",
                      "end": f"{end / 1000:.3f}", "step": f"{step / 1000:g}"})
    r = post(form)
    assert r.status_code == 200, r.content[:300]
    statements.clear()
    with connection.execute_wrapper(count):
        post(form)
    n_sql = len(statements)
    walls = []
    for _ in range(cfg["repeat"]):
        t = time.perf_counter()
        post(form)
        walls.append(time.perf_counter() - t)
    out.append({"query": name, "range_h": rng // 3_600_000,
                "median_ms": statistics.median(walls) * 1000, "best_ms": min(walls) * 1000,
                "sql": n_sql})
print("RESULT " + json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir", type=Path, help="a kept bench folder (/tmp/canopy-bench-…)")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--queries", help="regex: only the queries whose name matches")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import re

    from bench.promql import QUERIES

    queries = [q for q in QUERIES if not args.queries or re.search(args.queries, q[0])]
    code = f"CFG = {json.dumps(json.dumps({'queries': queries, 'repeat': args.repeat}))}\n"
    env = {
        **os.environ,
        "CANOPY_DATA_DIR": str(args.data_dir),
        "CANOPY_PROMQL_RESULTS_CACHE": "0",
        "LOG_LEVEL": "WARNING",
    }
    for var in ("DATABASE_URL", "REDIS_URL"):
        env.pop(var, None)
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [
            PYTHON,
            "-m",
            "backend.embedded",
            "exec",
            "--",
            PYTHON,
            "manage.py",
            "shell",
            "-c",
            code + _SCRIPT,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(proc.stdout + proc.stderr)
    rows = json.loads(line[len("RESULT ") :])
    print(f"load average before: {load:.2f}; after: {os.getloadavg()[0]:.2f}; 2 CPUs")
    print(f"{'query':22} {'range':>5} {'median ms':>10} {'best ms':>8} {'SQL':>4}")
    for r in rows:
        print(
            f"{r['query']:22} {r['range_h']:>4}h {r['median_ms']:10.2f} {r['best_ms']:8.2f}"
            f" {r['sql']:4d}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
