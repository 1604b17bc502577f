"""Trace query benchmark: p50/p95 latency of the Jaeger API on a large span store.

    .venv/bin/python bench/traces_query.py                 # 5,000,000 spans for the tenant
    .venv/bin/python bench/traces_query.py --spans 1000000
    .venv/bin/python bench/traces_query.py --spans 1000000 --rollup-only --profile /tmp/p.pstats
    .venv/bin/python bench/traces_query.py --spans 1000000 --no-rollups   # no day's catch-up

A fresh Canopy (bench/harness/canopy.py) is filled directly in PostgreSQL (generate_series
into the row head, as rows from before the drain wrote blocks, with their keys in
``trace_span_keys``, so loading takes minutes, not hours): the tenant's spans spread over the
last 24 hours across 20 services x 10 operations, traces of 10 spans (a root and 9 children
in other services), Envoy-like tags with 2 % errors; another org's spans (a fifth as many) sit
beside them. The dependency rollups are computed for the 24 hours, then the head is cut into
blocks as the beat job does (all but the last ~20 minutes; the counted keys pruned, small
blocks merged), then each query runs
--repeat times through the HTTP API: trace by id, service+operation search (last hour),
tag search (http.status_code=500, last hour) and /api/dependencies over 24 h; then the trace
search page's helpers: the busiest service (1 h, 24 h) and the short-id lookup of the "go to
trace" box (a unique prefix, and an 8-digit one every trace shares), over 24 h.
Targets (issue 6): trace by id < 50 ms, searches < 300 ms at p95.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import zlib
from pathlib import Path

import psycopg
import requests

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.canopy import CanopyServer

SERVICES, OPERATIONS, SPANS_PER_TRACE = 20, 10, 10
DAY_NS = 24 * 3600 * 10**9
STORE_LOCK = zlib.crc32(b"trace_store") & 0x7FFFFFFF  # backend/tracing/storage/blocks.py

_FILL = """
INSERT INTO trace_spans (org_id, trace_id, span_id, parent_span_id, service_id, operation_id,
    kind, start_ns, duration_ns, status_code, resource_id, attributes, flags)
SELECT %(org)s,
       decode(lpad(to_hex(%(salt)s::bigint), 16, '0') || lpad(to_hex(g / 10), 16, '0'), 'hex'),
       decode(lpad(to_hex(g), 16, '0'), 'hex'),
       CASE WHEN g %% 10 = 0 THEN NULL ELSE decode(lpad(to_hex(g - g %% 10), 16, '0'), 'hex') END,
       (%(services)s)[1 + (g / 10 + g %% 10) %% 20],
       (%(operations)s)[1 + ((g / 10 + g %% 10) %% 20) * 10 + (g / 10) %% 10],
       CASE WHEN g %% 10 = 0 THEN 2 ELSE 3 END,
       %(t0)s + (g / 10) * %(step)s + (g %% 10) * 1000,
       1000000 + (g * 7919) %% 50000000,
       CASE WHEN (g / 10) %% 50 = 0 THEN 2 ELSE 0 END,
       %(resource)s,
       jsonb_build_object('http.method', 'GET', 'http.status_code',
                          CASE WHEN (g / 10) %% 50 = 0 THEN 500 ELSE 200 END,
                          'upstream_cluster', 'outbound|9080||svc-' || (g %% 20),
                          'node_id', 'sidecar~10.0.' || (g %% 250) || '.7~pod-' || (g %% 997),
                          'guid:x-request-id', md5(g::text)),
       1
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS g
"""


def fill(srv: CanopyServer, org_id: int, n_spans: int, salt: int) -> None:
    services = [
        srv.sql(
            "INSERT INTO trace_services (org_id, name, first_seen) VALUES "
            "(%s, %s, now()) RETURNING id",
            [org_id, f"svc-{i}"],
        )[0][0]
        for i in range(SERVICES)
    ]
    operations = [
        srv.sql(
            "INSERT INTO trace_operations (org_id, service_id, name, kind, "
            "first_seen) VALUES (%s, %s, %s, 2, now()) RETURNING id",
            [org_id, services[s], f"GET /api/{o}"],
        )[0][0]
        for s in range(SERVICES)
        for o in range(OPERATIONS)
    ]
    ((resource,),) = srv.sql(
        "INSERT INTO trace_resources (org_id, attributes_hash, attributes)"
        " VALUES (%s, %s, '{}') RETURNING id",
        [org_id, salt],
    )
    now = time.time_ns()
    t0 = now - DAY_NS
    step = DAY_NS // max(1, n_spans // SPANS_PER_TRACE)
    for day in range(3):  # partitions for yesterday, today and tomorrow
        d = (now // 10**6 // 86_400_000 + day - 1) * 86_400_000
        name = time.strftime("%Y%m%d", time.gmtime(d / 1000))
        srv.sql(
            f"CREATE TABLE IF NOT EXISTS trace_spans_{name} PARTITION OF trace_spans "
            f"FOR VALUES FROM ({d * 10**6}) TO ({(d + 86_400_000) * 10**6})"
        )
    chunk = 500_000
    for lo in range(0, n_spans, chunk):
        srv.sql(
            _FILL,
            {
                "org": org_id,
                "salt": salt,
                "services": services,
                "operations": operations,
                "t0": t0,
                "step": step,
                "resource": resource,
                "lo": lo,
                "hi": min(n_spans, lo + chunk),
            },
        )


# The catch-up of the whole day at once (optionally under cProfile).
_CATCH_UP = """
import cProfile, pstats
import backend.tracing.dependencies as d
profile = "{profile}"
prof = cProfile.Profile() if profile else None
if prof:
    prof.enable()
print(d.rollup_due(max_minutes=2000))
if prof:
    prof.disable()
    prof.dump_stats(profile)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
"""

PASSWORD = "bench-password-1234"


def _log_in(srv: CanopyServer) -> requests.Session:
    """A dashboard session of the bench org's owner (the pages are behind a login)."""
    srv._manage(
        "shell",
        "-c",
        "from backend.tenancy.services import user_get_or_create\n"
        f"user_get_or_create(username='bench', password='{PASSWORD}')",
    )
    s = requests.Session()
    s.get(srv.url + "/login/", timeout=30)
    r = s.post(
        srv.url + "/login/",
        data={
            "username": "bench",
            "password": PASSWORD,
            "csrfmiddlewaretoken": s.cookies["csrftoken"],
        },
        headers={"Referer": srv.url + "/login/"},
        timeout=30,
    )
    r.raise_for_status()
    return s


def timed(session, url, params, repeat) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = session.get(url, params=params, timeout=60, allow_redirects=False)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spans", type=int, default=5_000_000)
    p.add_argument("--repeat", type=int, default=40)
    p.add_argument(
        "--rollup-only",
        action="store_true",
        help="stop after the day's rollup catch-up (no cut, no queries)",
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="cProfile the catch-up into FILE (pstats) and print its top functions",
    )
    p.add_argument(
        "--keep-db",
        action="store_true",
        help="keep the data folder (CANOPY_BENCH_KEEP) for a post-mortem",
    )
    p.add_argument(
        "--no-rollups",
        action="store_true",
        help="mark the day rolled up without computing it (minutes instead of a quarter of an "
        "hour on a loaded machine): every figure but the dependencies one stays valid",
    )
    args = p.parse_args(argv)
    if args.keep_db:
        os.environ["CANOPY_BENCH_KEEP"] = "1"
    load = os.getloadavg()[0]
    print(f"background load before the run: {load:.1f} (1 min, {os.cpu_count()} CPUs)")
    with CanopyServer() as srv:
        # Roll up from 25 h ago: set the orgs' watermarks before beat's first run sets them to
        # "an hour ago" (beat and the catch-up below then share them: nothing counted twice).
        start_ms = time.time_ns() // 10**6 - 25 * 3600_000
        t = time.perf_counter()
        other = srv.sql(
            "INSERT INTO tenancy_organization (slug, name, created_at) VALUES "
            "('neighbour', 'Neighbour', now()) RETURNING id"
        )[0][0]
        for org in (srv.org_id, other):
            srv.sql(
                "INSERT INTO trace_rollup_orgs (org_id, counted_seq, ready_until_ms) "
                "VALUES (%s, 0, %s) ON CONFLICT (org_id) DO UPDATE "
                "SET counted_seq = 0, ready_until_ms = EXCLUDED.ready_until_ms",
                [org, start_ms - start_ms % 60_000],
            )
        # Beat's rollup and cut must not pass over minutes still being loaded (they would
        # never count the rows that land behind their watermark): hold the orgs' store locks.
        hold = psycopg.connect(srv.database_url, autocommit=True)
        for org in (srv.org_id, other):
            hold.execute("SELECT pg_advisory_lock(%s, %s)", [STORE_LOCK, org])
        fill(srv, srv.org_id, args.spans, salt=1)
        fill(srv, other, args.spans // 5, salt=2)
        # what the drain keeps of every span for the rollups (it writes blocks plus these
        # keys; the bench loads rows, as an upgrade finds them, and their keys)
        t_keys = time.perf_counter()
        srv.sql(
            "INSERT INTO trace_span_keys SELECT org_id, trace_id, span_id, parent_span_id, "
            "service_id, operation_id, kind, start_ns, duration_ns, status_code, "
            "left(attributes->>'peer.service', 512), seq FROM trace_spans"
        )
        print(f"span keys written in {time.perf_counter() - t_keys:.0f}s")
        hold.close()
        srv.sql("ANALYZE trace_spans")
        srv.sql("ANALYZE trace_span_keys")
        print(
            f"loaded {args.spans:,} + {args.spans // 5:,} spans in {time.perf_counter() - t:.0f}s"
        )
        t = time.perf_counter()
        if args.no_rollups:
            # (the cut moves counted spans only: mark the day counted without counting it)
            srv.sql(
                "UPDATE trace_rollup_orgs SET ready_until_ms = %s, counted_seq = "
                "(SELECT coalesce(max(seq), 0) FROM trace_span_keys)",
                [time.time_ns() // 10**6 // 60_000 * 60_000 - 120_000],
            )
            print("dependency rollups skipped (--no-rollups): the dependencies figure is void")
        else:
            load0 = os.getloadavg()[0]
            out = srv._manage("shell", "-c", _CATCH_UP.format(profile=args.profile or ""))
            if args.profile:
                print(out)
            print(
                f"dependency rollups for 24 h computed in {time.perf_counter() - t:.0f}s "
                f"(from the key head trace_span_keys; load {load0:.1f} -> {os.getloadavg()[0]:.1f})"
            )
        if args.rollup_only:
            print(f"data folder: {srv.data_dir}" if args.keep_db else "")
            return 0
        ((rows_size,),) = srv.sql(
            "SELECT sum(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relname LIKE 'trace_spans_2%%' AND relkind = 'r'"
        )
        t = time.perf_counter()
        moved = srv._manage(
            "shell",
            "-c",
            "import backend.tracing.dependencies as d\nprint(d.blocks_cut_due())",
        ).split()[-1]
        for (name,) in srv.sql(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'trace_spans_2%%'"
        ):
            srv.sql(f"VACUUM FULL {name}")
        srv.sql("ANALYZE trace_blocks")
        srv.sql("ANALYZE trace_spans")
        print(
            f"cut {int(moved):,} spans into blocks in {time.perf_counter() - t:.0f}s "
            "(with VACUUM FULL of the head)"
        )
        load_before = os.getloadavg()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {srv.token}"
        base = srv.url + "/jaeger/api"
        now_us = time.time_ns() // 1000
        hour = {"start": now_us - 3600 * 10**6, "end": now_us, "limit": 20}
        ids = [f"{1:016x}{random.randrange(args.spans // 10):016x}" for _ in range(args.repeat)]
        results = {}
        results["trace by id"] = [timed(session, f"{base}/traces/{i}", {}, 1)[0] for i in ids]
        results["service+operation search, 1 h"] = timed(
            session,
            f"{base}/traces",
            {**hour, "service": "svc-3", "operation": "GET /api/4"},
            args.repeat,
        )
        results["tag search http.status_code=500, 1 h"] = timed(
            session,
            f"{base}/traces",
            {**hour, "service": "svc-0", "tags": '{"http.status_code":"500"}'},
            args.repeat,
        )
        results["dependencies, 24 h"] = timed(
            session,
            f"{base}/dependencies",
            {"endTs": now_us // 1000, "lookback": 86_400_000},
            args.repeat,
        )
        # The trace search page's helpers (issue 17): the busiest service of the lookback,
        # and the "go to trace" box resolving a short id among the last 24 h of traces.
        activity = srv.url + "/traces/services/activity"
        results["busiest service, 1 h"] = timed(session, activity, {"lookback": "1h"}, args.repeat)
        results["busiest service, 24 h"] = timed(
            session, activity, {"lookback": "24h"}, args.repeat
        )
        page = _log_in(srv)
        # (this dataset's ids differ only in their last digits: a unique prefix is 31 long)
        results["short id, unique prefix, 24 h"] = [
            timed(page, srv.url + "/traces", {"trace": i[:31]}, 1)[0] for i in ids
        ]
        # every trace of the tenant starts with its salt's 16 digits: the 20 newest are listed
        results["short id shared by all traces, 24 h"] = timed(
            page, srv.url + "/traces", {"trace": f"{1:016x}"[:8]}, args.repeat
        )
        ((size,),) = srv.sql(
            "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relkind = 'r' "
            "AND (relname LIKE 'trace_spans_2%%' OR relname LIKE 'trace_blocks_2%%')"
        )
        ((head,),) = srv.sql("SELECT count(*) FROM trace_spans")
        load_after = os.getloadavg()
    print(
        f"span tables: {rows_size / 2**30:.2f} GiB as rows, {size / 2**30:.2f} GiB after the cut "
        f"({head:,} spans left in the head)"
    )
    print(
        "background load (1-min load average, this bench included) before / after the queries: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"{'query':42s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for name, ms in results.items():
        ms = sorted(ms)
        print(f"{name:42s} {statistics.median(ms):8.1f} {ms[int(len(ms) * 0.95) - 1]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
