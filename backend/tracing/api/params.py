"""The query parameters of the tracing APIs (Jaeger, Jaeger v3, Zipkin), read into the
arguments of the span selectors: trace ids, integers, durations, time windows, limits, tags.

Whatever cannot be read raises :class:`BadRequest`; each API answers it in its own error shape.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

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


class BadRequest(ValueError):
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


def int_param(params, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from exc


def span_kind_param(params, name: str) -> int | None:
    """A kind as Jaeger names it (``server``…) → its OTLP number; None when not given."""
    kind_name = params.get(name, "")
    if kind_name and kind_name not in KIND_BY_JAEGER_NAME:
        raise BadRequest(f"unknown {name} {kind_name!r}")
    return KIND_BY_JAEGER_NAME.get(kind_name)


def limit_param(params, name: str, *, default: int, maximum: int) -> int:
    return min(int_param(params, name) or default, maximum)


def go_duration_ns(text: str) -> int:
    """Go's time.ParseDuration for the units Jaeger accepts (``1.5s``, ``100ms``, ``2m30s``)."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise BadRequest(f"cannot parse duration {text!r}")
    return int(sum(float(n) * _UNIT_NS[u] for n, u in parts))


def go_duration_param_ns(params, name: str) -> int | None:
    return go_duration_ns(params[name]) if params.get(name) else None


def rfc3339_ns(text: str | None, name: str) -> int | None:
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 10**9)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an RFC 3339 time, not {text!r}") from exc


def window_ms(params, *, default_lookback_ms: int) -> tuple[int, int]:
    """``endTs`` and ``lookback`` (ms; Jaeger's dependencies, Zipkin) → (start, end) in ms,
    ending now unless told."""
    end_ms = int_param(params, "endTs") or time.time_ns() // 10**6
    lookback = int_param(params, "lookback") or default_lookback_ms
    return end_ms - lookback, end_ms


def search_window_us(params, *, default_lookback_us: int) -> tuple[int, int]:
    """Jaeger's search window: ``end`` and ``start`` in µs, ``start`` defaulting to ``end``
    minus ``lookback`` (a Go duration; ``custom`` means none)."""
    end_us = int_param(params, "end") or time.time_ns() // 1000
    lookback = params.get("lookback")
    default_start = end_us - (
        go_duration_ns(lookback) // 1000
        if lookback and lookback != "custom"
        else default_lookback_us
    )
    return int_param(params, "start") or default_start, end_us


def tags_json(raw: str | None) -> tuple[tuple[str, str], ...]:
    """Jaeger's ``tags={"k": "v", ...}`` (every one must match, as text)."""
    try:
        tags = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise BadRequest(f"tags must be a JSON map: {exc}") from exc
    if not isinstance(tags, dict):
        raise BadRequest("tags must be a JSON map")
    return tuple((str(k), str(v)) for k, v in tags.items())


def tag_filters(raw: str | None) -> tuple[tuple[str, str, str], ...]:
    """Canopy's extension: ``tagFilters=[["http.status_code", "=~", "5.."], ["env", "!=",
    "dev"]]`` (every filter must hold)."""
    if not raw:
        return ()
    try:
        filters = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"tagFilters must be a JSON list: {exc}") from exc
    if not isinstance(filters, list) or not all(
        isinstance(f, list) and len(f) == 3 and f[1] in selectors.TAG_OPS for f in filters
    ):
        raise BadRequest("tagFilters is a list of [key, op, value], op one of = != =~ !~")
    for _, op, value in filters:
        if op in ("=~", "!~"):
            try:
                re.compile(str(value))
            except re.error as exc:
                raise BadRequest(f"invalid regex {value!r}: {exc}") from exc
    return tuple((str(k), op, str(v)) for k, op, v in filters)


def prefixed_params(params, prefix: str) -> tuple[tuple[str, str], ...]:
    """``prefix.k=v`` parameters as (k, v) (Jaeger v3's ``query.attributes.k=v``)."""
    return tuple((k[len(prefix) :], v) for k, v in params.items() if k.startswith(prefix))


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
