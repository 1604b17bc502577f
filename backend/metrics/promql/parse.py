"""Parsing: PyPI ``promql-parser`` builds the AST; here it is held to Prometheus 2.x's
language (the parser follows 3.x, which renamed ``holt_winters`` and added a few forms)."""

from __future__ import annotations

import functools
import math
import re

import promql_parser as pp
import re2

from backend.metrics.labels import anchored_regex
from backend.metrics.promql.errors import BadData
from backend.metrics.promql.parse_messages import position, prometheus_parse_error
from backend.metrics.promql.syntax_errors import syntax_error

_RE2_TEXT = re2.Options()
_RE2_TEXT.dot_nl = True

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
        raise BadData("1:1: parse error: no expression found in input")
    check_size(query)
    try:
        expr = pp.parse(query)
        if _newer_syntax(query):
            # Forms of Prometheus 3 the parser takes and Prometheus 2 refuses (a number where a
            # duration goes, a quoted label name): Prometheus 2's grammar decides.
            found = _first_error(query)
            if found is not None:
                raise BadData(found)
        pp.walk(expr, pre_visit=_check_node)
    except ValueError as exc:
        raise BadData(_first_error(query) or prometheus_parse_error(query, str(exc))) from None
    except BadData as exc:
        if str(exc).startswith("1:1: parse error: "):
            # a refusal of _check_node, which knows what but not where
            raise BadData(_first_error(query) or str(exc)) from None
        raise
    except BaseException as exc:
        # The parser is Rust under pyo3: a panic surfaces as pyo3's PanicException, which
        # derives from BaseException. check_size keeps known panics out; this is the net.
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise BadData("1:1: parse error: the parser refused this query") from None
    return expr


_NUMBER_TEXT = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_OFFSET_NUMBER = re.compile(rf"(?i:offset)\s*-?\s*{_NUMBER_TEXT}(?![0-9a-zA-Z_.])")  # offset 5
_BRACKET_NUMBER = re.compile(rf"[\[:]\s*{_NUMBER_TEXT}\s*[\]:]")  # [5], [5:1], [5m:1]
_QUOTED_LABEL = re.compile(r"""\{\s*["'`]|["'`]\s*(?:=~|!~|!=|=(?!=))""")  # {"name"}, {"a.b"="c"}


def _newer_syntax(query: str) -> bool:
    """Whether the query may use a form of Prometheus 3 that Prometheus 2 refuses (the regexes
    only pick the queries to check; the grammar walk decides)."""
    return bool(
        ("offset" in query.lower() and _OFFSET_NUMBER.search(query))
        or _BRACKET_NUMBER.search(query)
        or _QUOTED_LABEL.search(query)
    )


def _first_error(query: str) -> str | None:
    """The first error Prometheus reports in a query (syntax, then types), as it words it and
    where it places it; ``None`` when its grammar walk finds none."""
    found = syntax_error(query, _known_function, _regex_problem)
    if found is None:
        return None
    offset, text = found
    return f"{position(query, offset)}: parse error: {text}"


# RE2's words for a bad regex, and Go's (Prometheus's regexp package) for the same problem.
_GO_REGEX_WORDS = {
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "bad repetition operator": "invalid nested repetition operator",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
}


def _regex_problem(pattern: str) -> str | None:
    try:
        anchored_regex(pattern)
    except re2.error as exc:
        text = exc.args[0] if exc.args else ""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        code, _, fragment = str(text).partition(": ")
        return f"error parsing regexp: {_GO_REGEX_WORDS.get(code, code)}: `{fragment}`"
    return None


@functools.lru_cache(maxsize=1024)
def _known_function(name: str) -> bool:
    if name in NOT_IN_2X:
        return False
    try:
        pp.parse(f"{name}()")
    except ValueError as exc:
        return "unknown function" not in str(exc)
    return True


# Guards checked on the text BEFORE the parser sees it. The parser recurses once per level
# of the syntax tree and overflows its stack (a segfault that kills the worker) near 6,000
# levels; walking the tree from Python costs time cubic in its depth (15 s at 600 levels).
# Every level of the tree is a bracket or an operator, so "brackets open at once + operators"
# bounds the depth from the text alone, at a cost linear in its length.
MAX_QUERY_LENGTH = 64 * 1024  # characters
MAX_QUERY_DEPTH = 128  # brackets open at once + operators, an upper bound of the tree depth
# Prometheus keeps durations in int64 nanoseconds (about 292 years) and timestamps in int64
# milliseconds; Canopy bounds both well inside what its int64 arithmetic can add up.
MAX_DURATION_MS = 292 * 365 * 86_400_000
MAX_TIMESTAMP_S = 253_402_300_799  # 9999-12-31T23:59:59Z
_DURATION_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "y": 365 * 86_400_000,
}
_LEXEME = re2.compile(
    r"""(?P<ws>\s+)"""
    r"""|(?P<comment>#[^\n]*)"""
    r"""|(?P<string>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|`[^`]*`?)"""
    r"""|(?P<duration>(?:[0-9]+(?:ms|s|m|h|d|w|y))+)(?P<after>[a-zA-Z_0-9]?)"""
    r"""|(?P<number>0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"""
    r"""|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:.]*)"""
    r"""|(?P<open>[(\[{])|(?P<close>[)\]}])"""
    r"""|(?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=!])"""
    r"""|(?P<at>@)"""
    r"""|(?P<other>.)""",
    options=_RE2_TEXT,
)
_DURATION_PART = re2.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_AT_NUMBER = re2.compile(r"\s*([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[iI]nf|[nN]a[nN]))")
_KEYWORD_OPERATORS = frozenset({"and", "or", "unless", "atan2"})


def check_size(query: str) -> None:
    """Refuse (``BadData``, 400) a query the parser or the engine cannot take safely: longer
    than ``MAX_QUERY_LENGTH``, nested deeper than ``MAX_QUERY_DEPTH``, with a duration over
    ``MAX_DURATION_MS`` or an ``@`` time past year 9999."""
    if len(query) > MAX_QUERY_LENGTH:
        raise BadData(f"query too long: {len(query)} characters (the limit is {MAX_QUERY_LENGTH})")
    if "\x00" in query:
        raise BadData("1:1: parse error: the query contains a NUL character")
    depth = deepest = operators = 0
    braces = 0  # inside {…}, = != =~ !~ are label matchers, not operators
    pos, end = 0, len(query)
    while pos < end:
        m = _LEXEME.match(query, pos)
        kind, pos = m.lastgroup, m.end()
        if kind == "after":
            kind = "duration"
        if kind == "open":
            depth += 1
            braces += m.group() == "{"
            deepest = max(deepest, depth)
            operators += m.group() == "["  # x[5m:][5m:] nests without nesting brackets
        elif kind == "close":
            depth = max(0, depth - 1)
            braces = max(0, braces - (m.group() == "}"))
        elif kind in ("op", "ident") and not braces:
            operators += kind == "op" or m.group().lower() in _KEYWORD_OPERATORS
        elif kind == "duration" and not m.group("after"):
            total = sum(
                int(n) * _DURATION_UNITS_MS[u] for n, u in _DURATION_PART.findall(m.group())
            )
            if total > MAX_DURATION_MS:
                raise BadData(
                    f"1:1: parse error: duration {m.group()!r} is out of range (the limit is 292y)"
                )
        elif kind == "at":
            stamp = _AT_NUMBER.match(query, pos)
            if stamp is not None:
                # The parser keeps @ times as an unsigned time since 1970 (and panics on
                # earlier ones), so Canopy's range is 1970 to 9999.
                seconds = float(stamp.group(1))
                if not math.isfinite(seconds) or not 0 <= seconds <= MAX_TIMESTAMP_S:
                    raise BadData(
                        f"1:1: parse error: @ timestamp {stamp.group(1)!r} is out of range "
                        "(1970 to 9999)"
                    )
        if deepest + operators > MAX_QUERY_DEPTH:
            raise BadData(
                f"query too complex: more than {MAX_QUERY_DEPTH} levels of brackets and operators"
            )


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
