"""Alert label and annotation templates: the part of Go's ``text/template`` that Prometheus's
alert templates use, with Prometheus's template functions.

Covered: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming and ``{{/* comments */}}``;
pipelines (``a | f b``), parenthesised pipelines, variables (``$labels``, ``$value``,
``$externalLabels``, ``$externalURL``, ``$`` and ``$x := …`` / ``$x = …``), fields
(``.Labels.job``, ``$labels.job``), string (``"…"``, raw `` `…` ``), number, ``true``/
``false``/``nil`` literals; ``if``/``else if``/``else``/``with``/``range`` (over lists and
maps, with ``$k, $v :=``)/``end``; Go's built-ins ``and or not len index print printf println
eq ne lt le gt ge html js urlquery``; Prometheus's ``humanize humanize1024 humanizeDuration
humanizePercentage humanizeTimestamp toTime title toUpper toLower match reReplaceAll
stripPort stripDomain parseDuration args safeHtml first label value sortByLabel strvalue
query`` (``query`` only where the caller gives a way to run one). ``graphLink``,
``tableLink``, ``tmpl``, ``pathPrefix`` give empty strings (no console templates), as the
alert-generator specification allows. Not covered: ``define``/``template``/``block``,
``break``/``continue``, method calls on Go values.

Parse errors (what ``promtool check rules`` reports) raise :class:`TemplateError` from
:func:`template_parse`; execution errors raise it from :meth:`Template.render`, and the
rule evaluator then uses Prometheus's ``<error expanding template: …>`` text.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.rules.durations import DurationError, duration_parse


class TemplateError(ValueError):
    pass


# --- Go's formatting of values ------------------------------------------------------------


def go_float(v: float) -> str:
    """``fmt.Sprint(float64)``: shortest digits, exponent form below 1e-4 and from 1e21."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    sci = np.format_float_scientific(abs(v), unique=True, trim="-")
    mantissa, exp_text = sci.split("e")
    exp = int(exp_text)
    digits = mantissa.replace(".", "")
    sign = "-" if v < 0 else ""
    if exp < -4 or exp >= 21:
        frac = digits[1:]
        return (
            f"{sign}{digits[0]}{'.' + frac if frac else ''}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
        )
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[: exp + 1]}.{digits[exp + 1 :]}"


def go_g(v: float, precision: int) -> str:
    """``fmt.Sprintf("%.<p>g", v)``."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"%.{precision}g" % v


def go_time(t: dt.datetime) -> str:
    """``time.Time.String()`` in UTC: ``2006-01-02 15:04:05.999999999 +0000 UTC``."""
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + " +0000 UTC"


def go_str(v: Any) -> str:
    """``fmt.Sprint`` of a template value."""
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, dt.datetime):
        return go_time(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_str(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise TemplateError("expected a number")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise TemplateError(f'strconv.ParseFloat: parsing "{v}": invalid syntax') from None
    raise TemplateError(f"can't convert {go_str(v)} to float")


# --- Prometheus's template functions --------------------------------------------------------

_SI = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SI_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")


def humanize(value: Any) -> str:
    v = _to_float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_g(v, 4)
    prefix = ""
    if abs(v) >= 1:
        for p in _SI:
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in _SI_SMALL:
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return go_g(v, 4) + prefix


def humanize1024(value: Any) -> str:
    v = _to_float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return go_g(v, 4)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return go_g(v, 4) + prefix


def humanize_duration(value: Any) -> str:
    v = _to_float(value)
    if math.isnan(v) or math.isinf(v):
        return go_g(v, 4)
    if v == 0:
        return go_g(v, 4) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        whole = int(v)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_g(v, 4)}s"
    prefix = ""
    for p in _SI_SMALL:
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{go_g(v, 4)}{prefix}s"


def humanize_percentage(value: Any) -> str:
    return go_g(_to_float(value) * 100, 4) + "%"


def _time_of(value: Any) -> dt.datetime:
    v = _to_float(value)
    return dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(seconds=v)


def humanize_timestamp(value: Any) -> str:
    v = _to_float(value)
    if math.isnan(v) or math.isinf(v):
        return go_g(v, 4)
    return go_time(_time_of(v))


def to_time(value: Any) -> dt.datetime:
    v = _to_float(value)
    if math.isnan(v) or math.isinf(v):
        raise TemplateError(f"cannot convert {go_float(v)} to Time")
    return _time_of(v)


def _go_replacement(repl: str) -> Callable[[re.Match], str]:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``$$``."""
    token = re.compile(r"\$(\$|\{(\w+)\}|(\w+))")

    def expand(m: re.Match) -> str:
        def one(t: re.Match) -> str:
            if t.group(1) == "$":
                return "$"
            name = t.group(2) or t.group(3)
            try:
                got = m.group(int(name)) if name.isdigit() else m.group(name)
            except (IndexError, re.error, KeyError):
                got = ""
            return got or ""

        return token.sub(one, repl)

    return expand


def re_replace_all(pattern: str, repl: str, text: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise TemplateError(f"error parsing regexp: {exc}") from None
    return compiled.sub(_go_replacement(repl), text)


def match(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error as exc:
        raise TemplateError(f"error parsing regexp: {exc}") from None


def strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def strip_domain(host: str) -> str:
    port = ""
    if host.count(":") == 1 and not host.startswith("["):
        host, port = host.split(":", 1)
        port = ":" + port
    if re.fullmatch(r"[0-9.]+", host) or ":" in host:
        return host + port
    return host.split(".", 1)[0] + port


def parse_duration(text: str) -> float:
    try:
        return duration_parse(text) / 1000
    except DurationError as exc:
        raise TemplateError(str(exc)) from None


def title(text: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), text)


@dataclass
class Sample:
    """An element of a ``query`` result: ``.Labels``, ``.Value``."""

    Labels: dict[str, str]
    Value: float


def first(result: list) -> Sample:
    if not result:
        raise TemplateError("first() called on vector with no elements")
    return result[0]


def label(name: str, sample: Sample) -> str:
    return sample.Labels.get(name, "")


def sample_value(sample: Sample) -> float:
    return sample.Value


def sort_by_label(name: str, result: list) -> list:
    return sorted(result, key=lambda s: s.Labels.get(name, ""))


def strvalue(sample: Sample) -> str:
    return sample.Labels.get("__value__", "")


def args(*values: Any) -> dict[str, Any]:
    return {f"arg{i}": v for i, v in enumerate(values)}


def _go_printf(fmt: str, *values: Any) -> str:
    out, i, k = [], 0, 0
    verb = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")
    for m in verb.finditer(fmt):
        out.append(fmt[i : m.start()])
        i = m.end()
        flags, width, prec, conv = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        if conv == "%":
            out.append("%")
            continue
        if k >= len(values):
            out.append(f"%!{conv}(MISSING)")
            continue
        v = values[k]
        k += 1
        spec = "%" + flags + width + (f".{prec}" if prec is not None else "")
        try:
            if conv in "dboxX" and not isinstance(v, bool):
                if conv == "b":
                    text = format(int(v), "b")
                    out.append(text.rjust(int(width or 0)))
                else:
                    out.append((spec + conv) % int(v))
            elif conv in "eEfFgG":
                fv = _to_float(v)
                out.append(
                    go_g(fv, int(prec))
                    if conv == "g" and prec is not None and not flags
                    else ((spec + conv) % fv)
                    if math.isfinite(fv)
                    else go_float(fv)
                )
            elif conv == "q":
                out.append('"' + go_str(v).replace("\\", "\\\\").replace('"', '\\"') + '"')
            elif conv == "t":
                out.append(go_str(bool(v)))
            else:  # s, v and anything else: the value's default form
                out.append((spec + "s") % go_str(v))
        except (TypeError, ValueError):
            out.append(f"%!{conv}({go_str(v)})")
    out.append(fmt[i:])
    if k < len(values):
        out.append("%!(EXTRA " + ", ".join(go_str(v) for v in values[k:]) + ")")
    return "".join(out)


def _truth(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | list | tuple | dict):
        return len(v) > 0
    return True


def _compare(op: str) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        for b in others:
            if isinstance(a, int | float) and isinstance(b, int | float):
                pass
            elif type(a) is not type(b):
                raise TemplateError(f"incompatible types for comparison: {go_str(a)}, {go_str(b)}")
            ok = {
                "eq": a == b,
                "ne": a != b,
                "lt": a < b,
                "le": a <= b,
                "gt": a > b,
                "ge": a >= b,
            }[op]
            if op == "eq":
                if ok:
                    return True
                continue
            return ok
        return False

    return compare


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            item = item.get(key) if isinstance(item, dict) else item[int(key)]
        except (IndexError, ValueError, TypeError):
            raise TemplateError(f"error calling index: index out of range: {key}") from None
    return item


def _empty(*_: Any) -> str:
    return ""


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's built-ins ("and"/"or" are evaluated lazily by the executor)
    "and": lambda *a: a[-1],
    "or": lambda *a: a[-1],
    "not": lambda a: not _truth(a),
    "len": lambda a: len(a),
    "index": _index,
    "print": lambda *a: "".join(go_str(x) for x in a),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "printf": _go_printf,
    "html": lambda *a: html.escape("".join(go_str(x) for x in a)),
    "js": lambda *a: "".join(go_str(x) for x in a).replace("'", "\\'").replace('"', '\\"'),
    "urlquery": lambda *a: urllib.parse.quote_plus("".join(go_str(x) for x in a)),
    "eq": _compare("eq"),
    "ne": _compare("ne"),
    "lt": _compare("lt"),
    "le": _compare("le"),
    "gt": _compare("gt"),
    "ge": _compare("ge"),
    # Prometheus's
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
    "humanizeTimestamp": humanize_timestamp,
    "toTime": to_time,
    "title": title,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "match": match,
    "reReplaceAll": re_replace_all,
    "stripPort": strip_port,
    "stripDomain": strip_domain,
    "parseDuration": parse_duration,
    "args": args,
    "safeHtml": lambda s: s,
    "first": first,
    "label": label,
    "value": sample_value,
    "sortByLabel": sort_by_label,
    "strvalue": strvalue,
    "graphLink": _empty,
    "tableLink": _empty,
    "tmpl": _empty,
    "pathPrefix": _empty,
    "externalURL": _empty,
    "query": None,  # bound per render (needs the tenant's data)
}

# --- lexing and parsing -----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\]|\\.)')
    | (?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
    | (?P<decl>:=)
    | (?P<assign>=)
    | (?P<pipe>\|)
    | (?P<lpar>\()
    | (?P<rpar>\))
    | (?P<comma>,)
    | (?P<var>\$\w*(?:\.\w+)*)
    | (?P<field>(?:\.\w+)+|\.)
    | (?P<ident>[A-Za-z_]\w*(?:\.\w+)*)
    )""",
    re.VERBOSE,
)


@dataclass
class Token:
    kind: str
    text: str


def _lex_action(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].strip()[:1]
            raise TemplateError(f"unexpected {bad!r} in command")
        kind = m.lastgroup
        assert kind is not None
        tokens.append(Token(kind, m.group(kind)))
        pos = m.end()
    return tokens


@dataclass
class Node:
    pass


@dataclass
class TextNode(Node):
    text: str


@dataclass
class Operand:
    kind: str  # literal | var | field | func | pipe
    value: Any
    path: tuple[str, ...] = ()


@dataclass
class Command:
    operands: list[Operand]


@dataclass
class Pipeline:
    commands: list[Command]
    decl: list[str] = field(default_factory=list)
    assign: bool = False  # "=" rather than ":="


@dataclass
class ActionNode(Node):
    pipe: Pipeline


@dataclass
class BranchNode(Node):
    kind: str  # if | with | range
    pipe: Pipeline
    body: list[Node]
    else_body: list[Node] | None


class _Parser:
    def __init__(self, source: str, functions: set[str]) -> None:
        self.source = source
        self.functions = functions
        self.items = self._split(source)
        self.pos = 0
        self.scopes: list[set[str]] = [{"$"}]

    @staticmethod
    def _split(source: str) -> list[tuple[str, str]]:
        """[("text", …) | ("action", …)], with trim markers applied."""
        items: list[tuple[str, str]] = []
        pos = 0
        while True:
            start = source.find("{{", pos)
            if start < 0:
                items.append(("text", source[pos:]))
                return items
            text = source[pos:start]
            inner_start = start + 2
            if (
                source.startswith("- ", inner_start)
                or source.startswith("-\t", inner_start)
                or (source.startswith("-\n", inner_start))
            ):
                text = text.rstrip()
                inner_start += 1
            if source.startswith("/*", inner_start.__index__()) or source[inner_start:].lstrip(
                " \t\n"
            ).startswith("/*"):
                close = source.find("*/", inner_start)
                if close < 0:
                    raise TemplateError("unclosed comment")
                end = source.find("}}", close)
                if end < 0:
                    raise TemplateError("unclosed action")
                items.append(("text", text))
                trail = source[close + 2 : end].strip()
                pos = end + 2
                if trail == "-":
                    rest = source[pos:]
                    pos += len(rest) - len(rest.lstrip())
                elif trail:
                    raise TemplateError("comment ends before closing delimiter")
                continue
            end = _action_end(source, inner_start)
            inner = source[inner_start:end]
            pos = end + 2
            if inner.endswith(" -") or inner.endswith("\t-") or inner.endswith("\n-"):
                inner = inner[:-1]
                rest = source[pos:]
                pos += len(rest) - len(rest.lstrip())
            items.append(("text", text))
            items.append(("action", inner))

    def parse(self) -> list[Node]:
        nodes, stop = self._list()
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop}}}}}")
        return nodes

    def _list(self) -> tuple[list[Node], str | None]:
        nodes: list[Node] = []
        while self.pos < len(self.items):
            kind, text = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                if text:
                    nodes.append(TextNode(text))
                continue
            tokens = _lex_action(text)
            if not tokens:
                raise TemplateError("missing value for command")
            head = tokens[0]
            if head.kind == "ident" and head.text in ("end", "else"):
                if head.text == "end" and len(tokens) > 1:
                    raise TemplateError("unexpected tokens after end")
                self.pos -= 1
                return nodes, head.text
            if head.kind == "ident" and head.text in ("if", "with", "range"):
                nodes.append(self._branch(head.text, tokens[1:]))
                continue
            if head.kind == "ident" and head.text in ("define", "template", "block"):
                raise TemplateError(f'"{head.text}" is not supported in alert templates')
            if head.kind == "ident" and head.text in ("break", "continue"):
                raise TemplateError(f"{{{{{head.text}}}}} outside {{{{range}}}}")
            nodes.append(ActionNode(self._pipeline(tokens, allow_decl=True)))
        return nodes, None

    def _branch(self, kind: str, tokens: list[Token]) -> BranchNode:
        self.scopes.append(set())
        pipe = self._pipeline(tokens, allow_decl=True, range_decl=kind == "range")
        body, stop = self._list()
        else_body = None
        if stop is None:
            raise TemplateError(f"unexpected EOF: missing {{{{end}}}} for {kind}")
        _, text = self.items[self.pos]
        self.pos += 1
        if stop == "else":
            rest = _lex_action(text)[1:]
            self.scopes[-1] = set()
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
                # {{else if …}} is {{else}}{{if …}}…{{end}}{{end}} sharing the one {{end}}
                inner = self._branch(rest[0].text, rest[1:])
                self.scopes.pop()
                return BranchNode(kind, pipe, body, [inner])
            if rest:
                raise TemplateError("unexpected tokens after else")
            else_body, stop = self._list()
            if stop != "end":
                raise TemplateError(f"expected end; found {stop or 'EOF'}")
            self.pos += 1
        self.scopes.pop()
        return BranchNode(kind, pipe, body, else_body)

    def _declared(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    def _pipeline(
        self, tokens: list[Token], *, allow_decl: bool, range_decl: bool = False
    ) -> Pipeline:
        decl: list[str] = []
        assign = False
        if allow_decl and tokens and tokens[0].kind == "var":
            names = [tokens[0].text]
            i = 1
            if range_decl and len(tokens) > 3 and tokens[1].kind == "comma":
                names.append(tokens[2].text)
                i = 3
            if i < len(tokens) and tokens[i].kind in ("decl", "assign"):
                assign = tokens[i].kind == "assign"
                decl, tokens = names, tokens[i + 1 :]
        pipe = Pipeline([], decl, assign)
        cmd: list[Operand] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            i += 1
            if tok.kind == "pipe":
                if not cmd:
                    raise TemplateError("missing command before |")
                pipe.commands.append(Command(cmd))
                cmd = []
                continue
            if tok.kind == "lpar":
                depth, j = 1, i
                while j < len(tokens) and depth:
                    depth += {"lpar": 1, "rpar": -1}.get(tokens[j].kind, 0)
                    j += 1
                if depth:
                    raise TemplateError("unclosed left paren")
                inner = self._pipeline(tokens[i : j - 1], allow_decl=False)
                path: tuple[str, ...] = ()
                cmd.append(Operand("pipe", inner, path))
                i = j
                continue
            if tok.kind in ("rpar", "comma", "decl", "assign"):
                raise TemplateError(f"unexpected {tok.text!r} in operand")
            cmd.append(self._operand(tok))
        if cmd:
            pipe.commands.append(Command(cmd))
        elif pipe.commands:
            raise TemplateError("missing command after |")
        if not pipe.commands:
            raise TemplateError("missing value for command")
        for name in decl:
            if assign and not self._declared(name):
                raise TemplateError(f"undefined variable: {name}")
            self.scopes[-1].add(name)
        return pipe

    def _operand(self, tok: Token) -> Operand:
        if tok.kind == "str":
            try:
                return Operand("literal", _unquote(tok.text))
            except ValueError:
                raise TemplateError(f"invalid syntax: {tok.text}") from None
        if tok.kind == "raw":
            return Operand("literal", tok.text[1:-1])
        if tok.kind == "char":
            return Operand("literal", ord(_unquote('"' + tok.text[1:-1] + '"')))
        if tok.kind == "num":
            text = tok.text.replace("_", "")
            try:
                number: int | float = int(text, 0)
            except ValueError:
                number = float(text)
            return Operand("literal", number)
        if tok.kind == "var":
            name, *path = tok.text.split(".")
            if not self._declared(name):
                raise TemplateError(f"undefined variable: {name}")
            return Operand("var", name, tuple(path))
        if tok.kind == "field":
            return Operand("field", None, tuple(p for p in tok.text.split(".") if p))
        # ident
        if tok.text in ("true", "false"):
            return Operand("literal", tok.text == "true")
        if tok.text == "nil":
            return Operand("literal", None)
        if "." in tok.text:
            raise TemplateError(f'function "{tok.text}" not defined')
        if tok.text not in self.functions:
            raise TemplateError(f'function "{tok.text}" not defined')
        return Operand("func", tok.text)


def _action_end(source: str, pos: int) -> int:
    """The position of the ``}}`` closing the action at ``pos`` (not one inside a string)."""
    i = pos
    while i < len(source):
        c = source[i]
        if c in "\"'":
            j = i + 1
            while j < len(source) and source[j] != c:
                if source[j] == "\n":
                    raise TemplateError("unterminated quoted string")
                j += 2 if source[j] == "\\" else 1
            i = j + 1
            continue
        if c == "`":
            j = source.find("`", i + 1)
            if j < 0:
                raise TemplateError("unterminated raw quoted string")
            i = j + 1
            continue
        if source.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("unclosed action")


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
               "b": "\b", "f": "\f", "v": "\v", "0": "\0"}  # fmt: skip
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[nxt]
            out.append(chr(int(body[i + 2 : i + 2 + size], 16)))
            i += 2 + size
        elif nxt in escapes:
            out.append(escapes[nxt])
            i += 2
        else:
            raise ValueError(text)
    return "".join(out)


# --- execution --------------------------------------------------------------------------------

_PRELUDE_VARS = ("$labels", "$externalLabels", "$externalURL", "$value")
MAX_OUTPUT = 64 * 1024  # bytes a label or annotation template may produce
MAX_RANGE = 10_000


@dataclass
class Template:
    name: str
    nodes: list[Node]

    def render(
        self,
        *,
        labels: dict[str, str],
        value: float,
        external_labels: dict[str, str] | None = None,
        external_url: str = "",
        query: Callable[[str], list[Sample]] | None = None,
    ) -> str:
        data = {
            "Labels": labels,
            "ExternalLabels": external_labels or {},
            "ExternalURL": external_url,
            "Value": value,
        }
        env = {
            "$": data,
            "$labels": labels,
            "$externalLabels": external_labels or {},
            "$externalURL": external_url,
            "$value": value,
        }
        funcs = dict(FUNCTIONS)
        funcs["externalURL"] = lambda: external_url

        def run_query(q: str) -> list[Sample]:
            if query is None:
                raise TemplateError("query is not available here")
            return query(q)

        funcs["query"] = run_query
        out: list[str] = []
        _Executor(funcs, out).run(self.nodes, data, [env])
        text = "".join(out)
        if len(text) > MAX_OUTPUT:
            raise TemplateError(f"template output longer than {MAX_OUTPUT} bytes")
        return text


class _Executor:
    def __init__(self, funcs: dict[str, Callable[..., Any]], out: list[str]) -> None:
        self.funcs = funcs
        self.out = out

    def run(self, nodes: list[Node], dot: Any, scopes: list[dict[str, Any]]) -> None:
        for node in nodes:
            if isinstance(node, TextNode):
                self.out.append(node.text)
            elif isinstance(node, ActionNode):
                value = self.pipeline(node.pipe, dot, scopes)
                if not node.pipe.decl:
                    self.out.append(go_str(value))
            elif isinstance(node, BranchNode):
                self.branch(node, dot, scopes)

    def branch(self, node: BranchNode, dot: Any, scopes: list[dict[str, Any]]) -> None:
        inner = [*scopes, {}]
        if node.kind == "range":
            value = self.pipeline(node.pipe, dot, inner, declare=False)
            if isinstance(value, dict):
                items = [(k, value[k]) for k in sorted(value)]
            elif isinstance(value, list | tuple):
                items = list(enumerate(value))
            elif value is None:
                items = []
            else:
                raise TemplateError(f"range can't iterate over {go_str(value)}")
            if len(items) > MAX_RANGE:
                raise TemplateError("range over too many elements")
            for key, elem in items:
                scope = {}
                if len(node.pipe.decl) == 2:
                    scope = {node.pipe.decl[0]: key, node.pipe.decl[1]: elem}
                elif node.pipe.decl:
                    scope = {node.pipe.decl[0]: elem}
                self.run(node.body, elem, [*scopes, scope])
            if not items and node.else_body is not None:
                self.run(node.else_body, dot, scopes)
            return
        value = self.pipeline(node.pipe, dot, inner)
        if _truth(value):
            self.run(node.body, value if node.kind == "with" else dot, inner)
        elif node.else_body is not None:
            self.run(node.else_body, dot, [*scopes, {}])

    def pipeline(
        self, pipe: Pipeline, dot: Any, scopes: list[dict[str, Any]], declare: bool = True
    ) -> Any:
        value: Any = _NO_VALUE
        for cmd in pipe.commands:
            value = self.command(cmd, dot, scopes, value)
        if pipe.decl and declare:
            for name in pipe.decl:
                if pipe.assign:
                    for scope in reversed(scopes):
                        if name in scope:
                            scope[name] = value
                            break
                else:
                    scopes[-1][name] = value
        return value

    def command(self, cmd: Command, dot: Any, scopes: list[dict[str, Any]], piped: Any) -> Any:
        head, rest = cmd.operands[0], cmd.operands[1:]
        if head.kind == "func":
            name = head.value
            if name in ("and", "or"):
                operands = [*rest]
                value: Any = None
                for i, op in enumerate(operands):
                    value = self.operand(op, dot, scopes)
                    last = i == len(operands) - 1 and piped is _NO_VALUE
                    if (name == "and" and not _truth(value)) or (name == "or" and _truth(value)):
                        return value
                    if last:
                        return value
                return piped if piped is not _NO_VALUE else value
            values = [self.operand(op, dot, scopes) for op in rest]
            if piped is not _NO_VALUE:
                values.append(piped)
            try:
                return self.funcs[name](*values)
            except TemplateError:
                raise
            except TypeError as exc:
                raise TemplateError(f"error calling {name}: wrong number of args") from exc
            except (ValueError, ArithmeticError, AttributeError, KeyError) as exc:
                raise TemplateError(f"error calling {name}: {exc}") from exc
        if rest or piped is not _NO_VALUE:
            raise TemplateError(f"can't give argument to non-function {_describe(head)}")
        return self.operand(head, dot, scopes)

    def operand(self, op: Operand, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if op.kind == "literal":
            return op.value
        if op.kind == "func":
            return self.command(Command([op]), dot, scopes, _NO_VALUE)
        if op.kind == "pipe":
            return self.pipeline(op.value, dot, scopes)
        if op.kind == "var":
            base = _NO_VALUE
            for scope in reversed(scopes):
                if op.value in scope:
                    base = scope[op.value]
                    break
            if base is _NO_VALUE:
                raise TemplateError(f"undefined variable: {op.value}")
            return _walk(base, op.path)
        return _walk(dot, op.path)


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if isinstance(value, dict):
            value = value.get(name)  # a missing map key is "<no value>"
        elif isinstance(value, Sample) and name in ("Labels", "Value"):
            value = getattr(value, name)
        else:
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
    return value


def _describe(op: Operand) -> str:
    if op.kind == "var":
        return ".".join((op.value, *op.path))
    if op.kind == "field":
        return "." + ".".join(op.path)
    return go_str(op.value)


class _NoValue:
    pass


_NO_VALUE = _NoValue()


def template_parse(text: str, *, name: str = "") -> Template:
    """Parse (as Prometheus does before running a rule's templates); :class:`TemplateError`
    with the reason when the text is not a template."""
    parser = _Parser(text, set(FUNCTIONS))
    parser.scopes[0].update(_PRELUDE_VARS)
    try:
        return Template(name, parser.parse())
    except RecursionError:
        raise TemplateError("template nested too deeply") from None


def template_expand(
    *,
    text: str,
    name: str,
    labels: dict[str, str],
    value: float,
    query: Callable[[str], list[Sample]] | None = None,
) -> str:
    """Prometheus's expansion of one label or annotation: the text itself when it holds no
    action; on an error, the ``<error expanding template: …>`` text Prometheus puts there."""
    if "{{" not in text:
        return text
    try:
        return template_parse(text, name=name).render(labels=labels, value=value, query=query)
    except TemplateError as exc:
        return f"<error expanding template: error executing template {name}: {exc}>"
