"""Re-run the day's rollup catch-up on a kept bench data folder, alone (no beat, no worker).

    .venv/bin/python bench/traces_query.py --spans 1000000 --rollup-only --keep-db
    CANOPY_DATA_DIR=/tmp/canopy-bench-XXXX .venv/bin/python -m backend.embedded exec -- \\
        .venv/bin/python bench/traces_rollup_rerun.py [--profile]

Resets the rollups (edges, running totals, metric outbox; watermarks before the first key),
times ``rollup_due`` over all the keys, and prints digests of the edges, the running totals
and every sample written, so two versions of the code can be compared on the same data
(answers unchanged = same digests).
"""

from __future__ import annotations

import cProfile
import hashlib
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the checkout it is run from (compare two versions)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

import django

django.setup()

import numpy as np  # noqa: E402
from django.db import connection  # noqa: E402

import backend.tracing.dependencies as d  # noqa: E402
from backend.metrics.storage import encoding  # noqa: E402


def main() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT min(start_ns), max(start_ns) FROM trace_span_keys")
        lo, hi = cur.fetchone()
        start = lo // 10**6 // 60_000 * 60_000
        now = hi // 10**6 + d.LATE_MS + 60_000
        cur.execute("TRUNCATE trace_dependency_edges, trace_metric_totals, metric_batches")
        cur.execute("UPDATE trace_rollup_orgs SET counted_seq = 0, ready_until_ms = %s", [start])
        cur.execute("ANALYZE trace_span_keys")
    load0 = os.getloadavg()[0]
    prof = cProfile.Profile() if "--profile" in sys.argv else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    n = d.rollup_due(now_ms=now, max_minutes=2000)
    if prof:
        prof.disable()
    print(
        f"counted {n} spans in {time.perf_counter() - t:.1f}s "
        f"(load {load0:.1f} -> {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)"
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT org_id, minute, parent, child, calls, errors, duration_ns_sum, "
            "duration_buckets, client_duration_ns_sum, client_duration_buckets "
            "FROM trace_dependency_edges ORDER BY 1, 2, 3, 4"
        )
        edges = cur.fetchall()
        cur.execute("SELECT org_id, fingerprint, total FROM trace_metric_totals ORDER BY 1, 2")
        totals = cur.fetchall()
        cur.execute('SELECT org_id, series_ids, timestamps, "values" FROM metric_batches')
        parts = [
            (
                np.full(n, o),
                encoding.unpack(bytes(a), "<i8"),
                encoding.unpack(bytes(b), "<i8"),
                encoding.unpack(bytes(c), "<f8").view(np.int64),
            )
            for o, n, a, b, c in (
                (r[0], len(encoding.unpack(bytes(r[1]), "<i8")), *r[1:]) for r in cur.fetchall()
            )
        ]
    cols = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(4)]
    order = np.lexsort((cols[2], cols[1], cols[0]))
    samples = np.stack([c[order] for c in cols])
    print("edges", len(edges), hashlib.sha1(repr(edges).encode()).hexdigest()[:12])
    print("totals", len(totals), hashlib.sha1(repr(totals).encode()).hexdigest()[:12])
    print("samples", samples.shape[1], hashlib.sha1(samples.tobytes()).hexdigest()[:12])
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
