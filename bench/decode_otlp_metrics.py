"""Decode cost of OTLP metric export requests beside remote-write requests of the same series
(no server, no database).

    .venv/bin/python bench/decode_otlp_metrics.py
    .venv/bin/python bench/decode_otlp_metrics.py --series 500 --seconds 2

The same Istio-shaped ``istio_requests_total`` series (``bench.istio_payloads``: ~20 labels
each), one sample per series, are encoded as an OTLP ``ExportMetricsServiceRequest`` (one
cumulative monotonic sum, one data point per series, the labels as attributes; what an OTel
Collector's ``prometheus`` receiver forwards) and as a remote-write 1.0 request: the reference,
measured in the same run. Both are decoded to the same validated ``WriteBatch``. Figures: median
and best wall time per request, CPU per request, samples/s at the median.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from bench import istio_payloads as ip
from bench.harness.timing import CallTimes
from ingest.decoders.otlp_metrics import decode_otlp_metrics
from ingest.decoders.remote_write import LabelLimits, clear_caches, decode_remote_write


def otlp_body(series: list, now_ns: int) -> bytes:
    metric = m.Metric(
        name="istio_requests",
        sum=m.Sum(aggregation_temporality=2, is_monotonic=True),
    )
    for i, labels in enumerate(series):
        metric.sum.data_points.add(
            time_unix_nano=now_ns,
            as_double=ip.counter_value(i, 0),
            attributes=[
                KeyValue(key=k, value=AnyValue(string_value=v))
                for k, v in labels
                if k != "__name__"
            ],
        )
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    scope.metrics.append(metric)
    return request.SerializeToString()


def measure(decode, seconds: float) -> tuple[CallTimes, int]:
    calls = CallTimes(seconds=seconds, min_calls=10)
    samples = 0
    while calls.more():
        clear_caches()  # every request decodes its label sets afresh (no warm cache)
        batch = calls.time(decode)
        samples = len(getattr(batch, "batch", batch).values)
    return calls, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    now_ms = int(time.time() * 1000)
    series = ip.series_for_shard(0, args.series)
    common = {"limits": LabelLimits(), "now_ms": now_ms, "max_age_ms": 3_600_000}
    otlp = otlp_body(series, now_ms * 1_000_000)
    ((rw, _, _),) = ip.build_uncompressed_requests(
        0, 1, now_ms - 1000, n_series=args.series, samples_per_request=args.series
    )
    rw = ip.compress(rw)
    runs = {
        "otlp-protobuf": partial(
            decode_otlp_metrics,
            otlp,
            content_type="application/x-protobuf",
            content_encoding=None,
            max_size=1 << 28,
            **common,
        ),
        "remote-write (reference)": partial(
            decode_remote_write,
            rw,
            content_type="application/x-protobuf",
            content_encoding="snappy",
            remote_write_version="0.1.0",
            max_size=1 << 28,
            **common,
        ),
    }
    print(f"{args.series} series, 1 sample each; label caches cleared before every request")
    print(f"{'format':<26} {'median ms':>10} {'best ms':>9} {'cpu ms':>8} {'samples/s':>12}")
    for name, decode in runs.items():
        calls, samples = measure(decode, args.seconds)
        print(
            f"{name:<26} {calls.median * 1e3:>10.2f} {calls.best * 1e3:>9.2f} "
            f"{calls.mean_cpu * 1e3:>8.2f} {samples / calls.median:>12,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
