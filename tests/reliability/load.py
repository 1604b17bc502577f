"""Load and a noisy tenant: ``python -m tests.reliability.load`` (``make reliability``).

On the real stack (as ``faults``), two tenants with the same ordinary limits:

1. idle: the quiet tenant's dashboard-style PromQL queries alone -> its idle p95;
2. load (``--minutes``, default 3): N remote-write senders push the quiet tenant at its
   ingestion limit, one sender pushes the noisy tenant at 10x its limit, and the quiet
   tenant's queries run throughout -> the quiet senders' errors (must be 0), the noisy
   tenant's 429 share, the quiet p95 under load (bound: 1.5x idle, the issue's acceptance
   bound), RSS of the stack's processes at start and end, the largest drain lag (age of the
   oldest batch in the outbox, sampled every 2 s).

Prints the figures; exits 1 when a bound is missed. The machine may be shared: the report
says what it measured, nothing more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import requests

from tests.reliability.stack import Stack, remote_write_sender, run_senders, stop_senders

SERIES = 50  # per payload


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else float("nan")


class Queries:
    """The quiet tenant's dashboard queries, one after another (a user with a dashboard)."""

    QUERIES = (
        "sum by (k) (rate(reliab_load[1m]))",
        "count(reliab_load)",
        "max_over_time(reliab_load[2m])",
    )

    def __init__(self, stack: Stack, token: str):
        self.stack, self.token = stack, token
        self.http = requests.Session()
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def once(self, i: int) -> None:
        now = time.time()
        started = time.monotonic()
        r = self.http.get(
            self.stack.url + "/prometheus/api/v1/query_range",
            params={
                "query": self.QUERIES[i % len(self.QUERIES)],
                "start": now - 300,
                "end": now,
                "step": 15,
            },
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        self.latencies.append(time.monotonic() - started)
        self.errors += r.status_code != 200

    def run(self, count: int | None = None, pause: float = 0.2) -> None:
        i = 0
        while not self.stop.is_set() and (count is None or i < count):
            self.once(i)
            i += 1
            self.stop.wait(pause)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--senders", type=int, default=4, help="senders of each tenant")
    parser.add_argument(
        "--quiet-minutes", type=float, default=1, help="the quiet load alone, before the noisy"
    )
    parser.add_argument("--limit", type=int, default=1000, help="ingestion limit, samples/s")
    args = parser.parse_args(argv)

    limits = {
        "ingestion_rate": args.limit,
        "ingestion_burst_size": args.limit * 2,
        "out_of_order_time_window_seconds": 3600,
    }
    with Stack(web_workers=2, worker_concurrency=2) as stack:
        quiet_org, quiet = stack.tenant("quiet", **limits)
        _, noisy = stack.tenant("noisy", **limits)
        # a little history for the queries to read, at the same shape as the load
        seed = remote_write_sender(stack, quiet, "seed", 5, series=SERIES, metric="reliab_load")
        threads = run_senders([seed])
        time.sleep(20)
        stop_senders([seed], threads)

        idle = Queries(stack, quiet)
        idle.run(count=60)
        rss_start = stack.stack_rss_mb()

        per_sender_rate = args.limit / SERIES / args.senders  # payloads/s: the limit in total
        quiet_senders = [
            remote_write_sender(
                stack, quiet, f"q{i}", per_sender_rate, series=SERIES, metric="reliab_load"
            )
            for i in range(args.senders)
        ]
        # 10x the limit in payloads of 10x the size, from several threads (one synchronous
        # sender cannot make that many requests a second on a loaded machine); no retries
        noisy_senders = [
            remote_write_sender(
                stack,
                noisy,
                f"noisy{i}",
                10 * args.limit / (10 * SERIES) / args.senders,
                series=10 * SERIES,
                metric="reliab_noisy",
                retry=False,
            )
            for i in range(args.senders)
        ]
        senders = [*quiet_senders, *noisy_senders]
        lag_max = 0.0

        def watch(queries: Queries, minutes: float) -> None:
            nonlocal lag_max
            thread = threading.Thread(target=queries.run, daemon=True)
            thread.start()
            end = time.monotonic() + minutes * 60
            while time.monotonic() < end:
                lag_max = max(lag_max, stack.outbox_depth(quiet_org)[1])
                time.sleep(2)
            queries.stop.set()
            thread.join(120)

        # the quiet tenant's own load first (to tell its cost from the noisy tenant's), then
        # the noisy tenant on top for the main phase
        threads = run_senders(quiet_senders)
        alone = Queries(stack, quiet)
        if args.quiet_minutes > 0:
            watch(alone, args.quiet_minutes)
        threads += run_senders(noisy_senders)
        busy = Queries(stack, quiet)
        watch(busy, args.minutes)
        stop_senders(senders, threads)
        rss_end = stack.stack_rss_mb()
        settle = time.monotonic()
        while stack.outbox_depth(quiet_org)[0] and time.monotonic() - settle < 120:
            time.sleep(1)
        lag_max = max(lag_max, stack.outbox_depth(quiet_org)[1])

    quiet_errors = sum(s.errors() for s in quiet_senders)
    quiet_sent = sum(len(s.attempts) for s in quiet_senders)
    quiet_samples_s = (
        sum(len(s.acked) for s in quiet_senders)
        * SERIES
        / ((args.minutes + args.quiet_minutes) * 60)
    )
    noisy_attempts = [st for s in noisy_senders for _, st in s.attempts]
    noisy_429 = sum(1 for st in noisy_attempts if st == 429)
    noisy_other = sum(
        1 for st in noisy_attempts if st != 429 and not (isinstance(st, int) and st < 300)
    )
    idle_p95, busy_p95 = _p95(idle.latencies), _p95(busy.latencies)
    print("\n== load + noisy tenant ==")
    print(
        f"quiet tenant: {args.senders} remote-write senders at its limit ({args.limit} samples/s "
        f"in total, {SERIES} series a payload) for {args.quiet_minutes + args.minutes:g} min: "
        f"{quiet_sent} requests, "
        f"{quiet_errors} errors, {quiet_samples_s:.0f} samples/s acknowledged"
    )
    print(
        f"noisy tenant: {args.senders} senders at 10x the same limit in total: "
        f"{len(noisy_attempts)} requests, "
        f"{noisy_429} answered 429, {noisy_other} other errors"
    )
    print(
        f"quiet tenant's queries: idle p95 {idle_p95 * 1000:.0f} ms ({len(idle.latencies)} "
        f"queries), under load p95 {busy_p95 * 1000:.0f} ms ({len(busy.latencies)} queries, "
        f"{busy.errors} errors); ratio {busy_p95 / idle_p95:.2f} (bound 1.5)"
    )
    if alone.latencies:
        alone_p95 = _p95(alone.latencies)
        print(
            f"  for comparison, with the quiet tenant's own load alone ({args.quiet_minutes:g} "
            f"min, before the noisy tenant started): p95 {alone_p95 * 1000:.0f} ms "
            f"({len(alone.latencies)} queries, {alone.errors} errors); ratio "
            f"{alone_p95 / idle_p95:.2f}"
        )
    print(f"stack RSS: {rss_start:.0f} MB at the start of the load, {rss_end:.0f} MB at the end")
    print(f"largest drain lag (oldest batch waiting in the quiet tenant's outbox): {lag_max:.1f} s")
    checks = {
        "no errors for the quiet tenant": quiet_errors == 0
        and busy.errors == 0
        and idle.errors == 0,
        "noisy tenant refused with 429": noisy_429 > 0,
        "quiet p95 within 1.5x idle": busy_p95 <= 1.5 * idle_p95,
        "RSS flat (end within 25% of start)": rss_end <= 1.25 * rss_start,
        "drain lag bounded (< 30 s)": lag_max < 30,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print("RESULT:", "PASS" if all(checks.values()) else "FAIL")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
