"""Parse and type errors worded and placed as Prometheus 2.x does, without a Prometheus: each
expected answer below is what the real ``prometheus`` (2.42) answered for the query (the compat
suite asks it live for many more, tests/compat/promql_expressions.py MID_QUERY_PARSE_ERRORS)."""

from __future__ import annotations

import pytest

from backend.metrics.promql.errors import BadData
from backend.metrics.promql.parse import parse_expr
from tests.compat import promql_expressions as px

CASES = [  # (query, position, Prometheus's message)
    ("sum by (a (x)", "1:11", 'unexpected "(" in grouping opts, expected "," or ")"'),
    ("sum(rate(,))", "1:10", 'unexpected "," in aggregation'),
    ("x y", "1:3", 'unexpected identifier "y"'),
    ("foo{a}", "1:6", 'unexpected "}" in label matching, expected label matching operator'),
    ("x @ start x", "1:11", 'unexpected identifier "x" in @, expected timestamp'),
    ("x offset 5", "1:10", 'unexpected number "5" in offset, expected duration'),
    ("x[5m:1]", "1:6", 'unexpected number "1" in subquery selector, expected duration or "]"'),
    ("x)", "1:3", "unexpected right parenthesis ')'"),
    ('x + "abc', "1:5", "unterminated quoted string"),
    ("rate(x[5m]) + rate(y[5mm])", "1:22", 'bad duration syntax: "5mm"'),
    ("rate(y[1h5hs])", "1:8", 'not a valid duration string: "1h5hs"'),
    (
        "sum(\n  rate(x[5m])\n) by (\n  a\n  b\n)",
        "5:3",
        'unexpected identifier "b" in grouping opts, expected "," or ")"',
    ),
    (
        "x + -y[5m]",
        "1:5",
        "unary expression only allowed on expressions of type scalar "
        'or instant vector, got "range vector"',
    ),
    ("rate(x[5m][5m:])", "1:6", "subquery is only allowed on instant vector, got matrix instead"),
    (
        "sum(x) + topk(x, y)",
        "1:15",
        "expected type scalar in aggregation parameter, got instant vector",
    ),
    ('x{a=~"("}', "1:3", "error parsing regexp: missing closing ): `^(?:()$`"),
    ("x offset 5m[5m]", "1:12", "no offset modifiers allowed before range"),
    ("sum(x) + sum()", "1:10", "no arguments for aggregate expression provided"),
    ("x * on(a) group_left(a) y", "1:3", 'label "a" must not occur in ON and GROUP clause at once'),
]


@pytest.mark.parametrize(("query", "where", "message"), CASES)
def test_errors_are_placed_and_worded_as_prometheus_does(query, where, message):
    with pytest.raises(BadData) as refused:
        parse_expr(query)
    assert str(refused.value) == f"{where}: parse error: {message}"


def test_no_valid_expression_of_the_compat_suite_is_refused():
    """The grammar walk also decides queries the parser takes in Prometheus 3's syntax; it must
    never refuse a query Prometheus 2 takes."""
    lists = [
        px.SELECTORS,
        px.MODIFIERS,
        px.SUBQUERIES,
        px.AGGREGATIONS,
        px.BINARY_OPERATORS,
        px.FUNCTIONS,
        px.ISTIO_MESH,
        px.ISTIO_SERVICE,
        px.ISTIO_WORKLOAD,
        px.KIALI,
    ]
    extra = ["x offset 5m", "x[5m:]", "x[1h:5m] offset 1m", 'x{a="b"}[5m:1m]', "sum(x) by (a)"]
    queries = [q.replace("$AT", "1700000000") for lst in lists for q in lst] + extra
    assert len(queries) > 300
    for query in queries:
        parse_expr(query)  # raises BadData if refused
