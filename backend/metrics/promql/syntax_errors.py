"""Where Prometheus says a query stops making sense, and in its words.

The Rust parser that builds Canopy's syntax trees (``promql-parser``) refuses the same queries
as Prometheus but says neither where nor, mostly, in Prometheus's words. This module walks a
refused query the way Prometheus 2.x reads it: a lexer with the same states (inside braces,
after ``[``, parentheses counted) and the same error texts, and a recursive descent over the
grammar whose error rules are those of Prometheus's yacc grammar (``unexpected <token> in
grouping opts, expected "," or ")"``, ``… in label matching …``, ``… in offset …``, ``… in
aggregation``, ``… in subquery selector …``). The first problem found is the one Prometheus
reports, at its ``line:column``.

It is only called on queries the Rust parser has already refused (never on the query path of a
valid query), and answers ``None`` when it finds no syntax error: the refusal is then a type or
argument error, which :mod:`parse_messages` words from the Rust parser's message.

Written from the language's documented behaviour and checked against a real Prometheus by the
compat suite (``tests/compat/test_promql_compat.py``); the differences still known are listed in
docs/promql.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

# --- tokens -------------------------------------------------------------------------------------

EOF = "EOF"
ERROR = "ERROR"
IDENTIFIER = "IDENTIFIER"
METRIC_IDENTIFIER = "METRIC_IDENTIFIER"
NUMBER = "NUMBER"
STRING = "STRING"
DURATION = "DURATION"
COMMENT = "COMMENT"

# Tokens written as themselves in messages ('unexpected "("'); keywords, operators and
# aggregators are written <by>, <op:+>, <aggr:sum>.
_PUNCTUATION = {
    "LEFT_PAREN": "(",
    "RIGHT_PAREN": ")",
    "LEFT_BRACE": "{",
    "RIGHT_BRACE": "}",
    "LEFT_BRACKET": "[",
    "RIGHT_BRACKET": "]",
    "COMMA": ",",
    "EQL": "=",
    "COLON": ":",
}
_OPERATORS = {
    "ADD": "+",
    "SUB": "-",
    "MUL": "*",
    "DIV": "/",
    "MOD": "%",
    "POW": "^",
    "EQLC": "==",
    "NEQ": "!=",
    "LTE": "<=",
    "LSS": "<",
    "GTE": ">=",
    "GTR": ">",
    "EQL_REGEX": "=~",
    "NEQ_REGEX": "!~",
    "AT": "@",
    "LAND": "and",
    "LOR": "or",
    "LUNLESS": "unless",
    "ATAN2": "atan2",
}
_AGGREGATORS = {
    "avg": "AVG",
    "bottomk": "BOTTOMK",
    "count": "COUNT",
    "count_values": "COUNT_VALUES",
    "group": "GROUP",
    "max": "MAX",
    "min": "MIN",
    "quantile": "QUANTILE",
    "stddev": "STDDEV",
    "stdvar": "STDVAR",
    "sum": "SUM",
    "topk": "TOPK",
}
_KEYWORDS = {
    "bool": "BOOL",
    "by": "BY",
    "group_left": "GROUP_LEFT",
    "group_right": "GROUP_RIGHT",
    "ignoring": "IGNORING",
    "offset": "OFFSET",
    "on": "ON",
    "without": "WITHOUT",
    "start": "START",
    "end": "END",
}
_WORDS = {
    "and": "LAND",
    "or": "LOR",
    "unless": "LUNLESS",
    "atan2": "ATAN2",
    **_AGGREGATORS,
    **_KEYWORDS,
    "inf": NUMBER,
    "nan": NUMBER,
}
_AGGREGATOR_TYPES = frozenset(_AGGREGATORS.values())
_KEYWORD_TYPES = frozenset(_KEYWORDS.values())
_OPERATOR_TYPES = frozenset(_OPERATORS)
# Binary operators by precedence (higher binds tighter); ^ is right-associative.
_PRECEDENCE = {
    "LOR": 1,
    "LAND": 2,
    "LUNLESS": 2,
    "EQLC": 3,
    "NEQ": 3,
    "LTE": 3,
    "LSS": 3,
    "GTE": 3,
    "GTR": 3,
    "ADD": 4,
    "SUB": 4,
    "MUL": 5,
    "DIV": 5,
    "MOD": 5,
    "ATAN2": 5,
    "POW": 6,
}
# Keywords and aggregators that may also name a metric, and those that may name a label in
# by (…) / on (…).
_METRIC_WORDS = frozenset(
    {IDENTIFIER, METRIC_IDENTIFIER, "LAND", "LOR", "LUNLESS", "BY", "OFFSET", "WITHOUT"}
    | {"START", "END"}
    | _AGGREGATOR_TYPES
)
_LABEL_WORDS = frozenset(
    {IDENTIFIER, METRIC_IDENTIFIER, "LAND", "LOR", "LUNLESS", "ATAN2", "BOOL", "BY"}
    | {"GROUP_LEFT", "GROUP_RIGHT", "IGNORING", "OFFSET", "ON", "START", "END"}
    | _AGGREGATOR_TYPES
)
_MATCH_OPS = frozenset({"EQL", "NEQ", "EQL_REGEX", "NEQ_REGEX"})
_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?"
    r"(?:([0-9]+)ms)?"
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(slots=True)
class Token:
    kind: str
    pos: int  # character offset
    text: str


class _Found(Exception):
    def __init__(self, pos: int, message: str) -> None:
        self.pos = pos
        self.message = message


def _go_quote(text: str) -> str:
    """Go's ``%q`` of a string (``strconv.Quote``)."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _go_rune(ch: str) -> str:
    """Go's ``%q`` of a rune (``'x'``); end of input is Go's -1 (``%!q(int32=-1)``)."""
    if not ch:
        return "%!q(int32=-1)"
    if ch == "'":
        return "'\\''"
    return "'" + _go_quote(ch)[1:-1].replace('\\"', '"') + "'"


def describe(token: Token) -> str:
    """Prometheus's ``item.desc()``: how a message names a token."""
    kind, text = token.kind, token.text
    if kind == EOF:
        return "end of input"
    if kind in _PUNCTUATION:
        return _go_quote(text)
    if kind in _KEYWORD_TYPES:
        return f"<{text}>"
    if kind in _OPERATOR_TYPES:
        return f"<op:{text}>"
    if kind in _AGGREGATOR_TYPES:
        return f"<aggr:{text}>"
    what = {
        IDENTIFIER: "identifier",
        METRIC_IDENTIFIER: "metric identifier",
        NUMBER: "number",
        STRING: "string",
        DURATION: "duration",
    }.get(kind, kind)
    if kind in (IDENTIFIER, METRIC_IDENTIFIER):
        return f"{what} {_go_quote(text)}"
    if len(text) > 10:
        return f"{what} {_go_quote(text[:10])}..."
    return f"{what} {_go_quote(text)}"


# --- the lexer ----------------------------------------------------------------------------------


def _is_alpha(ch: str) -> bool:
    return ch == "_" or "a" <= ch <= "z" or "A" <= ch <= "Z"


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_alnum(ch: str) -> bool:
    return _is_alpha(ch) or _is_digit(ch)


class _Lexer:
    """Prometheus 2.x's lexer: one token at a time, ERROR tokens carrying its messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self.brace_open = False
        self.bracket_open = False
        self.got_colon = False
        self.after_bracket = False  # the next token is the one right after "["
        self.done = False
        self.width = 0

    # character helpers
    def _peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.text[i] if i < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.width = 1 if ch else 0  # Go's backup() gives back nothing at the end
        self.pos += self.width
        return ch

    def _accept(self, valid: str) -> bool:
        ch = self._peek()
        if ch and ch in valid:
            self.pos += 1
            return True
        return False

    def _accept_run(self, valid: str) -> None:
        while self._accept(valid):
            pass

    def _emit(self, kind: str) -> Token:
        token = Token(kind, self.start, self.text[self.start : self.pos])
        self.start = self.pos
        return token

    def _error(self, message: str) -> Token:
        self.done = True
        return Token(ERROR, self.start, message)

    def _skip_spaces(self) -> None:
        while self._peek() in (" ", "\t", "\n", "\r") and self._peek():
            self.pos += 1
        self.start = self.pos

    def next_token(self) -> Token:
        while True:
            token = self._lex()
            if token is not None and token.kind != COMMENT:
                return token

    def _lex(self) -> Token | None:
        if self.done:
            return Token(EOF, self.start, "")
        if self.after_bracket:
            self.after_bracket = False
            return self._lex_duration()
        if self.brace_open:
            return self._lex_inside_braces()
        if self.text.startswith("#", self.pos):
            return self._lex_comment()
        ch = self._next()
        if not ch:
            if self.paren_depth != 0:
                return self._error("unclosed left parenthesis")
            if self.bracket_open:
                return self._error("unclosed left bracket")
            self.done = True
            return self._emit(EOF)
        if ch in " \t\n\r":
            self._skip_spaces()
            return None
        simple = {",": "COMMA", "*": "MUL", "/": "DIV", "%": "MOD", "+": "ADD", "-": "SUB"}
        if ch in simple:
            return self._emit(simple[ch])
        if ch == "^":
            return self._emit("POW")
        if ch == "=":
            if self._peek() == "=":
                self._next()
                return self._emit("EQLC")
            if self._peek() == "~":
                return self._error("unexpected character after '=': '~'")
            return self._emit("EQL")
        if ch == "!":
            following = self._next()
            if following != "=":
                return self._error(f"unexpected character after '!': {_go_rune(following)}")
            return self._emit("NEQ")
        if ch in "<>":
            if self._peek() == "=":
                self._next()
                return self._emit("LTE" if ch == "<" else "GTE")
            return self._emit("LSS" if ch == "<" else "GTR")
        if _is_digit(ch) or (ch == "." and _is_digit(self._peek())):
            self.pos -= 1
            return self._lex_number_or_duration()
        if ch in "\"'":
            return self._lex_string(ch)
        if ch == "`":
            return self._lex_raw_string()
        if _is_alpha(ch) or ch == ":":
            if not self.bracket_open:
                self.pos -= 1
                return self._lex_word()
            if self.got_colon:
                return self._error(f"unexpected colon {_go_rune(ch)}")
            self.got_colon = True
            return self._emit("COLON")
        if ch == "(":
            self.paren_depth += 1
            return self._emit("LEFT_PAREN")
        if ch == ")":
            token = self._emit("RIGHT_PAREN")
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self._error("unexpected right parenthesis ')'")
            return token
        if ch == "{":
            self.brace_open = True
            return self._emit("LEFT_BRACE")
        if ch == "[":
            if self.bracket_open:
                return self._error("unexpected left bracket '['")
            self.got_colon = False
            token = self._emit("LEFT_BRACKET")
            self._skip_spaces()
            self.bracket_open = True
            self.after_bracket = True
            return token
        if ch == "]":
            if not self.bracket_open:
                return self._error("unexpected right bracket ']'")
            self.bracket_open = False
            return self._emit("RIGHT_BRACKET")
        if ch == "@":
            return self._emit("AT")
        return self._error(f"unexpected character: {_go_rune(ch)}")

    def _lex_comment(self) -> Token:
        while self._peek() and self._peek() not in "\r\n":
            self.pos += 1
        return self._emit(COMMENT)

    def _lex_inside_braces(self) -> Token | None:
        if self.text.startswith("#", self.pos):
            return self._lex_comment()
        ch = self._next()
        if not ch:
            return self._error("unexpected end of input inside braces")
        if ch in " \t\n\r":
            self._skip_spaces()
            return None
        if _is_alpha(ch):
            while _is_alnum(self._peek()) and self._peek():
                self.pos += 1
            return self._emit(IDENTIFIER)
        if ch == ",":
            return self._emit("COMMA")
        if ch in "\"'":
            return self._lex_string(ch)
        if ch == "`":
            return self._lex_raw_string()
        if ch == "=":
            if self._peek() == "~":
                self._next()
                return self._emit("EQL_REGEX")
            return self._emit("EQL")
        if ch == "!":
            following = self._next()
            if following == "~":
                return self._emit("NEQ_REGEX")
            if following == "=":
                return self._emit("NEQ")
            return self._error(
                f"unexpected character after '!' inside braces: {_go_rune(following)}"
            )
        if ch == "{":
            return self._error("unexpected left brace '{'")
        if ch == "}":
            self.brace_open = False
            return self._emit("RIGHT_BRACE")
        return self._error(f"unexpected character inside braces: {_go_rune(ch)}")

    def _lex_string(self, quote: str) -> Token:
        while True:
            ch = self._next()
            if ch == "\\":
                problem = self._escape(quote)
                if problem:
                    return self._error(problem)
                continue
            if not ch or ch == "\n":
                return self._error("unterminated quoted string")
            if ch == quote:
                return self._emit(STRING)

    def _escape(self, quote: str) -> str | None:
        ch = self._next()
        if ch and ch in "abfnrtv\\" + quote:
            return None
        if not ch:
            return "escape sequence not terminated"
        if ch in "01234567":
            n, base, biggest = 3, 8, 255
        elif ch in "xuU":
            n, base, biggest = {"x": (2, 16, 255), "u": (4, 16, 0x10FFFF)}.get(
                ch, (8, 16, 0x10FFFF)
            )
            ch = self._next()
        else:
            return f"unknown escape sequence U+{ord(ch):04X} {_go_rune(ch)}"
        value = 0
        while n > 0:
            digit = int(ch, 16) if ch and ch in "0123456789abcdefABCDEF" else 16
            if digit >= base:
                if not ch:
                    return "escape sequence not terminated"
                return f"illegal character U+{ord(ch):04X} {_go_rune(ch)} in escape sequence"
            value = value * base + digit
            n -= 1
            if n > 0:
                ch = self._next()
        if value > biggest or 0xD800 <= value < 0xE000:
            return "escape sequence is an invalid Unicode code point"
        return None

    def _lex_raw_string(self) -> Token:
        while True:
            ch = self._next()
            if not ch:
                return self._error("unterminated raw string")
            if ch == "`":
                return self._emit(STRING)

    def _scan_number(self) -> bool:
        digits = "0123456789"
        if self._accept("0") and self._accept("xX"):
            digits = "0123456789abcdefABCDEF"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789")
        return not _is_alnum(self._peek()) or not self._peek()

    def _accept_remaining_duration(self) -> bool:
        if not self._accept("smhdwy"):
            return False
        self._accept("s")
        while self._accept("0123456789"):
            self._accept_run("0123456789")
            if not self._accept("smhdw"):
                return False
            self._accept("s")
        following = self._next()
        return not (following and _is_alnum(following))

    def _lex_number_or_duration(self) -> Token:
        if self._scan_number():
            return self._emit(NUMBER)
        if self._accept_remaining_duration():
            self.pos -= self.width  # the character read past the duration
            return self._emit(DURATION)
        return self._error(
            f"bad number or duration syntax: {_go_quote(self.text[self.start : self.pos])}"
        )

    def _lex_duration(self) -> Token:
        if self._scan_number():
            return self._error("missing unit character in duration")
        if not self._accept_remaining_duration():
            return self._error(
                f"bad duration syntax: {_go_quote(self.text[self.start : self.pos])}"
            )
        self.pos -= self.width
        return self._emit(DURATION)

    def _lex_word(self) -> Token:
        while (_is_alnum(self._peek()) or self._peek() == ":") and self._peek():
            self.pos += 1
        word = self.text[self.start : self.pos]
        kind = _WORDS.get(word.lower())
        if kind is None:
            kind = METRIC_IDENTIFIER if ":" in word else IDENTIFIER
        return self._emit(kind)


# --- the grammar ----------------------------------------------------------------------------------

# --- the grammar ----------------------------------------------------------------------------------

_MODIFIABLE = "an instant vector selector or range vector selector or a subquery"
_GO_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_GO_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:[+-]?(?:inf|infinity|nan))"
)
SCALAR, VECTOR_TYPE, MATRIX_TYPE, STRING_TYPE = "scalar", "vector", "matrix", "string"
_DOCUMENTED = {
    SCALAR: "scalar",
    VECTOR_TYPE: "instant vector",
    MATRIX_TYPE: "range vector",
    STRING_TYPE: "string",
}
_S, _V, _M, _T = SCALAR, VECTOR_TYPE, MATRIX_TYPE, STRING_TYPE
# Prometheus 2.x's functions: argument types, how many trailing arguments are optional
# (-1: any number), the result type.
_FUNCTIONS: dict[str, tuple[tuple[str, ...], int, str]] = {
    **{
        name: ((_V,), 0, _V)
        for name in [
            "abs",
            "absent",
            "acos",
            "acosh",
            "asin",
            "asinh",
            "atan",
            "atanh",
            "ceil",
            "cos",
            "cosh",
            "deg",
            "exp",
            "floor",
            "ln",
            "log10",
            "log2",
            "rad",
            "sgn",
            "sin",
            "sinh",
            "sort",
            "sort_desc",
            "sqrt",
            "tan",
            "tanh",
            "timestamp",
        ]
    },
    **{
        name: ((_M,), 0, _V)
        for name in [
            "absent_over_time",
            "avg_over_time",
            "changes",
            "count_over_time",
            "delta",
            "deriv",
            "idelta",
            "increase",
            "irate",
            "last_over_time",
            "max_over_time",
            "min_over_time",
            "present_over_time",
            "rate",
            "resets",
            "stddev_over_time",
            "stdvar_over_time",
            "sum_over_time",
        ]
    },
    **{
        name: ((_V,), 1, _V)
        for name in [
            "days_in_month",
            "day_of_month",
            "day_of_week",
            "day_of_year",
            "hour",
            "minute",
            "month",
            "year",
        ]
    },
    "clamp": ((_V, _S, _S), 0, _V),
    "clamp_max": ((_V, _S), 0, _V),
    "clamp_min": ((_V, _S), 0, _V),
    "histogram_quantile": ((_S, _V), 0, _V),
    "holt_winters": ((_M, _S, _S), 0, _V),
    "label_replace": ((_V, _T, _T, _T, _T), 0, _V),
    "label_join": ((_V, _T, _T, _T), -1, _V),
    "pi": ((), 0, _S),
    "predict_linear": ((_M, _S), 0, _V),
    "quantile_over_time": ((_S, _M), 0, _V),
    "round": ((_V, _S), 1, _V),
    "scalar": ((_V,), 0, _S),
    "time": ((), 0, _S),
    "vector": ((_S,), 0, _V),
}
_COMPARISONS = frozenset({"EQLC", "NEQ", "LTE", "LSS", "GTE", "GTR"})
_SET_OPERATORS = frozenset({"LAND", "LOR", "LUNLESS"})


@dataclass(slots=True, eq=False)
class _Node:
    """A node of the syntax tree, with what the grammar's actions and the type checks need."""

    kind: str  # number string vector matrix subquery paren unary binary call aggregate
    start: int
    children: list[_Node] = field(default_factory=list)
    name: str = ""  # metric, function, operator or aggregation
    op_pos: int = 0  # binary: where the operator is
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)
    matcher_pos: list[int] = field(default_factory=list)
    bool_modifier: bool = False
    on: bool = False
    matching: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    card: str = "one-to-one"
    offset: bool = False
    at: bool = False


def _number_problem(text: str) -> str | None:
    """Go's ``strconv.ParseInt(text, 0, 64)`` then ``ParseFloat``: why a NUMBER is no number."""
    if _GO_INT.fullmatch(text):
        return None
    if _GO_FLOAT.fullmatch(text):
        if float(text) in (math.inf, -math.inf) and "inf" not in text.lower():
            return f"strconv.ParseFloat: parsing {_go_quote(text)}: value out of range"
        return None
    return f"strconv.ParseFloat: parsing {_go_quote(text)}: invalid syntax"


def _unquote(text: str) -> str:
    """A string token's value (enough to tell empty from not, and for messages)."""
    if text[:1] == "`":
        return text[1:-1]
    body = text[1:-1]
    try:
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return body


class _Parser:
    def __init__(
        self,
        text: str,
        known_function: Callable[[str], bool],
        regex_problem: Callable[[str], str | None],
    ) -> None:
        self.lexer = _Lexer(text)
        self.known_function = known_function
        self.regex_problem = regex_problem
        self.ahead: Token | None = None
        self.aggregations = 0  # aggregation bodies open: their error rule catches the rest

    def peek(self) -> Token:
        if self.ahead is None:
            self.ahead = self.lexer.next_token()
            if self.ahead.kind == ERROR:
                raise _Found(self.ahead.pos, self.ahead.text)
        return self.ahead

    def take(self) -> Token:
        token = self.peek()
        self.ahead = None
        return token

    def unexpected(self, context: str = "", expected: str = "") -> _Found:
        token = self.peek()
        message = f"unexpected {describe(token)}"
        if not context and self.aggregations:
            context = "aggregation"
        if context:
            message += f" in {context}"
        if expected:
            message += f", expected {expected}"
        return _Found(token.pos, message)

    # start: expr EOF
    def parse(self) -> _Node:
        if self.peek().kind == EOF:
            raise _Found(0, "no expression found in input")
        node = self.expr(0)
        if self.peek().kind != EOF:
            raise self.unexpected()
        return node

    def expr(self, min_precedence: int) -> _Node:
        node = self.unary()
        while True:
            op = self.peek()
            precedence = _PRECEDENCE.get(op.kind)
            if precedence is None or precedence < min_precedence:
                return node
            self.take()
            binary = _Node("binary", node.start, name=op.kind, op_pos=op.pos)
            self.bin_modifiers(binary)
            right = self.expr(precedence if op.kind == "POW" else precedence + 1)
            binary.children = [node, right]
            node = binary

    def bin_modifiers(self, binary: _Node) -> None:
        if self.peek().kind == "BOOL":
            self.take()
            binary.bool_modifier = True
        if self.peek().kind in ("ON", "IGNORING"):
            binary.on = self.take().kind == "ON"
            binary.matching = self.grouping_labels()
            if self.peek().kind in ("GROUP_LEFT", "GROUP_RIGHT"):
                group = self.take().kind
                binary.card = "many-to-one" if group == "GROUP_LEFT" else "one-to-many"
                if self.peek().kind == "LEFT_PAREN":
                    binary.include = self.grouping_labels()

    def unary(self) -> _Node:
        token = self.peek()
        if token.kind in ("ADD", "SUB"):
            self.take()
            # unary binds like * (tighter than + -, looser than ^ and the postfixes)
            operand = self.expr(_PRECEDENCE["POW"])
            if operand.kind == "number":
                operand.start = token.pos
                return operand
            return _Node("unary", token.pos, [operand], name=token.kind)
        return self.postfix(self.primary())

    def primary(self) -> _Node:
        token = self.peek()
        kind = token.kind
        if kind == NUMBER:
            self.take()
            problem = _number_problem(token.text)
            if problem is not None:
                raise _Found(token.pos, f"error parsing number: {problem}")
            return _Node("number", token.pos)
        if kind == STRING:
            self.take()
            return _Node("string", token.pos)
        if kind == "LEFT_PAREN":
            self.take()
            inner = self.expr(0)
            if self.peek().kind != "RIGHT_PAREN":
                raise self.unexpected()
            self.take()
            return _Node("paren", token.pos, [inner])
        if kind == "LEFT_BRACE":
            node = _Node("vector", token.pos)
            self.label_matchers(node)
            return node
        if kind in _AGGREGATOR_TYPES:
            self.take()
            if self.peek().kind in ("BY", "WITHOUT", "LEFT_PAREN"):
                return self.aggregation(token)
            return self.after_metric_name(token)
        if kind == IDENTIFIER:
            self.take()
            if self.peek().kind == "LEFT_PAREN":
                args = self.call_body()
                if not self.known_function(token.text):
                    raise _Found(token.pos, f"unknown function with name {_go_quote(token.text)}")
                return _Node("call", token.pos, args, name=token.text)
            return self.after_metric_name(token)
        if kind in _METRIC_WORDS:
            self.take()
            return self.after_metric_name(token)
        raise self.unexpected()

    def after_metric_name(self, name: Token) -> _Node:
        node = _Node("vector", name.pos, name=name.text)
        if self.peek().kind == "LEFT_BRACE":
            self.label_matchers(node)
        return node

    def aggregation(self, op: Token) -> _Node:
        self.aggregations += 1
        modifier = False
        if self.peek().kind in ("BY", "WITHOUT"):
            self.take()
            self.grouping_labels()
            modifier = True
        if self.peek().kind != "LEFT_PAREN":
            raise self.unexpected("aggregation")
        args = self.call_body()
        self.aggregations -= 1
        if not modifier and self.peek().kind in ("BY", "WITHOUT"):
            self.take()
            self.grouping_labels()
        wanted = 2 if op.kind in ("TOPK", "BOTTOMK", "COUNT_VALUES", "QUANTILE") else 1
        if not args:
            raise _Found(op.pos, "no arguments for aggregate expression provided")
        if len(args) != wanted:
            raise _Found(
                op.pos,
                "wrong number of arguments for aggregate expression provided, "
                f"expected {wanted}, got {len(args)}",
            )
        return _Node("aggregate", op.pos, args, name=op.kind)

    def call_body(self) -> list[_Node]:
        self.take()  # (
        args: list[_Node] = []
        if self.peek().kind == "RIGHT_PAREN":
            self.take()
            return args
        while True:
            args.append(self.expr(0))
            token = self.peek()
            if token.kind == "RIGHT_PAREN":
                self.take()
                return args
            if token.kind != "COMMA":
                raise self.unexpected()
            self.take()
            if self.peek().kind == "RIGHT_PAREN":
                raise _Found(token.pos, "trailing commas not allowed in function call args")

    def grouping_labels(self) -> list[str]:
        if self.peek().kind != "LEFT_PAREN":
            raise self.unexpected("grouping opts", '"("')
        self.take()
        labels: list[str] = []
        if self.peek().kind == "RIGHT_PAREN":
            self.take()
            return labels
        while True:
            label = self.peek()
            if label.kind not in _LABEL_WORDS:
                raise self.unexpected("grouping opts", "label")
            self.take()
            if not _LABEL_NAME.fullmatch(label.text):
                raise _Found(
                    label.pos, f"unexpected {describe(label)} in grouping opts, expected label"
                )
            labels.append(label.text)
            following = self.peek().kind
            if following == "RIGHT_PAREN":
                self.take()
                return labels
            if following != "COMMA":
                raise self.unexpected("grouping opts", '"," or ")"')
            self.take()
            if self.peek().kind == "RIGHT_PAREN":
                self.take()
                return labels

    def label_matchers(self, node: _Node) -> None:
        self.take()  # {
        if self.peek().kind == "RIGHT_BRACE":
            self.take()
            return
        while True:
            label = self.peek()
            if label.kind != IDENTIFIER:
                raise self.unexpected("label matching", 'identifier or "}"')
            self.take()
            if self.peek().kind not in _MATCH_OPS:
                raise self.unexpected("label matching", "label matching operator")
            op = self.take()
            if self.peek().kind != STRING:
                raise self.unexpected("label matching", "string")
            value = self.take()
            pattern = _unquote(value.text)
            if op.kind in ("EQL_REGEX", "NEQ_REGEX"):
                problem = self.regex_problem(pattern)
                if problem is not None:
                    raise _Found(label.pos, problem)
            node.matchers.append((label.text, op.kind, pattern))
            node.matcher_pos.append(label.pos)
            following = self.peek().kind
            if following == "RIGHT_BRACE":
                self.take()
                return
            if following != "COMMA":
                raise self.unexpected("label matching", '"," or "}"')
            self.take()
            if self.peek().kind == "RIGHT_BRACE":
                self.take()
                return

    def duration(self) -> None:
        token = self.take()
        match = _DURATION.fullmatch(token.text)
        if match is None or not any(match.groups()):
            raise _Found(token.pos, f"not a valid duration string: {_go_quote(token.text)}")
        if all(int(g or 0) == 0 for g in match.groups()):
            raise _Found(token.pos, "duration must be greater than 0")

    def modify(self, node: _Node, what: str) -> None:
        """The grammar's addOffset / setTimestamp checks."""
        if node.kind not in ("vector", "matrix", "subquery"):
            raise _Found(node.start, f"{what} modifier must be preceded by {_MODIFIABLE}")
        if what == "offset":
            if node.offset:
                raise _Found(node.start, "offset may not be set multiple times")
            node.offset = True
        else:
            if node.at:
                raise _Found(node.start, "@ <timestamp> may not be set multiple times")
            node.at = True

    def postfix(self, node: _Node) -> _Node:
        while True:
            token = self.peek()
            if token.kind == "LEFT_BRACKET":
                self.take()
                if self.peek().kind != DURATION:
                    raise self.unexpected("subquery selector", "duration")
                self.duration()
                following = self.peek().kind
                if following == "RIGHT_BRACKET":
                    self.take()
                    problem = None
                    if node.kind != "vector":
                        problem = "ranges only allowed for vector selectors"
                    elif node.offset:
                        problem = "no offset modifiers allowed before range"
                    elif node.at:
                        problem = "no @ modifiers allowed before range"
                    if problem:
                        raise _Found(token.pos, problem)
                    node = _Node("matrix", node.start, [node])
                    continue
                if following == "COLON":
                    self.take()
                    if self.peek().kind == DURATION:
                        self.duration()
                        if self.peek().kind != "RIGHT_BRACKET":
                            raise self.unexpected("subquery selector", '"]"')
                    elif self.peek().kind != "RIGHT_BRACKET":
                        raise self.unexpected("subquery selector", 'duration or "]"')
                    self.take()
                    node = _Node("subquery", node.start, [node])
                    continue
                raise self.unexpected("subquery or range", '":" or "]"')
            if token.kind == "OFFSET":
                self.take()
                if self.peek().kind == "SUB":
                    self.take()
                if self.peek().kind != DURATION:
                    raise self.unexpected("offset", "duration")
                self.duration()
                self.modify(node, "offset")
            elif token.kind == "AT":
                self.take()
                following = self.peek().kind
                if following in ("ADD", "SUB"):
                    self.take()
                    following = self.peek().kind
                    if following != NUMBER:
                        raise self.unexpected("@", "timestamp")
                    self.take()
                elif following == NUMBER:
                    self.take()
                elif following in ("START", "END"):
                    self.take()
                    if self.peek().kind != "LEFT_PAREN":
                        raise self.unexpected("@", "timestamp")
                    self.take()
                    if self.peek().kind != "RIGHT_PAREN":
                        raise self.unexpected("@", "timestamp")
                    self.take()
                else:
                    raise self.unexpected("@", "timestamp")
                self.modify(node, "@")
            else:
                return node


# --- the type checks (Prometheus's checkAST, run when the syntax is fine) -----------------------


def _type(node: _Node) -> str:
    kind = node.kind
    if kind == "number":
        return SCALAR
    if kind == "string":
        return STRING_TYPE
    if kind == "vector" or kind == "aggregate":
        return VECTOR_TYPE
    if kind in ("matrix", "subquery"):
        return MATRIX_TYPE
    if kind in ("paren", "unary"):
        return _type(node.children[0])
    if kind == "binary":
        both_scalar = all(_type(c) == SCALAR for c in node.children)
        return SCALAR if both_scalar else VECTOR_TYPE
    spec = _FUNCTIONS.get(node.name)
    return spec[2] if spec else VECTOR_TYPE


def _op_text(kind: str) -> str:
    return _OPERATORS.get(kind, kind.lower())


class _TypeCheck:
    def expect(self, node: _Node, want: str, context: str) -> None:
        got = self.check(node)
        if got != want:
            raise _Found(
                node.start,
                f"expected type {_DOCUMENTED[want]} in {context}, got {_DOCUMENTED[got]}",
            )

    def check(self, node: _Node) -> str:
        kind = node.kind
        if kind == "aggregate":
            param, expr = node.children if len(node.children) == 2 else (None, node.children[0])
            self.expect(expr, VECTOR_TYPE, "aggregation expression")
            if node.name in ("TOPK", "BOTTOMK", "QUANTILE"):
                self.expect(param, SCALAR, "aggregation parameter")
            elif node.name == "COUNT_VALUES":
                self.expect(param, STRING_TYPE, "aggregation parameter")
        elif kind == "binary":
            self.binary(node)
        elif kind == "call":
            self.call(node)
        elif kind == "paren":
            self.check(node.children[0])
        elif kind == "unary":
            got = self.check(node.children[0])
            if got not in (SCALAR, VECTOR_TYPE):
                raise _Found(
                    node.start,
                    "unary expression only allowed on expressions of type scalar or instant "
                    f"vector, got {_go_quote(_DOCUMENTED[got])}",
                )
        elif kind == "subquery":
            got = self.check(node.children[0])
            if got != VECTOR_TYPE:
                raise _Found(
                    node.start, f"subquery is only allowed on instant vector, got {got} instead"
                )
        elif kind == "matrix":
            self.check(node.children[0])
        elif kind == "vector":
            self.vector(node)
        return _type(node)

    def vector(self, node: _Node) -> None:
        if node.name:
            for label, _, value in node.matchers:
                if label == "__name__":
                    raise _Found(
                        node.start,
                        "metric name must not be set twice: "
                        f"{_go_quote(node.name)} or {_go_quote(value)}",
                    )
            return
        if not any(_rejects_empty(op, value) for _, op, value in node.matchers):
            raise _Found(node.start, "vector selector must contain at least one non-empty matcher")

    def binary(self, node: _Node) -> None:
        left, right = node.children
        lt, rt = self.check(left), self.check(right)
        op = node.name
        if node.bool_modifier and op not in _COMPARISONS:
            raise _Found(node.op_pos, "bool modifier can only be used on comparison operators")
        if op in _COMPARISONS and not node.bool_modifier and lt == rt == SCALAR:
            raise _Found(node.op_pos, "comparisons between scalars must use BOOL modifier")
        card = node.card
        if op in _SET_OPERATORS and card == "one-to-one":
            card = "many-to-many"
        if node.on:
            for label in node.matching:
                if label in node.include:
                    raise _Found(
                        node.op_pos,
                        f"label {_go_quote(label)} must not occur in ON and GROUP clause at once",
                    )
        if lt not in (SCALAR, VECTOR_TYPE):
            raise _Found(
                left.start, "binary expression must contain only scalar and instant vector types"
            )
        if rt not in (SCALAR, VECTOR_TYPE):
            raise _Found(
                right.start, "binary expression must contain only scalar and instant vector types"
            )
        if lt != VECTOR_TYPE or rt != VECTOR_TYPE:
            if node.matching:
                raise _Found(node.start, "vector matching only allowed between instant vectors")
        elif op in _SET_OPERATORS and card in ("one-to-many", "many-to-one"):
            raise _Found(node.start, f"no grouping allowed for {_go_quote(_op_text(op))} operation")
        if (lt == SCALAR or rt == SCALAR) and op in _SET_OPERATORS:
            raise _Found(
                node.start,
                f"set operator {_go_quote(_op_text(op))} not allowed in binary scalar expression",
            )

    def call(self, node: _Node) -> None:
        spec = _FUNCTIONS.get(node.name)
        if spec is None:  # a function Canopy knows and this table does not: no checks
            for arg in node.children:
                self.check(arg)
            return
        arg_types, optional, _ = spec
        n, given = len(arg_types), len(node.children)
        name = _go_quote(node.name)
        if optional == 0:
            if n != given:
                raise _Found(node.start, f"expected {n} argument(s) in call to {name}, got {given}")
        else:
            fewest = n - 1
            if fewest > given:
                raise _Found(
                    node.start,
                    f"expected at least {fewest} argument(s) in call to {name}, got {given}",
                )
            if optional > 0 and fewest + optional < given:
                raise _Found(
                    node.start,
                    f"expected at most {fewest + optional} argument(s) in call to {name}, "
                    f"got {given}",
                )
        for i, arg in enumerate(node.children):
            if i >= n:
                if optional == 0:
                    continue
                i = n - 1
            self.expect(arg, arg_types[i], f"call to function {name}")


def _rejects_empty(op: str, value: str) -> bool:
    """Whether a matcher refuses the empty string (so the selector is not "everything")."""
    if op == "EQL":
        return value != ""
    if op == "NEQ":
        return value == ""
    try:
        matches_empty = re.fullmatch(value, "") is not None
    except re.error:
        return True  # Prometheus refused the regex earlier
    return not matches_empty if op == "EQL_REGEX" else matches_empty


def syntax_error(
    query: str,
    known_function: Callable[[str], bool],
    regex_problem: Callable[[str], str | None] = lambda pattern: None,
) -> tuple[int, str] | None:
    """``(character offset, message)`` of the first error Prometheus would report in ``query``
    (syntax first, then its type checks), or ``None`` when this walk finds none.
    ``known_function(name)`` says whether a function exists, ``regex_problem(pattern)`` why a
    regex does not compile (``None`` if it does)."""
    try:
        tree = _Parser(query, known_function, regex_problem).parse()
        _TypeCheck().check(tree)
    except _Found as found:
        return found.pos, found.message
    except RecursionError:
        return None
    return None
