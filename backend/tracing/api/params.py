"""The query parameters of the tracing APIs (Jaeger, Jaeger v3, Zipkin), read into the
arguments of the span selectors: trace ids, integers, durations, time windows, limits, tags.

Whatever cannot be read raises :class:`BadRequest`; each API answers it in its own error shape.
Every number is bounded so that it fits int64 nanoseconds after conversion (what PostgreSQL's
bigint columns hold), every text is free of NUL, and every regex is RE2's (linear time, no
backreferences or lookarounds) before it reaches PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import re2

from backend.tenancy import params as strict
from backend.tracing import selectors
from backend.tracing.spans import KIND_BY_JAEGER_NAME, STATUS_ERROR, STATUS_OK, STATUS_UNSET

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
STATUS_CODES = {"UNSET": STATUS_UNSET, "OK": STATUS_OK, "ERROR": STATUS_ERROR}


# Largest values whose conversion to nanoseconds still fits int64.
MAX_US = strict.MAX_TIME_NS_S * 10**6
MAX_MS = strict.MAX_TIME_NS_S * 10**3
MAX_DURATION_NS = strict.MAX_DURATION_S * 10**9
MAX_REGEX_LENGTH = 1024
_RE2_CHECK = re2.Options()
_RE2_CHECK.log_errors = False


class BadRequest(strict.ParamError):
    pass


def parse_trace_id(text: str) -> bytes:
    """A trace id of 1-32 hex digits, left-padded to 16 bytes (64-bit ids included)."""
    text = text.strip().lower()
    if not text or len(text) > 32 or not re.fullmatch(r"[0-9a-f]+", text):
        raise BadRequest(f"malformed trace id {text!r}")
    return bytes.fromhex(text.rjust(32, "0"))


def trace_id_hex(trace_id: bytes) -> str:
    # Jaeger and Zipkin print 64-bit trace ids (upper half zero) as 16 hex digits.
    return (trace_id[8:] if trace_id[:8] == bytes(8) else trace_id).hex()


def int_param(params, name: str, *, maximum: int = MAX_MS) -> int | None:
    """A non-negative integer up to ``maximum``: times in µs or ms, durations in µs."""
    try:
        return strict.integer(name, params.get(name), minimum=0, maximum=maximum)
    except strict.ParamError as exc:
        raise BadRequest(str(exc)) from None


def span_kind_param(params, name: str) -> int | None:
    """A kind as Jaeger names it (``server``…) → its OTLP number; None when not given."""
    kind_name = params.get(name, "")
    if kind_name and kind_name not in KIND_BY_JAEGER_NAME:
        raise BadRequest(f"unknown {name} {kind_name!r}")
    return KIND_BY_JAEGER_NAME.get(kind_name)


def limit_param(params, name: str, *, default: int, maximum: int) -> int:
    try:
        return strict.limit(name, params.get(name), default=default, maximum=maximum)
    except strict.ParamError as exc:
        raise BadRequest(str(exc)) from None


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration for the units Jaeger accepts (``1.5s``, ``100ms``, ``2m30s``),
    up to Go's own bound (int64 nanoseconds, about 292 years)."""
    if len(text) > 64:
        raise BadRequest(f"cannot parse duration {text[:40]!r}…: too long")
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise BadRequest(f"cannot parse duration {text!r}")
    total = sum(float(n) * _UNIT_NS[u] for n, u in parts)
    if not total <= MAX_DURATION_NS:  # also catches inf from a very long number
        raise BadRequest(f"duration {text!r} is out of range (292 years at most)")
    return int(total)


def go_duration_param_ns(params, name: str) -> int | None:
    return go_duration_ns(params[name]) if params.get(name) else None


def rfc3339_ns(text: str | None, name: str) -> int | None:
    if not text:
        return None
    try:
        seconds = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{name} must be an RFC 3339 time, not {text[:40]!r}") from exc
    if not 0 <= seconds <= strict.MAX_TIME_NS_S:
        raise BadRequest(f"{name} is out of range (1970 to 2255)")
    return int(seconds * 10**9)


def window_ms(params, *, default_lookback_ms: int) -> tuple[int, int]:
    """``endTs`` and ``lookback`` (ms; Jaeger's dependencies, Zipkin) → (start, end) in ms,
    ending now unless told."""
    end_ms = int_param(params, "endTs") or time.time_ns() // 10**6
    lookback = int_param(params, "lookback") or default_lookback_ms
    return max(0, end_ms - lookback), end_ms


def search_window_us(params, *, default_lookback_us: int) -> tuple[int, int]:
    """Jaeger's search window: ``end`` and ``start`` in µs, ``start`` defaulting to ``end``
    minus ``lookback`` (a Go duration; ``custom`` means none)."""
    end_us = int_param(params, "end", maximum=MAX_US) or time.time_ns() // 1000
    lookback = params.get("lookback")
    default_start = end_us - (
        go_duration_ns(lookback) // 1000
        if lookback and lookback != "custom"
        else default_lookback_us
    )
    return int_param(params, "start", maximum=MAX_US) or max(0, default_start), end_us


def tags_json(raw: str | None) -> tuple[tuple[str, str], ...]:
    """Jaeger's ``tags={"k": "v", ...}`` (every one must match, as text)."""
    try:
        tags = json.loads(raw or "{}")
    except RecursionError:
        raise BadRequest("tags must be a JSON map: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise BadRequest(f"tags must be a JSON map: {exc}") from exc
    if not isinstance(tags, dict):
        raise BadRequest("tags must be a JSON map")
    return tuple((_text("tags", str(k)), _text("tags", str(v))) for k, v in tags.items())


def _text(name: str, value: str) -> str:
    try:
        return strict.text(name, value)
    except strict.ParamError as exc:
        raise BadRequest(str(exc)) from None


def checked_regex(value: str) -> str:
    """A regex for PostgreSQL, held to RE2's syntax first: RE2 has no backreferences or
    lookarounds (the constructs that make a backtracking engine exponential), so what passes
    runs in time PostgreSQL can bound; a statement timeout bounds the rest."""
    if len(value) > MAX_REGEX_LENGTH:
        raise BadRequest(f"regex longer than {MAX_REGEX_LENGTH} characters")
    if re.search(r"\\[1-9]|\(\?<?[=!]", value):
        raise BadRequest(
            f"invalid regex {value[:80]!r}: backreferences and lookarounds are not supported"
        )
    try:
        re2.compile(value, options=_RE2_CHECK)
    except re2.error as exc:
        raise BadRequest(f"invalid regex {value[:80]!r}: {exc}") from None
    return value


def tag_filters(raw: str | None) -> tuple[tuple[str, str, str], ...]:
    """Canopy's extension: ``tagFilters=[["http.status_code", "=~", "5.."], ["env", "!=",
    "dev"]]`` (every filter must hold)."""
    if not raw:
        return ()
    try:
        filters = json.loads(raw)
    except RecursionError:
        raise BadRequest("tagFilters must be a JSON list: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise BadRequest(f"tagFilters must be a JSON list: {exc}") from exc
    if not isinstance(filters, list) or not all(
        isinstance(f, list) and len(f) == 3 and f[1] in selectors.TAG_OPS for f in filters
    ):
        raise BadRequest("tagFilters is a list of [key, op, value], op one of = != =~ !~")
    out = []
    for key, op, value in filters:
        key, value = _text("tagFilters", str(key)), _text("tagFilters", str(value))
        if op in ("=~", "!~"):
            checked_regex(value)
        out.append((key, op, value))
    return tuple(out)


def prefixed_params(params, prefix: str) -> tuple[tuple[str, str], ...]:
    """``prefix.k=v`` parameters as (k, v) (Jaeger v3's ``query.attributes.k=v``)."""
    return tuple(
        (_text(k, k[len(prefix) :]), _text(k, v)) for k, v in params.items() if k.startswith(prefix)
    )


def annotation_query(text: str) -> tuple[tuple[tuple[str, str], ...], bool]:
    """Zipkin's ``annotationQuery``: ``error and http.method=GET`` → (tags, errors only)."""
    tags, errors_only = [], False
    for term in filter(None, (t.strip() for t in text.split(" and "))):
        key, sep, value = term.partition("=")
        if sep:
            tags.append((key.strip(), value.strip()))
        elif key == "error":
            errors_only = True
        else:
            raise BadRequest(
                f"annotationQuery term {term!r}: only key=value and 'error' are supported"
            )
    return tuple(tags), errors_only
