"""PromQL evaluation over numpy arrays, every step of a range query at once.

The semantics are Prometheus 2.x's (the reference the compatibility suite runs against):
the 5-minute lookback of instant selectors, closed range windows ``[t - range, t]``,
staleness markers ending a series, ``offset`` and ``@`` shifting the evaluation time,
subqueries evaluated on their own step grid aligned to multiples of the step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import promql_parser as pp

from backend.metrics.labels import METRIC_NAME, Matcher
from backend.metrics.promql import aggregations, binary, functions
from backend.metrics.promql.errors import (
    BadData,
    ExecutionError,
    QueryTimeout,
    TooManySamples,
    TooManySeries,
)
from backend.metrics.promql.parse import unwrap
from backend.metrics.promql.querier import Querier, SeriesLimitExceeded, SeriesSet, Windows
from backend.metrics.promql.values import (
    Matrix,
    Scalar,
    String,
    Vector,
    is_stale,
    merge_rows,
    search_series,
    without_name,
)

LOOKBACK_MS = 5 * 60 * 1000
DEFAULT_SUBQUERY_STEP_MS = 60 * 1000  # Prometheus's default global evaluation_interval
_MATCH_OPS = {  # keyed by name: the parser's enums are not hashable
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_series: int = 100_000
    max_samples: int = 50_000_000
    timeout_seconds: float = 120.0
    # Steps of one subquery's evaluation grid: every step costs tens of bytes per series in
    # the engine's arrays, so the grid is sized and refused before it is allocated.
    max_subquery_steps: int = 1_000_000


def matchers_of(selector: pp.VectorSelector) -> list[Matcher]:
    matchers = [Matcher(m.name, _MATCH_OPS[str(m.op)], m.value) for m in selector.matchers.matchers]
    if selector.name and not any(m.name == METRIC_NAME for m in matchers):
        matchers.append(Matcher(METRIC_NAME, "=", selector.name))
    return matchers


def ms(delta: timedelta | None) -> int:
    if delta is None:
        return 0
    return round(delta / timedelta(milliseconds=1))


def value_kind(node) -> str:
    """The static type of an expression: "matrix", "vector", "scalar" or "string"."""
    node = unwrap(node)
    if isinstance(node, pp.MatrixSelector | pp.SubqueryExpr):
        return "matrix"
    if isinstance(node, pp.StringLiteral):
        return "string"
    if isinstance(node, pp.NumberLiteral):
        return "scalar"
    if isinstance(node, pp.Call):
        return str(node.func.return_type).removeprefix("ValueType.").lower()
    if isinstance(node, pp.UnaryExpr):
        return value_kind(node.expr)
    if isinstance(node, pp.BinaryExpr):
        if value_kind(node.lhs) == "scalar" and value_kind(node.rhs) == "scalar":
            return "scalar"
        return "vector"
    return "vector"


class Evaluator:
    def __init__(
        self,
        *,
        querier: Querier,
        start_ms: int,
        end_ms: int,
        limits: QueryLimits,
        instant: bool = False,
    ) -> None:
        self.querier = querier
        self.query_start = start_ms
        self.query_end = end_ms
        self.limits = limits
        self.instant = instant  # an instant query: sort() and topk order their output
        self.deadline = time.monotonic() + limits.timeout_seconds
        self.samples_loaded = 0

    # -- plumbing ---------------------------------------------------------------------------

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeout("query timed out in expression evaluation")

    def count_samples(self, n: int) -> None:
        self.samples_loaded += n
        if self.samples_loaded > self.limits.max_samples:
            raise TooManySamples()

    def check_dense(self, series: int, steps: int) -> None:
        """A (series by steps) array is about to be built: refuse it past the samples limit
        rather than run out of memory."""
        if series * steps > self.limits.max_samples:
            raise TooManySamples()

    def at_ms(self, at) -> int | None:
        if at is None:
            return None
        if at.type == pp.AtModifierType.Start:
            return self.query_start
        if at.type == pp.AtModifierType.End:
            return self.query_end
        return round(at.at.timestamp() * 1000)

    def ref_times(self, ts: np.ndarray, at, offset) -> np.ndarray:
        """The times a selector reads at: the step times (or the fixed ``@`` time), minus the
        offset."""
        fixed = self.at_ms(at)
        base = ts if fixed is None else np.full_like(ts, fixed)
        return base - ms(offset)

    def fetch(
        self,
        selector: pp.VectorSelector,
        start_ms: int,
        end_ms: int,
        windows: Windows | None = None,
    ) -> SeriesSet:
        self.check_deadline()
        limit = self.limits.max_series
        try:
            got = self.querier.select(
                matchers_of(selector),
                start_ms=start_ms,
                end_ms=end_ms,
                max_series=limit,
                windows=windows,
            )
        except SeriesLimitExceeded:
            raise TooManySeries(limit) from None
        self.count_samples(len(got.values))
        self.check_deadline()
        return got

    # -- evaluation -------------------------------------------------------------------------

    def eval(self, node, ts: np.ndarray):
        self.check_deadline()
        node = unwrap(node)
        if isinstance(node, pp.NumberLiteral):
            return Scalar(np.full(len(ts), node.val, dtype=np.float64))
        if isinstance(node, pp.StringLiteral):
            return String(node.val)
        if isinstance(node, pp.VectorSelector):
            return self.instant_selector(node, ts)[0]
        if isinstance(node, pp.MatrixSelector):
            return self.range_selector(node, ts)
        if isinstance(node, pp.SubqueryExpr):
            return self.subquery(node, ts)
        if isinstance(node, pp.UnaryExpr):
            return negate(self.eval(node.expr, ts))
        if isinstance(node, pp.BinaryExpr):
            return binary.evaluate(self, node, ts)
        if isinstance(node, pp.AggregateExpr):
            return aggregations.evaluate(self, node, ts)
        if isinstance(node, pp.Call):
            return functions.evaluate(self, node, ts)
        raise ExecutionError(f"unsupported expression {type(node).__name__}")

    def instant_selector(
        self, node: pp.VectorSelector, ts: np.ndarray
    ) -> tuple[Vector, np.ndarray]:
        """The vector at each step, and the timestamps of the samples it took."""
        ref = self.ref_times(ts, node.at, node.offset)
        got = self.fetch(node, int(ref.min()) - LOOKBACK_MS, int(ref.max()))
        n = len(got.labels)
        if n == 0:
            return Vector.empty(len(ts)), np.zeros((0, len(ts)), dtype=np.int64)
        self.check_dense(n, len(ts))
        # The last sample at or before each reference time, if within the lookback and not
        # a staleness marker.
        idx = search_series(got.timestamps, got.offsets, ref, "right") - 1
        present = idx >= got.offsets[:-1, None]
        idx = np.maximum(idx, 0)
        sample_ts = got.timestamps[idx]
        values = got.values[idx]
        present &= (sample_ts >= ref[None, :] - LOOKBACK_MS) & ~is_stale(values)
        vec = Vector(got.labels, values, present)
        keep = np.flatnonzero(present.any(axis=1))
        return vec.take(keep), sample_ts[keep]

    def range_selector(self, node: pp.MatrixSelector, ts: np.ndarray) -> Matrix:
        vs = node.vector_selector
        ends = self.ref_times(ts, vs.at, vs.offset)
        range_ms = ms(node.range)
        got = self.fetch(
            vs, int(ends.min()) - range_ms, int(ends.max()), Windows.of(ends, range_ms)
        )
        self.check_dense(len(got.labels), len(ts))
        # Range selectors skip staleness markers.
        fresh = ~is_stale(got.values)
        if not fresh.all():
            ids = np.repeat(np.arange(len(got.labels)), np.diff(got.offsets))[fresh]
            offsets = np.searchsorted(ids, np.arange(len(got.labels) + 1), side="left")
            return Matrix(
                got.labels,
                got.timestamps[fresh],
                got.values[fresh],
                offsets.astype(np.int64),
                ends,
                range_ms,
            )
        return Matrix(got.labels, got.timestamps, got.values, got.offsets, ends, range_ms)

    def subquery(self, node: pp.SubqueryExpr, ts: np.ndarray) -> Matrix:
        ends = self.ref_times(ts, node.at, node.offset)
        range_ms = ms(node.range)
        step = ms(node.step) or DEFAULT_SUBQUERY_STEP_MS
        first = int(ends.min()) - range_ms
        inner_start = step * (first // step)
        if inner_start < first:
            inner_start += step
        # Sized in Python integers before numpy allocates anything.
        steps = max(1, (int(ends.max()) - inner_start) // step + 1)
        if steps > self.limits.max_subquery_steps:
            raise ExecutionError(
                f"subquery would evaluate {steps} steps (the limit is "
                f"{self.limits.max_subquery_steps}); use a larger subquery step or a "
                "shorter range"
            )
        self.check_dense(1, steps)
        inner_ts = np.arange(inner_start, int(ends.max()) + 1, step, dtype=np.int64)
        if len(inner_ts) == 0:
            inner_ts = np.array([inner_start], dtype=np.int64)
        inner = self.eval(node.expr, inner_ts)
        if not isinstance(inner, Vector):
            raise BadData("subquery is only allowed on instant vector")
        inner = inner.nonempty()
        counts = inner.present.sum(axis=1)
        self.count_samples(int(counts.sum()))
        offsets = np.zeros(len(inner.labels) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows, cols = np.nonzero(inner.present)  # row-major: grouped by series, time ascending
        return Matrix(
            inner.labels,
            inner_ts[cols],
            inner.values[rows, cols],
            offsets,
            ends,
            range_ms,
        )


def negate(value):
    if isinstance(value, Scalar):
        return Scalar(-value.values)
    if isinstance(value, Vector):
        value = value.nonempty()
        return merge_rows(
            [without_name(lab) for lab in value.labels],
            -value.values,
            value.present,
            per_step=False,
        )
    raise BadData("unary minus is only allowed on scalars and instant vectors")
