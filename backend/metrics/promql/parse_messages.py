"""Parse errors in Prometheus's words and with its positions.

The Rust parser (``promql-parser``) says what is wrong but not where, and in its own words
(``expected type matrix in call to function 'rate', got vector``). Prometheus answers
``1:6: parse error: expected type range vector in call to function "rate", got instant
vector``. :func:`prometheus_parse_error` rewrites the message and finds the position Prometheus
reports for the kinds of error whose place can be told from the query text: type errors in
function calls and aggregations, argument counts, unknown functions, and errors at the end of
the input (unclosed parentheses, brackets and braces, a missing operand or duration). Other
errors keep the parser's message at ``1:1``.
"""

from __future__ import annotations

import re

_TYPE_WORDS = {"matrix": "range vector", "vector": "instant vector", "scalar": "scalar"}
_TYPE_IN_CALL = re.compile(
    r"expected type (matrix|vector|scalar|string) in call to function '([^']*)', "
    r"got (matrix|vector|scalar|string)"
)
_TYPE_IN_AGGREGATION = re.compile(
    r"expected type (matrix|vector|scalar|string) in aggregation expression, "
    r"got (matrix|vector|scalar|string)"
)
_ARGUMENT_COUNT = re.compile(r"expected (.+) argument\(s\) in call to '([^']*)', got (\d+)")
_UNKNOWN_FUNCTION = re.compile(r"unknown function with name '([^']*)'")
# Errors Prometheus reports where the input ends.
_AT_END = {
    "unclosed left parenthesis": "unclosed left parenthesis",
    "unexpected end of input inside braces": "unexpected end of input inside braces",
    "unexpected end of input inside brackets": "unclosed left bracket",
    "unexpected end of input in offset, expected duration": (
        "unexpected end of input in offset, expected duration"
    ),
}
_BINARY_OPERATOR_AT_END = re.compile(
    r"(\+|-|\*|/|%|\^|==|!=|<=|>=|<|>|\band\b|\bor\b|\bunless\b|\batan2\b|\bbool\b)\s*$"
)


def _type_word(name: str) -> str:
    return _TYPE_WORDS.get(name, name)


def position(query: str, offset: int) -> str:
    """Prometheus's ``line:column`` (1-based; columns count bytes) of a character offset."""
    before = query[:offset]
    line = before.count("\n") + 1
    column = len(before[before.rfind("\n") + 1 :].encode()) + 1
    return f"{line}:{column}"


def _call_arguments(query: str, name: str) -> tuple[int, list[tuple[int, str]]] | None:
    """Where the first call of ``name`` starts and its top-level arguments (offset, text)."""
    match = re.search(rf"(?<![a-zA-Z0-9_:]){re.escape(name)}\s*\(", query)
    if match is None:
        return None
    depth = 0
    args: list[tuple[int, str]] = []
    start = match.end()
    quote = ""
    for i in range(match.end(), len(query)):
        ch = query[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                args.append((start, query[start:i]))
                return match.start(), args
            depth -= 1
        elif ch == "," and depth == 0:
            args.append((start, query[start:i]))
            start = i + 1
    args.append((start, query[start:]))
    return match.start(), args


def _looks_like(kind: str, text: str) -> bool:
    text = text.strip()
    if kind == "matrix":
        return text.endswith("]")
    if kind == "scalar":
        return bool(re.fullmatch(r"[-+]?(\d|\.\d|Inf|NaN|inf|nan)[\w.+-]*", text))
    if kind == "string":
        return text[:1] in "\"'`"
    return not text.endswith("]") and not _looks_like("scalar", text) and text[:1] not in "\"'`"


def _argument_offset(query: str, function: str, got: str) -> int | None:
    found = _call_arguments(query, function)
    if found is None:
        return None
    _, args = found
    for offset, text in args:
        if _looks_like(got, text):
            return offset + len(text) - len(text.lstrip())
    return None


def prometheus_parse_error(query: str, message: str) -> str:
    """``"<line>:<column>: parse error: <message>"`` as Prometheus would write it."""
    found = _TYPE_IN_CALL.fullmatch(message)
    if found is not None:
        expected, function, got = found.groups()
        offset = _argument_offset(query, function, got)
        text = (
            f"expected type {_type_word(expected)} in call to function "
            f'"{function}", got {_type_word(got)}'
        )
        return f"{position(query, offset or 0)}: parse error: {text}"
    found = _TYPE_IN_AGGREGATION.fullmatch(message)
    if found is not None:
        expected, got = found.groups()
        offset = None
        parameter = re.search(r"\b(topk|bottomk|quantile|count_values)\s*\(\s*", query)
        if parameter is not None:
            offset = parameter.end()
        text = (
            f"expected type {_type_word(expected)} in aggregation parameter, got {_type_word(got)}"
        )
        return f"{position(query, offset or 0)}: parse error: {text}"
    found = _ARGUMENT_COUNT.fullmatch(message)
    if found is not None:
        expected, function, got = found.groups()
        call = _call_arguments(query, function)
        offset = call[0] if call is not None else 0
        text = f'expected {expected} argument(s) in call to "{function}", got {got}'
        return f"{position(query, offset)}: parse error: {text}"
    found = _UNKNOWN_FUNCTION.fullmatch(message)
    if found is not None:
        (function,) = found.groups()
        call = _call_arguments(query, function)
        offset = call[0] if call is not None else 0
        return f'{position(query, offset)}: parse error: unknown function with name "{function}"'
    if message in _AT_END:
        return f"{position(query, len(query))}: parse error: {_AT_END[message]}"
    if message == "invalid promql query" and _BINARY_OPERATOR_AT_END.search(query):
        return f"{position(query, len(query))}: parse error: unexpected end of input"
    return f"1:1: parse error: {message}"
