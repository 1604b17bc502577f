"""Load and a noisy tenant: ``python -m tests.reliability.load`` (``make reliability``).

On the real stack (as ``faults``; by default with ingest on its own gunicorn pool,
``CANOPY_INGEST_BIND``, where the senders send: ``--no-ingest-pool`` for one pool), two tenants
with the same ordinary limits:

1. idle: the quiet tenant's dashboard-style PromQL queries with no load at all (no sender
   running, both outboxes drained);
2. the quiet tenant's own load alone (``--quiet-minutes``): N remote-write senders at its
   ingestion limit, its queries throughout (for comparison);
3. the noisy load (``--minutes`` in all, default 3), in windows of ``--window`` s: the quiet
   senders as before plus N senders pushing the noisy tenant at 10x its limit, the quiet
   queries throughout; after each window every sender stops, the outboxes drain, and an idle
   window of ``--idle-queries`` queries follows. Idle and loaded windows alternate, so the
   idle reference is measured under the same background load of the machine as the load it is
   compared with (the machine may be shared).

Figures: the quiet senders' errors (must be 0), the noisy tenant's offered rate (at least 9x
its limit, or the run did not test what it says) and its 429 share, the quiet p95 under the
noisy load against the idle p95 (bound: 1.5x, the issue's acceptance bound), RSS of the stack
at start and end, the largest drain lag (age of the oldest batch in the quiet outbox, sampled
every 2 s), and per phase where the CPU went (the stack by process kind, the load generator,
the rest of the machine) and the queries' time as the server measured it.

The load generator: the senders run in processes of their own (their payload building must
not hold the GIL of the thread that times the queries), at the stack's CPU priority by default:
``--nice N`` lowers it. Senders are synchronous: on a busy machine, when the stack answers
slowly, they offer less than the load the run claims, which the run checks (the quiet
tenant: at least 90% of its limit acknowledged; the noisy one: at least 9x offered). The query
client is a thread of this script. Exits 1 when a bound is missed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
import types
from pathlib import Path

import requests

from tests.reliability.stack import (
    Stack,
    _free_port,
    _proc_table,
    remote_write_sender,
    run_senders,
    stop_senders,
)

SERIES = 50  # per payload


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else float("nan")


TICK = os.sysconf("SC_CLK_TCK")
QUERY_ROUTE = ('route="prometheus/api/v1/query_range"', 'method="GET"')


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (every core, every process) so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


class CpuMeter:
    """Where the CPU goes during a phase: the stack's processes by kind, the load generator
    (this script's query thread, and the sender processes), and the rest of the machine (other
    people's work on a shared machine), in cores (CPU seconds per second)."""

    def __init__(self, stack: Stack, senders: list, ingest_bind: str | None):
        self.stack, self.senders, self.ingest_bind = stack, senders, ingest_bind

    def _groups(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        data = str(self.stack.data_dir)
        table = _proc_table()
        mine = set(self.stack.descendants())
        for pid, (_, cmd) in table.items():
            if pid not in mine and data not in cmd:
                continue
            if "postgres" in cmd:
                kind = "postgres"
            elif "redis" in cmd:
                kind = "redis"
            elif "gunicorn" in cmd and self.ingest_bind and self.ingest_bind in cmd:
                kind = "web-ingest (gunicorn)"
            elif "gunicorn" in cmd:
                kind = "web (gunicorn)"
            elif "celery" in cmd and "beat" not in cmd:
                kind = "worker (celery)"
            else:
                kind = "other stack"
            groups.setdefault(kind, []).append(pid)
        # postgres backends are children of the postmaster, started outside our tree
        postmasters = {p for p in groups.get("postgres", [])}
        groups["postgres"] = sorted(
            postmasters | {p for p, (pp, _) in table.items() if pp in postmasters}
        )
        return groups

    def snapshot(self) -> dict[str, float]:
        out = {k: sum(_proc_cpu(p) for p in pids) for k, pids in self._groups().items()}
        out["load generator: queries"] = _proc_cpu(os.getpid())
        out["load generator: senders"] = sum(_proc_cpu(p.pid) for p in self.senders if p.pid)
        out["machine"] = _machine_busy()
        out["t"] = time.monotonic()
        return out

    @staticmethod
    def cores(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        """Cores used between two snapshots, by kind; ``rest of the machine`` is everything
        else that ran (other sessions' work on a shared machine)."""
        dt = max(b["t"] - a["t"], 1e-9)
        # a process that ended between the two counts as 0 after: never negative
        out = {
            k: max(b.get(k, 0.0) - a.get(k, 0.0), 0.0) / dt for k in b if k not in ("t", "machine")
        }
        out["rest of the machine"] = max(
            (b["machine"] - a["machine"]) / dt - sum(out.values()), 0.0
        )
        return out


def _server_query_time(stack: Stack) -> tuple[float, float]:
    """(sum of seconds, count) of the query_range requests as the web processes timed them
    (from the request entering Django's middleware to the response: no queueing in gunicorn,
    no client), from the stack's /metrics."""
    text = requests.get(stack.url + "/metrics", headers={"Accept": "text/plain"}, timeout=30).text
    total = count = 0.0
    for line in text.splitlines():
        if all(part in line for part in QUERY_ROUTE) and line.startswith(
            "canopy_http_request_duration_seconds_"
        ):
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("canopy_http_request_duration_seconds_sum"):
                total += value
            elif line.startswith("canopy_http_request_duration_seconds_count"):
                count += value
    return total, count


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


def _senders_process(conn, url: str, specs: list[dict], nice: int) -> None:
    """A group of remote-write senders in a process of their own (optionally at a lower CPU
    priority, ``nice``), so that the load generator's own work (building and compressing
    payloads in Python) does not hold the GIL of the thread that times the quiet tenant's
    queries. Commands: "start", "stop" (a window of load), "exit"
    (sends back every attempt's status and the payloads acknowledged)."""
    if nice:
        os.nice(nice)
    target = types.SimpleNamespace(url=url)
    outcomes: dict[str, tuple[list, int]] = {}
    senders, threads = [], []
    while True:
        command = conn.recv()
        if command == "start":
            senders = [remote_write_sender(target, **spec) for spec in specs]
            threads = run_senders(senders)
        elif command == "stop":
            stop_senders(senders, threads)
            for s in senders:
                statuses, acked = outcomes.get(s.name, ([], 0))
                outcomes[s.name] = (statuses + [st for _, st in s.attempts], acked + len(s.acked))
            senders, threads = [], []
            conn.send("stopped")
        else:
            conn.send([(name, st, acked) for name, (st, acked) in outcomes.items()])
            return


class SenderGroup:
    def __init__(self, url: str, specs: list[dict], nice: int):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_senders_process, args=(child, url, specs, nice), daemon=True
        )
        self.process.start()
        self.running_s = 0.0
        self._since: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        self.conn.send("start")
        self._since = time.monotonic()

    def stop(self) -> None:
        self.conn.send("stop")
        self.conn.recv()
        self.running_s += time.monotonic() - self._since

    def results(self) -> list[types.SimpleNamespace]:
        self.conn.send("exit")
        out = [
            types.SimpleNamespace(name=name, statuses=statuses, acked=acked)
            for name, statuses, acked in self.conn.recv()
        ]
        self.process.join(60)
        return out


def _ok(status) -> bool:
    return isinstance(status, int) and 200 <= status < 300


class Phase:
    """The quiet tenant's query latencies in one kind of phase (possibly several windows),
    the cores used by kind (CPU seconds summed over the windows / their length), and the
    server-side time of those queries."""

    def __init__(self, name: str):
        self.name = name
        self.latencies: list[float] = []
        self.errors = 0
        self.cpu: dict[str, float] = {}
        self.seconds = 0.0
        self.server = [0.0, 0.0]
        self.windows: list[float] = []  # p95 of each window

    def add(self, queries: Queries, before: dict, after: dict, sb, sa) -> None:
        self.latencies += queries.latencies
        self.errors += queries.errors
        self.windows.append(_p95(queries.latencies))
        dt = after["t"] - before["t"]
        for k, v in CpuMeter.cores(before, after).items():
            self.cpu[k] = self.cpu.get(k, 0.0) + v * dt
        self.seconds += dt
        self.server[0] += sa[0] - sb[0]
        self.server[1] += sa[1] - sb[1]

    def line(self) -> str:
        lat = self.latencies
        where = ", ".join(
            f"{k} {v / self.seconds:.2f}"
            for k, v in sorted(self.cpu.items())
            if v / self.seconds >= 0.005
        )
        return (
            f"  {self.name:<19} {len(lat):4d} queries, "
            f"p50 {statistics.median(lat) * 1000:5.0f} ms, "
            f"p95 {_p95(lat) * 1000:5.0f} ms, server mean "
            f"{self.server[0] / max(self.server[1], 1) * 1000:4.0f} ms | cores: {where}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3, help="of the noisy tenant's load")
    parser.add_argument("--senders", type=int, default=4, help="senders of the quiet tenant")
    parser.add_argument(
        "--noisy-senders",
        type=int,
        default=8,
        help="senders of the noisy tenant (synchronous: enough of them to offer 10x the limit "
        "while each waits for its answers on a busy machine)",
    )
    parser.add_argument(
        "--quiet-minutes", type=float, default=1, help="the quiet load alone, before the noisy"
    )
    parser.add_argument("--limit", type=int, default=1000, help="ingestion limit, samples/s")
    parser.add_argument(
        "--window", type=float, default=45, help="s of load between two idle windows"
    )
    parser.add_argument("--idle-queries", type=int, default=30, help="queries in each idle window")
    parser.add_argument(
        "--ingest-pool",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ingest on web workers of its own (CANOPY_INGEST_BIND), the senders sent there",
    )
    parser.add_argument(
        "--background-nice",
        type=int,
        default=None,
        help="CANOPY_BACKGROUND_NICE of the stack (default: the product's default)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="CPU priority of the sender processes (os.nice; 0: same as the stack)",
    )
    args = parser.parse_args(argv)

    limits = {
        "ingestion_rate": args.limit,
        "ingestion_burst_size": args.limit * 2,
        "out_of_order_time_window_seconds": 3600,
    }
    per_sender_rate = args.limit / SERIES / args.senders  # payloads/s: the limit in total
    idle, alone, busy = Phase("idle"), Phase("quiet load alone"), Phase("quiet + noisy load")
    stack = Stack(web_workers=2, worker_concurrency=2)
    ingest_bind = f"127.0.0.1:{_free_port()}" if args.ingest_pool else None
    if ingest_bind:
        stack.env["CANOPY_INGEST_BIND"] = ingest_bind
    if args.background_nice is not None:
        stack.env["CANOPY_BACKGROUND_NICE"] = str(args.background_nice)
    ingest_url = f"http://{ingest_bind}" if ingest_bind else stack.url
    with stack:
        quiet_org, quiet = stack.tenant("quiet", **limits)
        noisy_org, noisy = stack.tenant("noisy", **limits)
        # a little history for the queries to read, at the same shape as the load
        seed = remote_write_sender(stack, quiet, "seed", 5, series=SERIES, metric="reliab_load")
        threads = run_senders([seed])
        time.sleep(20)
        stop_senders([seed], threads)

        quiet_group = SenderGroup(
            ingest_url,
            [
                dict(
                    token=quiet,
                    name=f"q{i}",
                    rate=per_sender_rate,
                    series=SERIES,
                    metric="reliab_load",
                )
                for i in range(args.senders)
            ],
            args.nice,
        )
        # 10x the limit in payloads of 10x the size, from several threads (one synchronous
        # sender cannot make that many requests a second on a loaded machine); no retries
        noisy_group = SenderGroup(
            ingest_url,
            [
                dict(
                    token=noisy,
                    name=f"noisy{i}",
                    rate=10 * args.limit / (10 * SERIES) / args.noisy_senders,
                    series=10 * SERIES,
                    metric="reliab_noisy",
                    retry=False,
                )
                for i in range(args.noisy_senders)
            ],
            args.nice,
        )
        meter = CpuMeter(stack, [quiet_group.process, noisy_group.process], ingest_bind)
        lag_max = 0.0

        def drained() -> None:
            end = time.monotonic() + 240
            while time.monotonic() < end and (
                stack.outbox_depth(quiet_org)[0] or stack.outbox_depth(noisy_org)[0]
            ):
                time.sleep(0.5)

        def window(phase: Phase, seconds: float | None) -> None:
            nonlocal lag_max
            queries = Queries(stack, quiet)
            before, sb = meter.snapshot(), _server_query_time(stack)
            if seconds is None:
                queries.run(count=args.idle_queries)
            else:
                thread = threading.Thread(target=queries.run, daemon=True)
                thread.start()
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    lag_max = max(lag_max, stack.outbox_depth(quiet_org)[1])
                    time.sleep(2)
                queries.stop.set()
                thread.join(120)
            phase.add(queries, before, meter.snapshot(), sb, _server_query_time(stack))

        drained()
        window(idle, None)
        rss_start = stack.stack_rss_mb()
        # the quiet tenant's own load first (to tell its cost from the noisy tenant's)
        quiet_group.start()
        if args.quiet_minutes > 0:
            window(alone, args.quiet_minutes * 60)
        # then the noisy tenant on top, in windows with idle ones between: idle and load are
        # measured minutes apart at most, under the same background load of the machine
        left = args.minutes * 60
        while left > 0:
            noisy_group.start()
            window(busy, min(args.window, left))
            left -= args.window
            rss_end = stack.stack_rss_mb()
            noisy_group.stop()
            quiet_group.stop()
            drained()
            lag_max = max(lag_max, stack.outbox_depth(quiet_org)[1])
            window(idle, None)
            if left > 0:
                quiet_group.start()
        noisy_results, quiet_results = noisy_group.results(), quiet_group.results()

    quiet_errors = sum(1 for r in quiet_results for st in r.statuses if not _ok(st))
    quiet_sent = sum(len(r.statuses) for r in quiet_results)
    quiet_samples_s = sum(r.acked for r in quiet_results) * SERIES / quiet_group.running_s
    noisy_attempts = [st for r in noisy_results for st in r.statuses]
    noisy_429 = sum(1 for st in noisy_attempts if st == 429)
    noisy_other = sum(1 for st in noisy_attempts if st != 429 and not _ok(st))
    noisy_offered = len(noisy_attempts) * 10 * SERIES / noisy_group.running_s
    idle_p95, busy_p95 = _p95(idle.latencies), _p95(busy.latencies)
    print("\n== load + noisy tenant ==")
    print(
        "stack: web 2 workers x 4 threads; ingest "
        + (f"on its own pool ({ingest_bind}), " if ingest_bind else "on the same web workers, ")
        + f"CANOPY_BACKGROUND_NICE={stack.env.get('CANOPY_BACKGROUND_NICE', 'default')}"
    )
    print(
        f"load generator: sender processes at nice {args.nice} (the stack at 0), the query "
        f"client a thread of this script; {os.cpu_count()} cores, load average at the end "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"quiet tenant: {args.senders} remote-write senders at its limit ({args.limit} samples/s "
        f"in total, {SERIES} series a payload) for {quiet_group.running_s / 60:.1f} min: "
        f"{quiet_sent} requests, {quiet_errors} errors, {quiet_samples_s:.0f} samples/s "
        "acknowledged"
    )
    print(
        f"noisy tenant: {args.noisy_senders} senders at 10x the same limit in total for "
        f"{noisy_group.running_s / 60:.1f} min: {len(noisy_attempts)} requests "
        f"({noisy_offered:.0f} samples/s offered, {noisy_offered / args.limit:.1f}x the limit), "
        f"{noisy_429} answered 429, {noisy_other} other errors"
    )
    print(
        "idle = the quiet tenant's queries with no load at all (no sender running, both "
        f"outboxes drained): {args.idle_queries} before the load and {args.idle_queries} after "
        f"each {args.window:g} s window of the noisy load, pooled"
    )
    print(
        f"quiet tenant's queries: idle p95 {idle_p95 * 1000:.0f} ms ({len(idle.latencies)} "
        f"queries), under load p95 {busy_p95 * 1000:.0f} ms ({len(busy.latencies)} queries, "
        f"{busy.errors} errors); ratio {busy_p95 / idle_p95:.2f} (bound 1.5)"
    )
    print(
        "  p95 of each window, ms: idle "
        + " ".join(f"{v * 1000:.0f}" for v in idle.windows)
        + "; under load "
        + " ".join(f"{v * 1000:.0f}" for v in busy.windows)
    )
    if alone.latencies:
        alone_p95 = _p95(alone.latencies)
        print(
            f"  for comparison, with the quiet tenant's own load alone ({args.quiet_minutes:g} "
            f"min, before the noisy tenant started): p95 {alone_p95 * 1000:.0f} ms "
            f"({len(alone.latencies)} queries, {alone.errors} errors); ratio "
            f"{alone_p95 / idle_p95:.2f}"
        )
    print("per phase (server mean: the query as Django timed it, from /metrics; cores by kind):")
    for phase in (idle, alone, busy):
        if phase.latencies:
            print(phase.line())
    print(f"stack RSS: {rss_start:.0f} MB at the start of the load, {rss_end:.0f} MB at the end")
    print(f"largest drain lag (oldest batch waiting in the quiet tenant's outbox): {lag_max:.1f} s")
    checks = {
        "no errors for the quiet tenant": quiet_errors == 0
        and busy.errors == 0
        and alone.errors == 0
        and idle.errors == 0,
        "noisy tenant refused with 429": noisy_429 > 0,
        "quiet tenant acknowledged at least 90% of its limit": quiet_samples_s >= 0.9 * args.limit,
        "noisy tenant offered at least 9x its limit": noisy_offered >= 9 * args.limit,
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
