"""Faults under steady load: ``python -m tests.reliability.faults`` (``make reliability``).

Starts the real stack (``make run``'s processes on embedded PostgreSQL and Redis with AOF on),
runs remote-write senders (HTTP) and OTLP trace senders (gRPC) at a steady rate, each payload
with its own sample timestamps / trace id, each retried on 5xx, 429 and connection errors
until acknowledged. While they push: kill -9 a Celery pool worker, kill -9 a gunicorn worker,
restart PostgreSQL, restart Redis. Then stops the senders, waits for the outbox to drain and
counts what is stored: every acknowledged sample once per series (PromQL
``count_over_time``), every acknowledged trace with exactly its spans (the span store, head
and blocks). Prints a report; exits 1 if anything was lost or duplicated, a sender gave up,
or the service did not come back by itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from tests.reliability.stack import (
    Stack,
    django_reader,
    otlp_grpc_sender,
    remote_write_sender,
    run_senders,
    stop_senders,
)

SERIES = 5
SPANS = 5


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=4, help="payloads/s per sender")
    parser.add_argument("--senders", type=int, default=2, help="of each kind")
    parser.add_argument("--settle", type=float, default=25, help="s of load after each fault")
    args = parser.parse_args(argv)

    limits = {
        "out_of_order_time_window_seconds": 3600,
        "query_max_samples": 50_000_000,
    }
    with Stack(web_workers=2, worker_concurrency=2) as stack:
        org_id, token = stack.tenant("reliab", **limits)
        senders = [
            remote_write_sender(stack, token, f"rw{i}", args.rate, series=SERIES)
            for i in range(args.senders)
        ] + [
            otlp_grpc_sender(stack, token, f"otlp{i}", args.rate, spans=SPANS)
            for i in range(args.senders)
        ]
        started = time.monotonic()
        threads = run_senders(senders)
        time.sleep(args.settle)
        faults = []
        for inject in (
            stack.kill_celery_worker,
            stack.kill_gunicorn_worker,
            stack.restart_postgres,
            stack.restart_redis,
        ):
            at = time.monotonic()
            what = inject()
            time.sleep(args.settle)
            faults.append((what, at))
        stop_senders(senders, threads)
        load_s = time.monotonic() - started

        # drain: both outboxes of the org empty (beat's sweep picks up anything left behind)
        drain_started = time.monotonic()
        while stack.outbox_depth(org_id)[0] and time.monotonic() - drain_started < 180:
            time.sleep(1)
        depth, _ = stack.outbox_depth(org_id)
        drain_s = time.monotonic() - drain_started
        ready = stack.ready()

        # samples: count per series through the read path
        counts = {}
        result = stack.promql(token, "count_over_time(reliab_samples[1h])")["result"]
        for r in result:
            counts[(r["metric"]["sender"], r["metric"]["k"])] = int(float(r["value"][1]))
        lost_samples = duplicated_samples = 0
        for s in senders[: args.senders]:
            acked = len(s.acked)
            for k in range(SERIES):
                found = counts.get((s.name, str(k)), 0)
                lost_samples += max(0, acked - found)
                duplicated_samples += max(0, found - acked)

        # spans: per trace in the span store (head and blocks)
        connection = django_reader(stack)
        from backend.tracing.storage.reader import spans_of_traces

        lost_spans = duplicated_spans = 0
        traces = 0
        for s in senders[args.senders :]:
            for i in range(0, len(s.acked), 500):
                chunk = s.acked[i : i + 500]
                per_trace = Counter(
                    sp.trace_id for sp in spans_of_traces(org_id=org_id, trace_ids=chunk)
                )
                for trace_id in chunk:
                    found = per_trace.get(trace_id, 0)
                    lost_spans += max(0, SPANS - found)
                    duplicated_spans += max(0, found - SPANS)
                traces += len(chunk)
        connection.close()

    requests_sent = sum(len(s.attempts) for s in senders)
    acked_payloads = sum(len(s.acked) for s in senders)
    failed_attempts = sum(s.errors() for s in senders)
    recovered = sum(s.recovered for s in senders)
    gave_up = sum(len(s.lost) for s in senders)
    print("\n== faults under steady load ==")
    print(
        f"senders: {args.senders} remote-write (HTTP, {SERIES} series each) + {args.senders} "
        f"OTLP traces (gRPC, {SPANS} spans each), {args.rate:g} payloads/s each, {load_s:.0f} s"
    )
    print(f"requests sent (attempts): {requests_sent}; payloads acknowledged: {acked_payloads}")
    print(
        f"attempts refused or failed (5xx/429/connection): {failed_attempts}; payloads that "
        f"succeeded on retry: {recovered}; payloads given up: {gave_up}"
    )
    print(f"faults injected: {len(faults)}")
    worst = 0.0
    for what, at in faults:
        window = [(t, st, s) for s in senders for t, st in s.attempts if at <= t < at + args.settle]
        failed = [t for t, st, _ in window if not (isinstance(st, int) and 200 <= st < 300)]
        if not failed:
            print(f"  {what}: no failed attempt (recovery 0 s)")
            continue
        # recovered: every sender has a 2xx after the last failure of the window
        last_failure = max(failed)
        firsts = [s.first_success_after(last_failure) for s in senders]
        if any(f is None for f in firsts):
            print(f"  {what}: NOT recovered")
            worst = float("inf")
            continue
        recovery = max(firsts) - at
        worst = max(worst, recovery)
        print(
            f"  {what}: {len(failed)} failed attempts, from {min(failed) - at:.1f} s to "
            f"{last_failure - at:.1f} s after; every sender acknowledged again "
            f"{recovery:.1f} s after the fault"
        )
    print(f"drain after the load: {drain_s:.1f} s, outbox left: {depth}; /readyz ok: {ready}")
    print(
        f"samples: {sum(len(s.acked) for s in senders[: args.senders]) * SERIES} acknowledged, "
        f"lost = {lost_samples}, duplicated = {duplicated_samples}"
    )
    print(
        f"spans: {traces * SPANS} acknowledged in {traces} traces, lost = {lost_spans}, "
        f"duplicated = {duplicated_spans}"
    )
    ok = (
        lost_samples == duplicated_samples == lost_spans == duplicated_spans == gave_up == 0
        and depth == 0
        and ready
        and worst != float("inf")
    )
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
