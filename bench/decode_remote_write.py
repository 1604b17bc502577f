"""Decode cost of one remote-write request, on Istio-shaped payloads (no server, no database).

    .venv/bin/python bench/decode_remote_write.py
    .venv/bin/python bench/decode_remote_write.py --samples-per-series 10 --protocol v1

Requests come from ``bench/istio_payloads.py`` (2,000 ``istio_requests_total`` series of one
shard, one sample each by default, time advancing request after request, like one
Prometheus remote-write shard) and are compressed before any timing. For 2.0 the same series and
samples are re-encoded as ``io.prometheus.write.v2.Request``.

Figures, per protocol:
  warm   the steady state: the same series request after request, label sets found in the
         decoder's cache (what a long-running worker sees)
  cold   caches cleared before every request (a worker's first requests, or series churn)
Each shows the median and 90th percentile of wall time per request, the CPU time per request
(process time, which leaves out time the VM's CPU was taken away), and samples/s at the median.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import istio_payloads
from bench.harness.timing import CallTimes
from ingest.decoders import remote_write, snappy_block
from ingest.decoders.proto import remote_write_v1_pb2 as pb1
from ingest.decoders.proto import remote_write_v2_pb2 as pb2

V1_TYPE = "application/x-protobuf"
V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


def as_v2(v1_body: bytes) -> bytes:
    """The same series and samples as a remote-write 2.0 request."""
    v1 = pb1.WriteRequest.FromString(v1_body)
    v2 = pb2.Request(symbols=[""])
    refs = {"": 0}

    def ref(text: str) -> int:
        if text not in refs:
            refs[text] = len(v2.symbols)
            v2.symbols.append(text)
        return refs[text]

    for series in v1.timeseries:
        out = v2.timeseries.add()
        for label in series.labels:
            out.labels_refs.extend((ref(label.name), ref(label.value)))
        for sample in series.samples:
            out.samples.add(value=sample.value, timestamp=sample.timestamp)
        out.metadata.type = pb2.Metadata.METRIC_TYPE_COUNTER
        out.metadata.help_ref = ref("Total number of requests handled by the proxy.")
    return v2.SerializeToString()


def measure(bodies: list[bytes], content_type: str, *, cold: bool, seconds: float) -> dict:
    samples = 0
    limits = remote_write.LabelLimits()
    calls = CallTimes(seconds=seconds, min_calls=20)
    i = 0
    while calls.more():
        body = bodies[i % len(bodies)]
        i += 1
        if cold:
            remote_write.clear_caches()
        batch = calls.time(
            partial(
                remote_write.decode_remote_write,
                body,
                content_type=content_type,
                content_encoding="snappy",
                remote_write_version=None,
                max_size=64 << 20,
                limits=limits,
                now_ms=int(time.time() * 1000),
                max_age_ms=None,
            )
        )
        samples = len(batch.values)
        if batch.rejected:
            raise SystemExit(f"unexpected rejections: {batch.rejected}")
    return {
        "requests": len(calls.walls),
        "samples": samples,
        "median_us": calls.median * 1e6,
        "p90_us": calls.p90 * 1e6,
        "cpu_us": calls.mean_cpu * 1e6,
        "samples_per_s": samples / calls.median,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="distinct requests to cycle")
    parser.add_argument("--series", type=int, default=istio_payloads.SAMPLES_PER_REQUEST)
    parser.add_argument("--samples-per-series", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure")
    parser.add_argument("--protocol", choices=["v1", "v2", "both"], default="both")
    args = parser.parse_args(argv)

    start = istio_payloads.aligned_start_ms(args.requests * args.samples_per_series)
    raw = [
        body
        for body, _, _ in istio_payloads.build_uncompressed_requests(
            0,
            args.requests,
            start,
            n_series=args.series,
            samples_per_series=args.samples_per_series,
            samples_per_request=args.series * args.samples_per_series,
        )
    ]
    protocols = {"v1": (V1_TYPE, raw), "v2": (V2_TYPE, [as_v2(b) for b in raw])}
    chosen = ["v1", "v2"] if args.protocol == "both" else [args.protocol]
    print(
        f"{args.series} series x {args.samples_per_series} sample(s) per request, "
        f"{len(raw[0]) / 1024:.0f} KiB uncompressed (1.0), {args.requests} distinct requests"
    )
    print(f"{'':10} {'median':>10} {'p90':>10} {'cpu':>10} {'samples/s':>12}")
    for name in chosen:
        content_type, bodies = protocols[name]
        compressed = [snappy_block.compress(b) for b in bodies]
        for cold in (False, True):
            figures = measure(compressed, content_type, cold=cold, seconds=args.seconds)
            label = f"{name} {'cold' if cold else 'warm'}"
            print(
                f"{label:10} {figures['median_us']:8.0f}us {figures['p90_us']:8.0f}us "
                f"{figures['cpu_us']:8.0f}us {figures['samples_per_s'] / 1e6:10.2f} M"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
