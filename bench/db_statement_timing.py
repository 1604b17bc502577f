"""The cost of timing every SQL statement for /metrics (backend/observability/metrics.py: an
execute wrapper on every Django connection), against the same statements untimed, same run.

    CANOPY_DATA_DIR=$(mktemp -d) .venv/bin/python -m backend.embedded exec -- \
        .venv/bin/python bench/db_statement_timing.py            # ~1 min

Two statements, each run --statements times per round through Django's cursor (as every query
of Canopy is): ``SELECT 1`` (the cheapest round trip: the wrapper's share is largest) and an
``INSERT`` of one row into a temporary table; then the wrapper alone around a no-op (its own
cost, without the database's noise). Rounds alternate wrapper on / off (the wrapper is
taken out of ``connection.execute_wrappers`` for the "off" rounds), --repeat times; the
medians per statement are printed with the difference. In-process: no HTTP, so the figure is
the wrapper alone (a histogram observation, in multiprocess mode a write to an mmap'd file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.cpu import background_load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    print(f"background load before the run: {background_load(3.0):.2f} CPUs")
    # As under `make run`: prometheus_client in multiprocess mode (values in mmap'd files).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="canopy-bench-metrics-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    import django

    django.setup()
    from django.db import connection

    from backend.observability.metrics import _timed_statement

    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    assert _timed_statement in connection.execute_wrappers, "the wrapper is not installed"
    with connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE bench_rows (n bigint)")

    statements = {
        "SELECT 1": ("SELECT 1", None),
        "INSERT 1 row": ("INSERT INTO bench_rows VALUES (%s)", [1]),
    }
    results: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeat):
        for timed in (True, False):
            if not timed:
                connection.execute_wrappers.remove(_timed_statement)
            try:
                for name, (sql, params) in statements.items():
                    with connection.cursor() as cur:
                        started, started_cpu = time.perf_counter(), time.process_time()
                        for _ in range(args.statements):
                            cur.execute(sql, params)
                        elapsed = time.perf_counter() - started
                        cpu = time.process_time() - started_cpu
                    results.setdefault((name, timed), []).append(elapsed / args.statements)
                    results.setdefault((name, timed, "cpu"), []).append(cpu / args.statements)
            finally:
                if not timed:
                    connection.execute_wrappers.insert(0, _timed_statement)
        with connection.cursor() as cur:
            cur.execute("TRUNCATE bench_rows")

    print(
        f"{args.statements} statements x {args.repeat} rounds each, alternating"
        " (median µs per statement)"
    )
    print(f"{'statement':<20} {'untimed':>9} {'timed':>9} {'difference':>11} {'share':>7}")
    for name in statements:
        for kind, key in (("wall", ()), ("client CPU", ("cpu",))):
            off = statistics.median(results[(name, False, *key)]) * 1e6
            on = statistics.median(results[(name, True, *key)]) * 1e6
            label = f"{name}, {kind}"
            print(f"{label:<20} {off:9.1f} {on:9.1f} {on - off:11.1f} {(on - off) / off:7.1%}")

    # The wrapper alone, around an execute that does nothing: its own cost, free of the
    # database's noise (the statements above vary with the machine's load).
    def noop(sql, params, many, context):
        return None

    alone, alone_cpu = [], []
    calls = args.statements * 10
    for _ in range(args.repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            _timed_statement(noop, "SELECT 1", None, False, {})
        alone.append((time.perf_counter() - started) / calls)
        alone_cpu.append((time.process_time() - started_cpu) / calls)
    print(
        f"the wrapper alone around a no-op: {statistics.median(alone_cpu) * 1e6:.2f} µs of CPU"
        f" ({statistics.median(alone) * 1e6:.2f} µs wall) per call"
    )
    print(f"background load after the run: {background_load(3.0):.2f} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
