"""PromQL ``query_range`` in-process, through Django's test client, on a kept bench database.

    CANOPY_BENCH_KEEP=1 .venv/bin/python bench/promql.py --results-cache off   # prints its data
    .venv/bin/python bench/promql_inprocess.py /tmp/canopy-bench-XXXX [--repeat 50] [--queries RE]
    .venv/bin/python bench/promql_inprocess.py /tmp/canopy-bench-XXXX --ab   # against main's reads

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
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

_SCRIPT = r"""
import contextlib, json, os, statistics, time
from unittest import mock
from django.db import transaction
from backend.metrics.storage import reader
from urllib.parse import urlencode
from django.db import connection
from django.test import Client
from backend.tenancy.models import Organization
from backend.tenancy.services import token_create

cfg = json.loads(CFG)

@contextlib.contextmanager
def _old_reading(self, *, timeout_seconds):
    # main's reading scope before the lazy transaction: atomic() (psycopg's BEGIN), the
    # settings in their own statement, COMMIT; and no blocks read with the series
    if self._blocks_seen is not None:
        yield self
        return
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT set_config('statement_timeout', %s, true),"
                        " set_config('transaction_read_only', 'on', true)",
                        [str(max(1, int(timeout_seconds * 1000)))])
        self._blocks_seen = {}
        try:
            yield self
        finally:
            self._blocks_seen = None

@contextlib.contextmanager
def old_reads():
    with mock.patch.object(reader.PostgresQuerier, "reading", _old_reading), \
            mock.patch.object(reader, "_several_statements", lambda cur: False):
        yield
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
    walls = {"new": [], "old": []}
    for _ in range(cfg["repeat"]):
        for variant in ("new", "old") if cfg["ab"] else ("new",):
            with old_reads() if variant == "old" else contextlib.nullcontext():
                t = time.perf_counter()
                post(form)
                walls[variant].append(time.perf_counter() - t)
    row = {"query": name, "range_h": rng // 3_600_000, "sql": n_sql}
    for variant, w in walls.items():
        if w:
            key = "" if variant == "new" else "old_"
            row[key + "median_ms"] = statistics.median(w) * 1000
            row[key + "best_ms"] = min(w) * 1000
    out.append(row)
print("RESULT " + json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir", type=Path, help="a kept bench folder (/tmp/canopy-bench-…)")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--queries", help="regex: only the queries whose name matches")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument(
        "--ab",
        action="store_true",
        help="alternate each run with main's reads (transaction.atomic + set_config, blocks in "
        "their own statement), in the same process: a before/after less sensitive to load",
    )
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import re

    from bench.promql import QUERIES

    queries = [q for q in QUERIES if not args.queries or re.search(args.queries, q[0])]
    cfg = {"queries": queries, "repeat": args.repeat, "ab": args.ab}
    code = f"CFG = {json.dumps(json.dumps(cfg))}\n"
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
    head = f"{'query':22} {'range':>5} {'median ms':>10} {'best ms':>8} {'SQL':>4}"
    if args.ab:
        head += f" {'main: median ms':>16} {'best ms':>8} {'ratio of medians':>17}"
    print(head)
    for r in rows:
        line = (
            f"{r['query']:22} {r['range_h']:>4}h {r['median_ms']:10.2f} {r['best_ms']:8.2f}"
            f" {r['sql']:4d}"
        )
        if args.ab:
            ratio = r["median_ms"] / r["old_median_ms"]
            line += f" {r['old_median_ms']:16.2f} {r['old_best_ms']:8.2f} {ratio:17.2f}"
        print(line)
    if args.ab:
        ratios = [r["median_ms"] / r["old_median_ms"] for r in rows]
        print(f"median of the ratios (this branch / main): {statistics.median(ratios):.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
