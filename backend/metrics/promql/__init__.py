"""Canopy's PromQL engine: ``instant_query`` and ``range_query`` answer with the ``data``
object of Prometheus's HTTP API (``resultType`` and ``result``)."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from backend.metrics.labels import labels_key
from backend.metrics.promql.errors import (
    BadData,
    ExecutionError,
    PromQLError,
    QueryTimeout,
    TooManySeries,
)
from backend.metrics.promql.evaluator import Evaluator, QueryLimits, value_kind
from backend.metrics.promql.parse import parse_expr
from backend.metrics.promql.querier import Querier, ReadTimeout
from backend.metrics.promql.values import (
    Matrix,
    Scalar,
    String,
    Vector,
    format_time,
    format_value,
    format_values,
)

__all__ = [
    "BadData",
    "ExecutionError",
    "PromQLError",
    "Querier",
    "QueryLimits",
    "QueryTimeout",
    "TooManySeries",
    "instant_query",
    "range_query",
    "range_query_json",
    "render_matrix",
]

MAX_POINTS_PER_SERIES = 11_000


def _evaluate(evaluator: Evaluator, expr, ts: np.ndarray):
    """Evaluate within one reading scope of the querier, bounded by the query timeout, so
    that a slow read is cancelled by the storage rather than left running."""
    try:
        with evaluator.querier.reading(timeout_seconds=evaluator.limits.timeout_seconds):
            return evaluator.eval(expr, ts)
    except ReadTimeout as exc:
        raise QueryTimeout("query timed out in expression evaluation") from exc


def instant_query(
    *, querier: Querier, query: str, time_ms: int, limits: QueryLimits | None = None
) -> dict[str, Any]:
    expr = parsed(query)
    evaluator = Evaluator(
        querier=querier,
        start_ms=time_ms,
        end_ms=time_ms,
        limits=limits or QueryLimits(),
        instant=True,
    )
    value = _evaluate(evaluator, expr, np.array([time_ms], dtype=np.int64))
    t = format_time(time_ms)
    if isinstance(value, Scalar):
        return {"resultType": "scalar", "result": [t, format_value(value.values[0])]}
    if isinstance(value, String):
        return {"resultType": "string", "result": [t, value.value]}
    if isinstance(value, Matrix):
        return {"resultType": "matrix", "result": _matrix_samples(value)}
    result = [
        {"metric": labels, "value": [t, format_value(values[0])]}
        for labels, values, present in zip(value.labels, value.values, value.present, strict=True)
        if present[0]
    ]
    return {"resultType": "vector", "result": result}


_parsed = threading.local()
_PARSED_MAX = 256


def parsed(query: str):
    """``parse_expr`` of the query, kept per thread for the last few hundred query texts (a
    dashboard sends the same queries again and again; parsing a long one costs a millisecond
    or more). Errors are not kept: they are raised again on every call."""
    cache = getattr(_parsed, "cache", None)
    if cache is None:
        cache = _parsed.cache = {}
    expr = cache.get(query)
    if expr is None:
        expr = parse_expr(query)
        if len(cache) >= _PARSED_MAX:
            cache.clear()
        cache[query] = expr
    return expr


def range_check(expr, start_ms: int, end_ms: int, step_ms: int) -> None:
    """What a range query refuses before evaluating anything."""
    kind = value_kind(expr)
    if kind in ("matrix", "string"):
        name = "range vector" if kind == "matrix" else "string"
        raise BadData(
            f'invalid expression type "{name}" for range query, must be Scalar or instant Vector'
        )
    if (end_ms - start_ms) // step_ms + 1 > MAX_POINTS_PER_SERIES:
        raise BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )


def range_evaluate(
    querier: Querier, query: str, start_ms: int, end_ms: int, step_ms: int, limits
) -> tuple[Vector, np.ndarray, list[int]]:
    """The result of a range query, its step times, and its series in label order."""
    expr = parsed(query)
    range_check(expr, start_ms, end_ms, step_ms)
    ts = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
    evaluator = Evaluator(
        querier=querier, start_ms=start_ms, end_ms=end_ms, limits=limits or QueryLimits()
    )
    value = _evaluate(evaluator, expr, ts)
    if isinstance(value, Scalar):
        value = Vector([{}], value.values[None, :], np.ones((1, len(ts)), dtype=bool))
    value = value.nonempty()
    order = sorted(range(len(value.labels)), key=lambda i: labels_key(value.labels[i]))
    return value, ts, order


def range_query(
    *,
    querier: Querier,
    query: str,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    limits: QueryLimits | None = None,
) -> dict[str, Any]:
    """``range_query_json``'s answer as Python objects."""
    return json.loads(
        range_query_json(
            querier=querier,
            query=query,
            start_ms=start_ms,
            end_ms=end_ms,
            step_ms=step_ms,
            limits=limits,
        )
    )


def range_query_json(
    *,
    querier: Querier,
    query: str,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    limits: QueryLimits | None = None,
) -> str:
    """``range_query``'s answer serialised straight to JSON text: a wide answer is hundreds of
    thousands of points, and building a Python list per point would cost more than the
    evaluation itself."""
    value, ts, order = range_evaluate(querier, query, start_ms, end_ms, step_ms, limits)
    return render_matrix(value, ts, order)


def render_matrix(value: Vector, ts: np.ndarray, order: list[int]) -> str:
    """A range query's ``data`` as JSON text: the series of ``value`` in ``order``, each with
    its points at the steps ``ts`` where it is present."""
    heads = [f'[{format_time(int(t))},"' for t in ts]
    parts = []
    for i in order:
        cols = np.flatnonzero(value.present[i])
        points = '"],'.join(
            map(
                str.__add__,
                map(heads.__getitem__, cols.tolist()),
                format_values(value.values[i, cols]),
            )
        )
        metric = json.dumps(value.labels[i], separators=(",", ":"))
        parts.append(f'{{"metric":{metric},"values":[{points}"]]}}')
    return '{"resultType":"matrix","result":[' + ",".join(parts) + "]}"


def _matrix_samples(m: Matrix) -> list[dict[str, Any]]:
    lo, hi = m.windows()
    out = []
    for s, labels in enumerate(m.labels):
        a, b = int(lo[s, 0]), int(hi[s, 0])
        if a == b:
            continue
        out.append(
            {
                "metric": labels,
                "values": [
                    [format_time(int(t)), format_value(v)]
                    for t, v in zip(m.timestamps[a:b].tolist(), m.values[a:b].tolist(), strict=True)
                ],
            }
        )
    return out
