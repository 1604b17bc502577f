"""Prometheus's HTTP query API under ``/prometheus/api/v1/``: what Grafana's Prometheus data
source calls. GET or form POST; envelope ``{status, data}`` or ``{status, errorType, error}``
with Prometheus's HTTP codes (400 bad_data, 422 execution, 503 timeout)."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime

import promql_parser as pp
from django.db import DatabaseError
from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from redis.exceptions import RedisError
from rest_framework.parsers import FormParser, MultiPartParser

from backend.metrics import promql, remote_read, results_cache
from backend.metrics.labels import METRIC_NAME, Matcher
from backend.metrics.promql.evaluator import matchers_of
from backend.metrics.promql.parse import MAX_QUERY_LENGTH, parse_expr, unwrap
from backend.metrics.promql.querier import ReadTimeout, SeriesLimitExceeded
from backend.metrics.promql.values import format_time, format_value, valid_label_name
from backend.metrics.selectors import label_names, label_values, metadata_list
from backend.metrics.storage.exemplars import exemplars_for_series
from backend.metrics.storage.reader import PostgresQuerier, metric_names_between, series_match
from backend.tenancy import params as strict
from backend.tenancy.api_base import OrgAPIView
from backend.tenancy.models import Scope
from backend.tenancy.selectors import limits_get

PROMETHEUS_VERSION = "2.42.0"  # the PromQL Canopy evaluates, checked against this release
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


def _json(payload: dict, status: int = 200) -> HttpResponse:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return HttpResponse(body, status=status, content_type="application/json")


def success(data) -> HttpResponse:
    return _json({"status": "success", "data": data})


def success_raw(data_json: str) -> HttpResponse:
    body = '{"status":"success","data":' + data_json + "}"
    return HttpResponse(body, content_type="application/json")


def failure(error_type: str, message: str, status: int) -> HttpResponse:
    return _json({"status": "error", "errorType": error_type, "error": message}, status)


def parse_time(name: str, text: str) -> int:
    """Prometheus's parseTime: float Unix seconds or RFC 3339, to milliseconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None and math.isfinite(seconds):
        if abs(seconds) > strict.MAX_TIME_S:
            raise promql.BadData(
                f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp: '
                "out of range (year 9999 at most)"
            )
        whole = math.floor(seconds)
        return int(whole) * 1000 + round((seconds - whole) * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(text)
        return round(moment.timestamp() * 1000)
    except ValueError:
        raise promql.BadData(
            f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp'
        ) from None


def parse_duration_ms(name: str, text: str) -> int:
    """Float seconds or a Prometheus duration ("1m", "1h30m")."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or abs(seconds) > strict.MAX_DURATION_S:
            raise promql.BadData(
                f'invalid parameter "{name}": cannot parse "{text}" to a valid duration. '
                "It overflows int64"
            )
        return round(seconds * 1000)
    match = _DURATION.match(text)
    if not text or match is None:
        raise promql.BadData(
            f'invalid parameter "{name}": cannot parse "{text}" to a valid duration'
        )
    total = sum(int(g) * unit for g, unit in zip(match.groups(), _DURATION_MS, strict=True) if g)
    if total > strict.MAX_DURATION_S * 1000:
        raise promql.BadData(
            f'invalid parameter "{name}": cannot parse "{text}" to a valid duration. '
            "It overflows int64"
        )
    return total


class PrometheusView(OrgAPIView):
    scopes = {"GET": [Scope.METRICS_READ], "POST": [Scope.METRICS_READ]}
    parser_classes = [FormParser, MultiPartParser]

    def form(self) -> QueryDict:
        """The POST form; empty for any other method, and for a body without a form's content
        type (DRF then hands over a plain ``{}``, which has no ``getlist``)."""
        data = self.request.data if self.request.method == "POST" else None
        return data if isinstance(data, QueryDict) else QueryDict()

    def param(self, name: str, default: str | None = None) -> str | None:
        value = self.request.query_params.get(name)
        if value is None:
            value = self.form().get(name)
        value = strict.text(name, value, max_length=MAX_QUERY_LENGTH)
        return default if value is None else value

    def params(self, name: str) -> list[str]:
        values = list(self.request.query_params.getlist(name))
        values += self.form().getlist(name)
        return [strict.text(name, v, max_length=MAX_QUERY_LENGTH) for v in values]

    def limits(self) -> promql.QueryLimits:
        limits = limits_get(org_id=self.org.pk)
        timeout = float(limits.query_timeout_seconds)
        wanted = self.param("timeout")
        if wanted:
            wanted_ms = parse_duration_ms("timeout", wanted)
            if wanted_ms < 0:
                raise promql.BadData('invalid parameter "timeout": must not be negative')
            timeout = min(timeout, max(wanted_ms, 1) / 1000)
        return promql.QueryLimits(
            max_series=limits.query_max_series,
            max_samples=limits.query_max_samples,
            timeout_seconds=timeout,
            max_subquery_steps=limits.query_max_subquery_steps,
        )

    def selectors(self, required: bool) -> list[list[Matcher]]:
        out = []
        for text in self.params("match[]"):
            try:
                node = unwrap(parse_expr(text))
            except promql.BadData as exc:
                raise promql.BadData(f'invalid parameter "match[]": {exc}') from None
            if not isinstance(node, pp.VectorSelector):
                raise promql.BadData(
                    'invalid parameter "match[]": 1:1: parse error: '
                    f"expected a vector selector, got {text!r}"
                )
            out.append(matchers_of(node))
        if required and not out:
            raise promql.BadData("no match[] parameter provided")
        return out

    def active_metrics(self) -> set[str] | None:
        """With ``start``/``end``, the metric names that have samples in that range: series
        of the others are left out (at metric granularity, from block headers)."""
        start, end = self.param("start"), self.param("end")
        if not start and not end:
            return None
        start_ms = parse_time("start", start) if start else 0
        end_ms = parse_time("end", end) if end else int(time.time() * 1000)
        return metric_names_between(org_id=self.org.pk, start_ms=start_ms, end_ms=end_ms)

    def matched_series(self, selectors: list[list[Matcher]]) -> list[dict]:
        limit = self.limits().max_series
        seen: dict[int, dict] = {}
        for matchers in selectors:
            seen.update(series_match(org_id=self.org.pk, matchers=matchers, limit=limit + 1))
            if len(seen) > limit:
                raise promql.TooManySeries(limit)
        active = self.active_metrics()
        return [
            labels
            for labels in seen.values()
            if active is None or labels.get(METRIC_NAME) in active
        ]

    def handle(self):
        raise NotImplementedError

    # Metadata endpoints (series, labels, label values, metadata) read the catalog directly:
    # they run in one read-only transaction with the org's query timeout, as queries do.
    bounded_reads = True

    def get(self, request, **kwargs):
        try:
            if not self.bounded_reads:
                return self.handle(**kwargs)
            querier = PostgresQuerier(org_id=self.org.pk)
            try:
                with querier.reading(timeout_seconds=self.limits().timeout_seconds):
                    return self.handle(**kwargs)
            except ReadTimeout as exc:
                raise promql.QueryTimeout("query timed out reading the series catalog") from exc
        except promql.PromQLError as exc:
            return failure(exc.error_type, str(exc), exc.status)
        except strict.ParamError as exc:
            return failure("bad_data", f"invalid parameter: {exc}", 400)
        except (DatabaseError, RedisError) as exc:
            # The store is down or restarting: Prometheus's "unavailable", worth a retry.
            return failure(
                "unavailable", f"storage temporarily unavailable: {exc.__class__.__name__}", 503
            )

    post = get


_PARSE_ERROR = re.compile(r"\d+:\d+: parse error: ")


class QueryView(PrometheusView):
    bounded_reads = False  # the engine opens its own bounded reading

    def handle(self):
        query = self.param("query")
        if query is None:
            raise promql.BadData('invalid parameter "query": no query given')
        when = self.param("time")
        time_ms = parse_time("time", when) if when else int(time.time() * 1000)
        try:
            result = promql.instant_query(
                querier=PostgresQuerier(org_id=self.org.pk),
                query=query,
                time_ms=time_ms,
                limits=self.limits(),
            )
        except promql.BadData as exc:
            if _PARSE_ERROR.match(str(exc)):
                # Prometheus names the parameter for an instant query's parse errors (not for
                # query_range's nor query_exemplars')
                raise promql.BadData(f'invalid parameter "query": {exc}') from None
            raise
        return success(result)


class QueryRangeView(PrometheusView):
    bounded_reads = False  # the engine opens its own bounded reading

    def handle(self):
        start = parse_time("start", self.param("start") or "")
        end = parse_time("end", self.param("end") or "")
        if end < start:
            raise promql.BadData(
                'invalid parameter "end": end timestamp must not be before start time'
            )
        step = parse_duration_ms("step", self.param("step") or "")
        if step <= 0:
            raise promql.BadData(
                'invalid parameter "step": zero or negative query resolution step widths are '
                "not accepted. Try a positive integer"
            )
        query = self.param("query")
        if query is None:
            raise promql.BadData('invalid parameter "query": no query given')
        return success_raw(
            results_cache.range_query_json(
                org_id=self.org.pk,
                querier=PostgresQuerier(org_id=self.org.pk),
                query=query,
                start_ms=start,
                end_ms=end,
                step_ms=step,
                limits=self.limits(),
                out_of_order_window_ms=(
                    limits_get(org_id=self.org.pk).out_of_order_time_window_seconds * 1000
                ),
            )
        )


class SeriesView(PrometheusView):
    def handle(self):
        selectors = self.selectors(required=True)
        found = self.matched_series(selectors)
        found.sort(key=lambda labels: sorted(labels.items()))
        return success(found)


class LabelsView(PrometheusView):
    def handle(self):
        selectors = self.selectors(required=False)
        if not selectors:
            return success(label_names(org_id=self.org.pk, metrics=self.active_metrics()))
        found = self.matched_series(selectors)
        return success(sorted({name for labels in found for name in labels}))


class LabelValuesView(PrometheusView):
    def handle(self, name: str):
        if not valid_label_name(name):
            raise promql.BadData(f'invalid label name: "{name}"')
        selectors = self.selectors(required=False)
        if not selectors:
            active = self.active_metrics()
            return success(label_values(org_id=self.org.pk, name=name, metrics=active))
        found = self.matched_series(selectors)
        return success(sorted({labels[name] for labels in found if name in labels}))


class MetadataView(PrometheusView):
    def handle(self):
        metric = self.param("metric")
        limit = strict.integer("limit", self.param("limit"), minimum=0, maximum=2**31) or 0
        out: dict[str, list[dict]] = {}
        for family, kind, help_text, unit in metadata_list(org_id=self.org.pk, metric=metric):
            if limit and len(out) >= limit and family not in out:
                break
            out.setdefault(family, []).append({"type": kind, "help": help_text, "unit": unit})
        return success(out)


class ExemplarsView(PrometheusView):
    """Exemplars of the series the query's selectors match, in ``[start, end]``, in
    Prometheus's format (``seriesLabels``, ``exemplars[{labels, value, timestamp}]``)."""

    def handle(self):
        start_text, end_text = self.param("start"), self.param("end")
        start_ms = parse_time("start", start_text) if start_text else -(2**62)
        end_ms = parse_time("end", end_text) if end_text else 2**62
        if end_ms < start_ms:
            raise promql.BadData(
                'invalid parameter "end": end timestamp must not be before start timestamp'
            )
        expr = parse_expr(self.param("query") or "")
        selectors: list[list[Matcher]] = []

        def collect(node) -> None:
            if isinstance(node, pp.VectorSelector):
                selectors.append(matchers_of(node))

        pp.walk(expr, pre_visit=collect)
        if not selectors:
            return success(None)
        limits = limits_get(org_id=self.org.pk)
        found: dict[int, dict] = {}
        for matchers in selectors:
            found.update(
                series_match(
                    org_id=self.org.pk, matchers=matchers, limit=limits.query_max_series + 1
                )
            )
            if len(found) > limits.query_max_series:
                raise promql.TooManySeries(limits.query_max_series)
        by_series: dict[int, list[dict]] = {}
        for exemplar in exemplars_for_series(
            org_id=self.org.pk,
            series_ids=list(found),
            start_ms=start_ms,
            end_ms=end_ms,
            limit=limits.query_max_samples,
        ):
            by_series.setdefault(exemplar.series_id, []).append(
                {
                    "labels": exemplar.labels,
                    "value": format_value(exemplar.value),
                    "timestamp": format_time(exemplar.timestamp_ms),
                }
            )
        ordered = sorted(by_series, key=lambda sid: sorted(found[sid].items()))
        return success(
            [{"seriesLabels": found[sid], "exemplars": by_series[sid]} for sid in ordered]
        )


class BuildInfoView(PrometheusView):
    def handle(self):
        return success(
            {
                "version": PROMETHEUS_VERSION,
                "revision": "canopy",
                "branch": "canopy",
                "buildUser": "canopy",
                "buildDate": "",
                "goVersion": "",
            }
        )


class RemoteReadView(PrometheusView):
    """``POST /prometheus/api/v1/read``: Prometheus remote read (``remote_read`` in a
    Prometheus config), SAMPLES or STREAMED_XOR_CHUNKS. Errors are plain text, as Prometheus's
    own read handler answers them (400 bad request or a limit, 503 timeout or storage down)."""

    http_method_names = ["post"]

    def post(self, request, **kwargs):
        django_request = request._request
        declared = django_request.META.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > remote_read.MAX_REQUEST_BYTES:
            return _text(413, f"request body exceeds {remote_read.MAX_REQUEST_BYTES} bytes")
        body = django_request.read(remote_read.MAX_REQUEST_BYTES + 1)
        if len(body) > remote_read.MAX_REQUEST_BYTES:
            return _text(413, f"request body exceeds {remote_read.MAX_REQUEST_BYTES} bytes")
        # (the org's query limits; no form parameters: the body is the protobuf request)
        org_limits = limits_get(org_id=self.org.pk)
        limits = promql.QueryLimits(
            max_series=org_limits.query_max_series,
            max_samples=org_limits.query_max_samples,
            timeout_seconds=float(org_limits.query_timeout_seconds),
        )
        try:
            read = remote_read.decode_read_request(body)
            results = remote_read.read_series(
                PostgresQuerier(org_id=self.org.pk),
                read,
                max_series=limits.max_series,
                max_samples=limits.max_samples,
                timeout_seconds=limits.timeout_seconds,
            )
        except (remote_read.BadReadRequest, remote_read.SampleLimitExceeded) as exc:
            return _text(400, str(exc))
        except SeriesLimitExceeded as exc:
            return _text(400, f"exceeded series limit ({exc.limit})")
        except ReadTimeout:
            return _text(503, f"query timed out after {limits.timeout_seconds:g}s")
        except (DatabaseError, RedisError) as exc:
            return _text(503, f"storage temporarily unavailable: {exc.__class__.__name__}")
        if read.response_type == remote_read.STREAMED_XOR_CHUNKS:
            return StreamingHttpResponse(
                remote_read.encode_chunked_frames(results),
                content_type=remote_read.STREAMED_CONTENT_TYPE,
            )
        response = HttpResponse(
            remote_read.encode_samples_response(results),
            content_type=remote_read.SAMPLES_CONTENT_TYPE,
        )
        response["Content-Encoding"] = "snappy"
        return response


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain")
