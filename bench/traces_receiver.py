"""The trace receiver's CPU per span, in one process, no HTTP: the OTLP protobuf bodies of the
trace ingest bench (Envoy-shaped or OTel SDK spans, 1,000 a request) through

* **decode + outbox row**: the OTLP decoder and the outbox row's payload (no database, no Redis);
* **accept**: ``traces_accept`` as ``POST /v1/traces`` runs it after authentication (decode,
  limits, the rate limit and the per-trace cap in Redis, the outbox row committed), on the
  embedded PostgreSQL and Redis of ``CANOPY_DATA_DIR`` (migrated first);

each over ``--rounds`` rounds of ``--requests`` requests, after one warm-up request; prints
the best and the median round as spans per CPU-second of this process (process time: on a
shared machine the best round is the closer to the code's own cost). ``--profile`` prints a
cProfile of one more accept round.

    CANOPY_DATA_DIR=.canopy/bench .venv/bin/python -m backend.embedded exec -- \\
        .venv/bin/python bench/traces_receiver.py --shape envoy

Runs on code from before the decoder's column mode too (it then decodes as that code did), so
that two worktrees compare with the same script.
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rounds(run, rounds: int, spans: int) -> str:
    times = []
    for _ in range(rounds):
        t = time.process_time()
        run()
        times.append(time.process_time() - t)
    return (
        f"best {spans / min(times):,.0f}, median {spans / statistics.median(times):,.0f} "
        "spans per CPU-second"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=["envoy", "otel"], default="envoy")
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from backend.tracing.storage import outbox
    from bench.traces_ingest import request_bodies, unlimited_org
    from ingest.accept.payload import Payload
    from ingest.accept.traces import TraceFormat, traces_accept
    from ingest.decoders.otlp_traces import decode_otlp_protobuf
    from ingest.decoders.spans import SpanLimits

    call_command("migrate", verbosity=0)
    bodies = request_bodies(args.shape, args.requests + 1, 1000)
    warm, bodies = bodies[0], bodies[1:]
    spans = 1000 * len(bodies)
    columns = "columns" in inspect.signature(decode_otlp_protobuf).parameters
    ids = [[1] * 1000] * 3

    def decode_and_row() -> None:
        for body in bodies:
            if columns:
                batch = decode_otlp_protobuf(body, SpanLimits(), columns=True)
                outbox._payload(batch.spans, *ids, batch.attributes)
            else:
                batch = decode_otlp_protobuf(body, SpanLimits())
                outbox._payload(batch.spans, *ids)

    org = unlimited_org("receiver")

    def accept(body: bytes) -> int:
        payload = Payload(lambda cap: body, "application/x-protobuf")
        return traces_accept(org_id=org.pk, trace_format=TraceFormat.OTLP, payload=payload).stored

    def accept_all() -> None:
        stored = sum(accept(body) for body in bodies)
        assert stored == spans, stored

    accept(warm)  # catalogs warm, as in a running receiver
    mode = "columns" if columns else "dicts"
    print(f"{args.shape} spans, {len(bodies)} requests x 1,000, {args.rounds} rounds ({mode})")
    print(f"decode + outbox row: {_rounds(decode_and_row, args.rounds, spans)}")
    print(f"accept (traces_accept): {_rounds(accept_all, args.rounds, spans)}")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(accept_all)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
