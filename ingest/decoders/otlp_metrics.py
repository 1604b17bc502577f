"""OTLP metric export requests (``ExportMetricsServiceRequest``) as Prometheus series.

:func:`decode_otlp_metrics` reads an OTLP/HTTP ``POST /otlp/v1/metrics`` body, protobuf or JSON,
optionally gzip-compressed; :func:`decode_otlp_metrics_protobuf` reads the bytes of a gRPC
``MetricsService/Export`` request. Both give the :class:`~ingest.decoders.remote_write.WriteBatch`
a remote-write request gives, validated by the same checks (label syntax and limits, timestamps
too old or too far in the future, order within a series), so that the metrics accept service
stores both alike.

The translation is the one Prometheus's and Mimir's OTLP endpoints use (``otlptranslator`` with
metric suffixes on):

- metric names: the OTel name split on anything but letters and digits and joined with ``_``,
  then the unit (``ms`` → ``milliseconds``, ``By`` → ``bytes``, ``1/s`` → ``per_second``; units
  in braces such as ``{request}`` are left out), ``_total`` for monotonic sums, ``_ratio`` for
  gauges of unit ``1``; a leading digit gets ``_``;
- labels: the data point's attributes, names with anything but ``[a-zA-Z0-9_]`` made ``_``
  (a leading digit gets ``key_``, one leading ``_`` gets ``key``), values of names that collide
  joined with ``;`` in key order; ``job`` is ``service.namespace/service.name`` (or
  ``service.name``), ``instance`` is ``service.instance.id``;
- ``target_info`` (value 1, at the resource's newest data point) carries the other resource
  attributes with ``job`` and ``instance``, when there are any;
- resource attributes named in ``promote_resource_attributes`` (the org's
  ``promote_otel_resource_attributes``) are labels of every series of the resource too (a data
  point attribute of the same name wins; ``job``/``instance`` win over both);
- with ``promote_scope_metadata`` (the org's ``promote_otel_scope_metadata``, Prometheus's
  ``otlp.promote_scope_metadata``, off by default as there), the instrumentation scope of a
  metric labels each of its series: ``otel_scope_<attribute>`` for each scope attribute (in
  request order, sanitised like any label; one of the same name later wins), then
  ``otel_scope_name``, ``otel_scope_version`` and ``otel_scope_schema_url``; they win over data
  point attributes and promoted resource attributes, ``job``/``instance`` win over them, an
  empty value removes the label, and a scope without a name adds nothing (nor to
  ``target_info``);
- gauges and cumulative sums are one series each; cumulative histograms become ``_bucket``
  (cumulative, ``le`` as Go's ``FormatFloat(b, 'f', -1)`` writes it, ``+Inf`` = count), ``_sum``
  (when the point has one) and ``_count``; summaries ``{quantile=…}``, ``_sum`` and ``_count``;
- a point flagged ``NO_RECORDED_VALUE`` is a staleness marker.

Refused per metric, as Prometheus does (the rest of the request is stored; the response's
partial success counts the rejected data points and says why): delta or unspecified
temporality for sums and histograms (``invalid_temporality``: Canopy does not convert deltas to
cumulative; export cumulative, e.g. the SDK's default or the collector's
``deltatocumulative`` processor), exponential histograms (``exponential_histograms_not_supported``:
Canopy stores no native histograms), metrics with no data.

Exemplars of number and histogram points are read (a histogram's go to the bucket series their
value falls in) and returned in the batch with ``trace_id``/``span_id`` labels.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from backend.metrics.labels import METRIC_NAME
from ingest.decoders import request_body
from ingest.decoders.errors import DecodeError
from ingest.decoders.otlp_traces import JSON, PROTOBUF, otlp_media_type, response_media_type
from ingest.decoders.remote_write import (
    MAX_EXEMPLAR_LABEL_CHARS,
    Exemplar,
    LabelLimits,
    Rejection,
    SampleColumns,
    WriteBatch,
    assemble_write_batch,
)

__all__ = [
    "STALE_NAN",
    "decode_otlp_metrics",
    "decode_otlp_metrics_protobuf",
    "encode_metrics_partial_success",
    "metric_name",
    "normalize_label",
]

STALE_NAN = np.array([0x7FF0000000000002], np.uint64).view(np.float64)[0]

# Aggregation temporality and data point flags (opentelemetry/proto/metrics/v1/metrics.proto)
_CUMULATIVE = 2
_NO_RECORDED_VALUE = 1

# Attributes of a resource that name the target (job and instance) rather than describe it
_SERVICE_NAME = "service.name"
_SERVICE_NAMESPACE = "service.namespace"
_SERVICE_INSTANCE_ID = "service.instance.id"
_IDENTIFYING = (_SERVICE_NAMESPACE, _SERVICE_NAME, _SERVICE_INSTANCE_ID)
TARGET_INFO = "target_info"

# Bounds on what one request may make us build (the body cap bounds the rest).
MAX_ATTRIBUTE_VALUE_CHARS = 16_384

# Prometheus's unit maps (otlptranslator/normalize_name.go)
_UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}
_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
_NOT_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(slots=True)
class OtlpMetricsBatch:
    """The series and samples of a request (``batch``) and its exemplars."""

    batch: WriteBatch  # (its exemplars: those of the kept series)
    data_points: int  # data points the request carried
    rejected_data_points: int  # of those, refused as a whole (temporality, type)

    @property
    def exemplars(self) -> list[Exemplar]:
        return self.batch.exemplars


# --- names ------------------------------------------------------------------------------------


def metric_name(name: str, unit: str, *, kind: str, monotonic: bool = False) -> str:
    """The Prometheus name of an OTel metric (``kind``: gauge, sum, histogram, summary)."""
    tokens = [t for t in _NOT_ALNUM.split(name) if t]
    main, _, per = unit.partition("/")
    main = main.strip()
    if main and "{" not in main and "}" not in main:
        prom = _clean_unit(_UNITS.get(main, main))
        if prom and prom not in tokens:
            tokens.append(prom)
    per = per.strip()
    if per and "{" not in per and "}" not in per:
        prom = _clean_unit(_PER_UNITS.get(per, per))
        if prom and prom not in tokens:
            tokens += ["per", prom]
    if kind == "sum" and monotonic:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    out = "_".join(tokens)
    if out[:1].isdigit():
        out = "_" + out
    return out


def _clean_unit(unit: str) -> str:
    return _NOT_ALNUM.sub("_", unit).strip("_")


def normalize_label(name: str) -> str:
    """An attribute key as a Prometheus label name."""
    if not name:
        return name
    name = _NOT_LABEL_CHAR.sub("_", name)
    if name[0].isdigit():
        return "key_" + name
    if name.startswith("_") and not name.startswith("__"):
        return "key" + name
    return name


def _format_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return np.format_float_positional(value, trim="-")


def _attribute_text(value: Any) -> str:
    """``pcommon.Value.AsString()`` of an AnyValue."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        text = value.string_value
    elif kind == "bool_value":
        text = "true" if value.bool_value else "false"
    elif kind == "int_value":
        text = str(value.int_value)
    elif kind == "double_value":
        text = _go_json_float(value.double_value)
    elif kind == "bytes_value":
        text = base64.b64encode(value.bytes_value).decode()
    else:
        text = json.dumps(_plain(value, 0), separators=(",", ":"), ensure_ascii=False)
    return text[:MAX_ATTRIBUTE_VALUE_CHARS]


def _go_json_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return _format_float(value)


def _plain(value: Any, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if depth > 16 or kind is None:
        return None
    if kind == "array_value":
        return [_plain(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "double_value" and not math.isfinite(value.double_value):
        return _go_json_float(value.double_value)
    return getattr(value, kind)


def _label_dict(attributes: Any, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Attributes as labels, colliding names' values joined with ``;`` in key order."""
    out: dict[str, str] = {}
    for kv in sorted(attributes, key=_KEY):
        if kv.key in skip:
            continue
        name = normalize_label(kv.key)
        text = _attribute_text(kv.value)
        out[name] = out[name] + ";" + text if name in out else text
    return out


def _KEY(kv: Any) -> str:
    return kv.key


# --- response ---------------------------------------------------------------------------------


def encode_metrics_partial_success(
    rejected_data_points: int, message: str, content_type: str | None
) -> bytes:
    """An ``ExportMetricsServiceResponse`` body in the request's content type (``partial_success``
    unset on a full success, as OTLP asks)."""
    if response_media_type(content_type) == JSON:
        partial: dict[str, str] = {}
        if rejected_data_points:
            partial["rejectedDataPoints"] = str(rejected_data_points)
        if message:
            partial["errorMessage"] = message
        body = {"partialSuccess": partial} if partial else {}
        return json.dumps(body, separators=(",", ":")).encode()
    response = ExportMetricsServiceResponse()
    if rejected_data_points or message:
        response.partial_success.CopyFrom(
            ExportMetricsPartialSuccess(
                rejected_data_points=rejected_data_points, error_message=message
            )
        )
    return response.SerializeToString()


# --- entry points -----------------------------------------------------------------------------


def decode_otlp_metrics(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_size: int,
    limits: LabelLimits,
    now_ms: int,
    max_age_ms: int | None,
    future_grace_ms: int = 600_000,
    promote_resource_attributes: frozenset[str] = frozenset(),
    promote_scope_metadata: bool = False,
) -> OtlpMetricsBatch:
    """Decode one OTLP/HTTP metrics export body (see the module's docstring).

    ``max_size`` caps the body after decompression. Raises a :class:`DecodeError` subclass for
    an unsupported Content-Type or Content-Encoding and for a body that is not an
    ``ExportMetricsServiceRequest``; bad metrics, series and samples are rejected one by one.
    """
    media_type = otlp_media_type(content_type)
    raw = request_body.decode_body(body, content_encoding=content_encoding, max_size=max_size)
    request = _parse_protobuf(raw) if media_type == PROTOBUF else _parse_json(raw)
    return _translate(
        request,
        limits=limits,
        now_ms=now_ms,
        max_age_ms=max_age_ms,
        future_grace_ms=future_grace_ms,
        promote=promote_resource_attributes,
        promote_scope=promote_scope_metadata,
    )


def decode_otlp_metrics_protobuf(
    raw: bytes,
    *,
    limits: LabelLimits,
    now_ms: int,
    max_age_ms: int | None,
    future_grace_ms: int = 600_000,
    promote_resource_attributes: frozenset[str] = frozenset(),
    promote_scope_metadata: bool = False,
) -> OtlpMetricsBatch:
    """An encoded (uncompressed) ``ExportMetricsServiceRequest``: the gRPC path."""
    return _translate(
        _parse_protobuf(raw),
        limits=limits,
        now_ms=now_ms,
        max_age_ms=max_age_ms,
        future_grace_ms=future_grace_ms,
        promote=promote_resource_attributes,
        promote_scope=promote_scope_metadata,
    )


def _parse_protobuf(raw: bytes) -> ExportMetricsServiceRequest:
    try:
        return ExportMetricsServiceRequest.FromString(raw)
    except (ProtobufDecodeError, RecursionError) as exc:
        raise DecodeError(
            f"body is not a valid protobuf ExportMetricsServiceRequest ({exc})"
        ) from None


def _parse_json(raw: bytes) -> ExportMetricsServiceRequest:
    document = request_body.parse_json(raw)
    if not isinstance(document, dict):
        raise DecodeError("body is not a JSON ExportMetricsServiceRequest object")
    # OTLP JSON writes trace and span ids as hex, the protobuf JSON mapping as base64.
    try:
        _hex_ids_to_base64(document, 0)
        request = ExportMetricsServiceRequest()
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise DecodeError(f"body is not a valid JSON ExportMetricsServiceRequest ({exc})") from None
    return request


def _hex_ids_to_base64(node: Any, depth: int) -> None:
    if depth > 64:
        raise DecodeError("body is not a valid JSON ExportMetricsServiceRequest: nested too deeply")
    if isinstance(node, dict):
        for key in ("traceId", "trace_id", "spanId", "span_id"):
            value = node.get(key)
            if isinstance(value, str) and value:
                try:
                    node[key] = base64.b64encode(binascii.unhexlify(value)).decode()
                except (binascii.Error, ValueError):
                    raise DecodeError(f"{key} {value[:64]!r} is not hex") from None
        for key, value in node.items():
            if isinstance(value, dict | list) and key not in ("attributes", "filteredAttributes"):
                _hex_ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, dict | list):
                _hex_ids_to_base64(value, depth + 1)


# --- translation ------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Resource:
    """What a resource adds to each of its series: ``promoted`` attributes (the org's
    ``promote_otel_resource_attributes``; a data point's own attribute of the same name wins)
    and ``target`` (``job``/``instance``, which win over both)."""

    target: dict[str, str]
    promoted: dict[str, str]
    # otel_scope_* labels of the scope being translated (empty unless promoted); an empty value
    # removes the label, as Prometheus's labels.Builder.Set does
    scope: dict[str, str] = field(default_factory=dict)


_SCOPE_PREFIX = "otel_scope_"


def _scope_labels(scope_metrics: Any) -> dict[str, str]:
    """Prometheus's ``createAttributes`` with ``PromoteScopeMetadata``: nothing for a scope
    without a name; else the scope's attributes as ``otel_scope_<name>`` (request order, a
    later one of the same sanitised name wins), then its name, version and schema URL, which
    no attribute overwrites. The schema URL is the ``ScopeMetrics``' (pdata's
    ``ScopeMetrics.SchemaUrl``), not the resource's."""
    scope = scope_metrics.scope
    if not scope.name:
        return {}
    out: dict[str, str] = {}
    for kv in scope.attributes:
        out[normalize_label(_SCOPE_PREFIX + kv.key)] = _attribute_text(kv.value)
    out["otel_scope_name"] = scope.name
    out["otel_scope_version"] = scope.version
    out["otel_scope_schema_url"] = scope_metrics.schema_url
    return out


def _promoted_labels(attributes: Any, promote: frozenset[str]) -> dict[str, str]:
    """The resource attributes named in ``promote``, as labels, in key order; of two whose
    names collide once sanitised, the first (by key) is kept, as in Prometheus."""
    out: dict[str, str] = {}
    if not promote:
        return out
    for kv in sorted(attributes, key=_KEY):
        if kv.key in promote:
            out.setdefault(normalize_label(kv.key), _attribute_text(kv.value))
    return out


class _Builder:
    """Series (label dicts, deduplicated by their sorted pairs) and samples, in request order."""

    def __init__(self) -> None:
        self.series_index: dict[tuple[tuple[str, str], ...], int] = {}
        self.series: list[tuple[tuple[str, str], ...]] = []
        self.sample_series: list[int] = []
        self.timestamps: list[int] = []
        self.values: list[float] = []
        self.exemplars: list[tuple[int, int, float, tuple[tuple[str, str], ...]]] = []
        self.metadata: dict[str, tuple[str, str, str, str]] = {}
        self.rejected: dict[str, Rejection] = {}
        self.data_points = 0
        self.rejected_points = 0

    def add(self, labels: dict[str, str], timestamp_ms: int, value: float) -> int:
        key = tuple(sorted(labels.items()))
        index = self.series_index.get(key)
        if index is None:
            index = self.series_index[key] = len(self.series)
            self.series.append(key)
        self.sample_series.append(index)
        self.timestamps.append(timestamp_ms)
        self.values.append(value)
        return index

    def reject(self, reason: str, message: str, points: int) -> None:
        self.rejected_points += points
        known = self.rejected.get(reason)
        if known is None:
            self.rejected[reason] = Rejection(reason, message, points)
        else:
            known.samples += points


def _translate(
    request: ExportMetricsServiceRequest,
    *,
    limits: LabelLimits,
    now_ms: int,
    max_age_ms: int | None,
    future_grace_ms: int,
    promote: frozenset[str],
    promote_scope: bool,
) -> OtlpMetricsBatch:
    out = _Builder()
    for resource_metrics in request.resource_metrics:
        resource_attributes = resource_metrics.resource.attributes
        by_key = {kv.key: kv.value for kv in resource_attributes}
        target: dict[str, str] = {}
        if _SERVICE_NAME in by_key:
            job = _attribute_text(by_key[_SERVICE_NAME])
            if _SERVICE_NAMESPACE in by_key:
                job = f"{_attribute_text(by_key[_SERVICE_NAMESPACE])}/{job}"
            target["job"] = job
        if _SERVICE_INSTANCE_ID in by_key:
            target["instance"] = _attribute_text(by_key[_SERVICE_INSTANCE_ID])
        resource = _Resource(target=target, promoted=_promoted_labels(resource_attributes, promote))
        newest_ns = 0
        for scope_metrics in resource_metrics.scope_metrics:
            in_scope = resource
            if promote_scope:
                labels = _scope_labels(scope_metrics)
                in_scope = replace(resource, scope=labels) if labels else resource
            for metric in scope_metrics.metrics:
                newest_ns = max(newest_ns, _metric(metric, in_scope, out))
        if newest_ns and target and any(kv.key not in _IDENTIFYING for kv in resource_attributes):
            labels = _label_dict(resource_attributes, skip=_IDENTIFYING)
            labels.update(target)
            labels[METRIC_NAME] = TARGET_INFO
            out.add(labels, newest_ns // 1_000_000, 1.0)

    n = len(out.sample_series)
    rejected = list(out.rejected.values())
    batch = assemble_write_batch(
        labels=out.series,
        columns=SampleColumns(
            sample_series=np.fromiter(out.sample_series, np.int64, n),
            timestamps=np.fromiter(out.timestamps, np.int64, n),
            values=np.fromiter(out.values, np.float64, n),
        ),
        metadata=list(out.metadata.values()),
        exemplars=out.exemplars,
        limits=limits,
        now_ms=now_ms,
        max_age_ms=max_age_ms,
        future_grace_ms=future_grace_ms,
    )
    batch.rejected = rejected + batch.rejected
    return OtlpMetricsBatch(
        batch=batch, data_points=out.data_points, rejected_data_points=out.rejected_points
    )


def _metric(metric: Any, resource: _Resource, out: _Builder) -> int:
    """Adds the metric's series; returns its newest data point's time (ns), 0 if none."""
    data = metric.WhichOneof("data")
    newest = 0
    if data in ("gauge", "sum"):
        points = getattr(metric, data).data_points
        out.data_points += len(points)
        monotonic = data == "sum" and metric.sum.is_monotonic
        if data == "sum" and metric.sum.aggregation_temporality != _CUMULATIVE:
            _reject_temporality(metric, metric.sum.aggregation_temporality, len(points), out)
            return 0
        name = metric_name(metric.name, metric.unit, kind=data, monotonic=monotonic)
        _add_metadata(out, name, "counter" if monotonic else "gauge", metric)
        for point in points:
            labels = _point_labels(point.attributes, resource, name)
            value = _number(point)
            ts = point.time_unix_nano // 1_000_000
            series = out.add(labels, ts, value)
            _exemplars(point.exemplars, series, out)
            newest = max(newest, point.time_unix_nano)
    elif data == "histogram":
        points = metric.histogram.data_points
        out.data_points += len(points)
        if metric.histogram.aggregation_temporality != _CUMULATIVE:
            _reject_temporality(metric, metric.histogram.aggregation_temporality, len(points), out)
            return 0
        name = metric_name(metric.name, metric.unit, kind="histogram")
        _add_metadata(out, name, "histogram", metric)
        for point in points:
            _histogram_point(point, resource, name, out)
            newest = max(newest, point.time_unix_nano)
    elif data == "summary":
        points = metric.summary.data_points
        out.data_points += len(points)
        name = metric_name(metric.name, metric.unit, kind="summary")
        _add_metadata(out, name, "summary", metric)
        for point in points:
            ts = point.time_unix_nano // 1_000_000
            stale = bool(point.flags & _NO_RECORDED_VALUE)
            for quantile in point.quantile_values:
                labels = _point_labels(point.attributes, resource, name)
                labels["quantile"] = _format_float(quantile.quantile)
                out.add(labels, ts, STALE_NAN if stale else quantile.value)
            out.add(
                _point_labels(point.attributes, resource, name + "_sum"),
                ts,
                STALE_NAN if stale else point.sum,
            )
            out.add(
                _point_labels(point.attributes, resource, name + "_count"),
                ts,
                STALE_NAN if stale else float(point.count),
            )
            newest = max(newest, point.time_unix_nano)
    elif data == "exponential_histogram":
        points = len(metric.exponential_histogram.data_points)
        out.data_points += points
        out.reject(
            "exponential_histograms_not_supported",
            f"metric {metric.name!r} is an exponential histogram: Canopy stores no native "
            "histograms; export explicit-bucket histograms",
            points,
        )
    else:
        out.reject("empty_metric", f"metric {metric.name!r} has no data", 0)
    return newest


def _reject_temporality(metric: Any, temporality: int, points: int, out: _Builder) -> None:
    what = "delta" if temporality == 1 else "unspecified"
    out.reject(
        "invalid_temporality",
        f"invalid temporality and type combination for metric {metric.name!r}: {what} "
        "temporality is not accepted, export cumulative temporality",
        points,
    )


def _add_metadata(out: _Builder, name: str, kind: str, metric: Any) -> None:
    if name not in out.metadata:
        out.metadata[name] = (name, kind, metric.description[:4096], metric.unit[:256])


def _point_labels(attributes: Any, resource: _Resource, name: str) -> dict[str, str]:
    labels = _label_dict(attributes)
    for label, value in resource.promoted.items():
        # A data point's own attribute wins over a promoted one of the same name.
        labels.setdefault(label, value)
    for label, value in resource.scope.items():
        if value:
            labels[label] = value
        else:
            labels.pop(label, None)
    labels.update(resource.target)
    labels[METRIC_NAME] = name
    return labels


def _number(point: Any) -> float:
    if point.flags & _NO_RECORDED_VALUE:
        return STALE_NAN
    if point.WhichOneof("value") == "as_int":
        return float(point.as_int)
    return point.as_double


def _histogram_point(point: Any, resource: _Resource, name: str, out: _Builder) -> None:
    ts = point.time_unix_nano // 1_000_000
    stale = bool(point.flags & _NO_RECORDED_VALUE)
    bounds = list(point.explicit_bounds)
    counts = list(point.bucket_counts)
    bucket_series: list[tuple[float, int]] = []
    cumulative = 0
    for i, bound in enumerate(bounds):
        if i >= len(counts):
            break
        cumulative += counts[i]
        labels = _point_labels(point.attributes, resource, name + "_bucket")
        labels["le"] = _format_float(bound)
        bucket_series.append(
            (bound, out.add(labels, ts, STALE_NAN if stale else float(cumulative)))
        )
    labels = _point_labels(point.attributes, resource, name + "_bucket")
    labels["le"] = "+Inf"
    bucket_series.append(
        (math.inf, out.add(labels, ts, STALE_NAN if stale else float(point.count)))
    )
    if point.HasField("sum"):
        out.add(
            _point_labels(point.attributes, resource, name + "_sum"),
            ts,
            STALE_NAN if stale else point.sum,
        )
    out.add(
        _point_labels(point.attributes, resource, name + "_count"),
        ts,
        STALE_NAN if stale else float(point.count),
    )
    for exemplar in point.exemplars:
        value = _exemplar_value(exemplar)
        series = next(s for bound, s in bucket_series if value <= bound or math.isnan(value))
        _exemplars([exemplar], series, out)


def _exemplar_value(exemplar: Any) -> float:
    if exemplar.WhichOneof("value") == "as_int":
        return float(exemplar.as_int)
    return exemplar.as_double


def _exemplars(exemplars: Any, series: int, out: _Builder) -> None:
    for exemplar in exemplars:
        labels = _label_dict(exemplar.filtered_attributes)
        if exemplar.trace_id:
            labels["trace_id"] = exemplar.trace_id.hex()
        if exemplar.span_id:
            labels["span_id"] = exemplar.span_id.hex()
        pairs = tuple(sorted((k, v) for k, v in labels.items() if v))
        if sum(len(k) + len(v) for k, v in pairs) > MAX_EXEMPLAR_LABEL_CHARS:
            # Prometheus refuses exemplars whose labels exceed 128 runes; keep the trace link.
            pairs = tuple((k, v) for k, v in pairs if k in ("trace_id", "span_id"))
        out.exemplars.append(
            (series, exemplar.time_unix_nano // 1_000_000, _exemplar_value(exemplar), pairs)
        )
