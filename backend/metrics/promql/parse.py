"""Parsing: PyPI ``promql-parser`` builds the AST; here it is held to Prometheus 2.x's
language (the parser follows 3.x, which renamed ``holt_winters`` and added a few forms)."""

from __future__ import annotations

import promql_parser as pp
import re2

from backend.metrics.labels import anchored_regex
from backend.metrics.promql.errors import BadData
from backend.metrics.promql.parse_messages import prometheus_parse_error

# Prometheus 2.x's name for what 3.x calls double_exponential_smoothing.
pp.clear_extra_functions()
pp.register_extra_functions(
    [
        pp.Function(
            "holt_winters",
            [pp.ValueType.Matrix, pp.ValueType.Scalar, pp.ValueType.Scalar],
            pp.ValueType.Vector,
        )
    ]
)

# Functions the parser knows that Prometheus 2.x does not (or only for native histograms,
# which Canopy does not store).
NOT_IN_2X = frozenset(
    {
        "double_exponential_smoothing",
        "sort_by_label",
        "sort_by_label_desc",
        "info",
        "mad_over_time",
        "ts_of_max_over_time",
        "ts_of_min_over_time",
        "ts_of_last_over_time",
        "first_over_time",
        "ts_of_first_over_time",
        "limitk",
        "limit_ratio",
        "step",
        "histogram_count",
        "histogram_sum",
        "histogram_avg",
        "histogram_fraction",
        "histogram_stddev",
        "histogram_stdvar",
    }
)


def unwrap(node):
    """The expression inside any parentheses."""
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def parse_expr(query: str) -> pp.Expr:
    if not query.strip():
        raise BadData("empty query")
    try:
        expr = pp.parse(query)
    except ValueError as exc:
        raise BadData(prometheus_parse_error(query, str(exc))) from None
    pp.walk(expr, pre_visit=_check_node)
    return expr


def _check_node(node) -> None:
    if isinstance(node, pp.Call) and node.func.name in NOT_IN_2X:
        raise BadData(f'1:1: parse error: unknown function with name "{node.func.name}"')
    if isinstance(node, pp.VectorSelector) and node.matchers.or_matchers:
        raise BadData("1:1: parse error: unexpected 'or' in label matchers")
    if isinstance(node, pp.VectorSelector):
        for m in node.matchers.matchers:
            if str(m.op) in ("MatchOp.Re", "MatchOp.NotRe"):
                # The parser's regex dialect is Rust's; matching is RE2's, as in Prometheus.
                try:
                    anchored_regex(m.value)
                except re2.error:
                    raise BadData(f"1:1: parse error: error parsing regexp: {m.value!r}") from None
    if isinstance(node, pp.AggregateExpr) and str(node.op) in ("limitk", "limit_ratio"):
        raise BadData(f"1:1: parse error: unknown aggregation {node.op}")
    if isinstance(node, pp.BinaryExpr) and node.modifier is not None:
        fill = node.modifier.fill_values
        if fill is not None and (fill.lhs is not None or fill.rhs is not None):
            raise BadData("1:1: parse error: unexpected fill modifier")
